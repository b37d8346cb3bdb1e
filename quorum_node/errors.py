"""The node's exceptions. Each says which check failed; the RPC edge maps them to codes
(``rpc.dispatcher``): ``InvalidTransactionRequest`` to -32602, the others to -32000."""

from __future__ import annotations


class QuorumNodeError(Exception):
    """Root of every error the node raises on purpose."""


class ConfigError(QuorumNodeError):
    """A configuration, genesis or key file is missing, unreadable or inconsistent."""


class TransactionRejected(QuorumNodeError):
    """The pool refused a transaction; the message is geth's wording where geth has one."""


class InvalidTransactionRequest(QuorumNodeError):
    """A transaction request's fields contradict each other or the chain (-32602)."""


class UnknownAccount(QuorumNodeError):
    """A request asks the node to sign for an account it does not hold."""

    def __init__(self) -> None:
        super().__init__("unknown account")


class ChainError(QuorumNodeError):
    """A block could not be built or imported."""


class PrivateDataUnavailable(QuorumNodeError):
    """The transaction manager did not answer for a private payload, so the block that
    needs it must wait: taking silence for "not a party" would fork this node's private
    state from the other parties' (GoQuorum issue #1574)."""


class NodeCatchingUp(QuorumNodeError):
    """The node cannot answer a send truly yet: its head is behind the newest block the
    cluster committed (it just started, or it has not heard from a leader lately), so a
    nonce it chose or checked now might already be used. The client may retry shortly,
    or send to another node."""

    def __init__(self, head: int, committed: int | None) -> None:
        target = "an unknown head (no Raft leader heard from)" if committed is None else committed
        super().__init__(f"node is catching up: head {head} of {target}")
        self.head = head
        self.committed = committed
