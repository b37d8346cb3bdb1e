"""The node's exceptions. Each says which check failed; the RPC edge maps them to codes."""

from __future__ import annotations


class QuorumNodeError(Exception):
    """Root of every error the node raises on purpose."""


class ConfigError(QuorumNodeError):
    """A configuration, genesis or key file is missing, unreadable or inconsistent."""


class TransactionRejected(QuorumNodeError):
    """The pool refused a transaction; the message is geth's wording where geth has one."""


class ChainError(QuorumNodeError):
    """A block could not be built or imported."""
