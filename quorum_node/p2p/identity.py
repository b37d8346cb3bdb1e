"""Node identity: a secp256k1 node key, its enode id, and signed node-to-node requests.

As in geth and GoQuorum, a node is known by the 64-byte public key of its node key,
written ``enode://<hex id>@host:port?raftport=N``. Every node-to-node HTTP request is
signed with the node key over its method, path, timestamp and body; the receiver
recovers the signer, checks it against the claimed id and the permissioned-nodes list,
and refuses stale timestamps, so a request cannot be forged or altered in flight.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import coincurve
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak

from quorum_node.errors import ConfigError
from quorum_shared.secret_files import secret_directory, write_secret

SIGNATURE_DOMAIN = b"quorum-py/p2p/v1"
MAX_CLOCK_SKEW_SECONDS = 60


class SignatureRejected(Exception):
    """A node-to-node request whose signature, signer or timestamp does not check out."""


@dataclass(frozen=True)
class Enode:
    """``enode://<node id>@<host>:<p2p port>?raftport=<raft port>``."""

    node_id: str  # 128 hex digits, lower case
    host: str
    p2p_port: int
    raft_port: int | None = None

    def __str__(self) -> str:
        text = f"enode://{self.node_id}@{self.host}:{self.p2p_port}"
        return text + (f"?raftport={self.raft_port}" if self.raft_port is not None else "")

    @property
    def p2p_url(self) -> str:
        return f"http://{self.host}:{self.p2p_port}"

    @property
    def raft_address(self) -> str:
        if self.raft_port is None:
            raise ConfigError(f"{self} has no raftport")
        return f"{self.host}:{self.raft_port}"

    @classmethod
    def parse(cls, text: str) -> Enode:
        parsed = urlparse(text.strip())
        if parsed.scheme != "enode" or not parsed.username or not parsed.hostname:
            raise ConfigError(f"not an enode URL: {text!r}")
        node_id = parsed.username.lower()
        if len(node_id) != 128 or any(c not in "0123456789abcdef" for c in node_id):
            raise ConfigError(f"enode id must be 128 hex digits: {text!r}")
        try:
            port = parsed.port
        except ValueError:
            raise ConfigError(f"bad port in {text!r}") from None
        if port is None:
            raise ConfigError(f"enode URL without a port: {text!r}")
        raft = parse_qs(parsed.query).get("raftport")
        try:
            raft_port = int(raft[0]) if raft else None
        except ValueError:
            raise ConfigError(f"bad raftport in {text!r}") from None
        return cls(node_id, parsed.hostname, port, raft_port)


class NodeKey:
    """The node's private key; used only to sign node-to-node requests and to agree the
    keys of this node's links with other members (``p2p.handshake``)."""

    def __init__(self, private_key: bytes) -> None:
        self._key = keys.PrivateKey(private_key)
        self.node_id = self._key.public_key.to_bytes().hex()

    @classmethod
    def load_or_create(cls, path: Path) -> NodeKey:
        """Read ``nodekey`` (64 hex digits, geth's format) or create it on first start (mode
        0600, in a folder created 0700)."""
        if path.exists():
            try:
                return cls(bytes.fromhex(path.read_text().strip()))
            except (ValueError, ValidationError):
                raise ConfigError(f"{path} does not hold a 32-byte hex node key") from None
        key = os.urandom(32)
        secret_directory(path.parent)
        try:
            write_secret(path, key.hex(), replace=False)
        except FileExistsError:
            return cls.load_or_create(path)  # another process created it meanwhile: use that
        return cls(key)

    def shared_secret(self, peer_node_id: bytes) -> bytes:
        """ECDH of this key and a peer's node id (libsecp256k1's SHA-256 of the shared
        point): the same on the peer's side, known to nobody else. ``ValueError`` if
        ``peer_node_id`` is not a public key."""
        peer = coincurve.PublicKey(b"\x04" + peer_node_id)
        return bytes(coincurve.PrivateKey(self._key.to_bytes()).ecdh(peer.format()))

    def sign_request(self, method: str, path: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        digest = _request_digest(method, path, timestamp, body)
        signature = self._key.sign_msg_hash(digest)
        return {
            "X-Quorum-Node": self.node_id,
            "X-Quorum-Timestamp": timestamp,
            "X-Quorum-Signature": signature.to_bytes().hex(),
        }


def _request_digest(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    return keccak(
        SIGNATURE_DOMAIN
        + b"\n"
        + method.upper().encode()
        + b"\n"
        + path.encode()
        + b"\n"
        + timestamp.encode()
        + b"\n"
        + keccak(body)
    )


def verify_request(
    method: str, path: str, body: bytes, headers: dict[str, str], now: float | None = None
) -> str:
    """Return the signer's node id, or raise ``SignatureRejected`` saying why."""
    claimed = headers.get("X-Quorum-Node", "").lower()
    timestamp = headers.get("X-Quorum-Timestamp", "")
    signature_hex = headers.get("X-Quorum-Signature", "")
    if not claimed or not timestamp or not signature_hex:
        raise SignatureRejected("request is not signed")
    try:
        sent_at = int(timestamp)
        signature = keys.Signature(bytes.fromhex(signature_hex))
    except (ValueError, ValidationError, BadSignature):
        raise SignatureRejected("malformed signature headers") from None
    if abs((now if now is not None else time.time()) - sent_at) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureRejected("request timestamp is too far from this node's clock")
    try:
        signer = (
            signature.recover_public_key_from_msg_hash(
                _request_digest(method, path, timestamp, body)
            )
            .to_bytes()
            .hex()
        )
    except (BadSignature, ValidationError):
        raise SignatureRejected("signature does not recover") from None
    if signer != claimed:
        raise SignatureRejected("signature was not made by the claimed node")
    return signer
