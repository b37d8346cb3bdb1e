"""Keys and frames of an authenticated link between two nodes, by their node keys.

The Raft transport (``consensus/raft_transport.py``) runs one such link per pair of
members. Each node knows the other's node id (the public key in its enode), so an
ECDH of the two node keys gives a secret that only those two nodes can compute; the
fresh nonces both sides send make every link's keys new. From it HKDF-SHA256 derives
one ChaCha20-Poly1305 key per direction. Each side proves it holds its node key by
sealing an empty confirmation under its key before anything else is accepted, and
every later frame is sealed with a counter as nonce, so a frame cannot be forged,
altered, replayed, reordered or moved to another link. No secret is shared between
more than two nodes, and no certificate is needed.

Pure functions and small classes, no I/O: the transport reads and writes the bytes.

Limits, said plainly: the static keys give no forward secrecy (what a recorded link
carried can be read by whoever later steals one of its two node keys; Raft carries
block hashes and membership, no payloads), and whoever holds a node's key can speak
to that node as any member (it is then that participant's compromise, nothing more).
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: First bytes of a link's first frame: the protocol and its version.
MAGIC = b"QPYLINK1"
NODE_ID_BYTES = 64
NONCE_BYTES = 32
TAG_BYTES = 16
KEY_INFO = b"quorum-py node link v1"
#: What a confirmation seals as associated data (the plaintext is empty).
CONFIRMATION = b"confirm"


class HandshakeError(Exception):
    """A link's handshake did not check out; the message says which check failed."""


class FrameRejected(Exception):
    """A sealed frame did not open: altered, replayed, reordered or not from the peer."""


@dataclass(frozen=True)
class Hello:
    """The first frame each side sends: who it is and a fresh nonce."""

    node_id: bytes
    nonce: bytes

    SIZE = len(MAGIC) + NODE_ID_BYTES + NONCE_BYTES

    def to_bytes(self) -> bytes:
        return MAGIC + self.node_id + self.nonce

    @classmethod
    def from_bytes(cls, frame: bytes) -> Hello:
        if not frame.startswith(MAGIC):
            raise HandshakeError("not a quorum-py link (bad magic)")
        if len(frame) != cls.SIZE:
            raise HandshakeError(f"hello of {len(frame)} bytes, expected {cls.SIZE}")
        node_id = frame[len(MAGIC) : len(MAGIC) + NODE_ID_BYTES]
        try:
            coincurve.PublicKey(b"\x04" + node_id)
        except ValueError:
            raise HandshakeError("the node id is not a secp256k1 public key") from None
        return cls(node_id, frame[len(MAGIC) + NODE_ID_BYTES :])


class FrameSealer:
    """Seals frames in one direction; the nth frame sealed uses counter n."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def seal(self, plaintext: bytes, associated: bytes | None = None) -> bytes:
        nonce = self._counter.to_bytes(12, "little")
        self._counter += 1
        return self._aead.encrypt(nonce, plaintext, associated)


class FrameOpener:
    """Opens the other direction's frames, only in the order they were sealed."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def open(self, sealed: bytes, associated: bytes | None = None) -> bytes:
        nonce = self._counter.to_bytes(12, "little")
        try:
            plaintext = self._aead.decrypt(nonce, sealed, associated)
        except InvalidTag:
            raise FrameRejected("frame does not authenticate") from None
        self._counter += 1
        return plaintext


@dataclass
class LinkKeys:
    """One link's two directions, seen from one side."""

    sealer: FrameSealer
    opener: FrameOpener

    @classmethod
    def derive(
        cls,
        secret: bytes,
        *,
        initiator: Hello,
        responder: Hello,
        we_initiated: bool,
        network: bytes,
    ) -> LinkKeys:
        """Keys for the link whose two hellos are given. ``secret`` is the ECDH of this
        node's key and the peer's (``NodeKey.shared_secret``); ``network`` (the genesis
        hash) keeps links of different networks apart even between the same two keys."""
        material = HKDF(
            algorithm=hashes.SHA256(),
            length=64,
            salt=initiator.nonce + responder.nonce,
            info=KEY_INFO + network + initiator.node_id + responder.node_id,
        ).derive(secret)
        to_responder, to_initiator = material[:32], material[32:]
        if we_initiated:
            return cls(FrameSealer(to_responder), FrameOpener(to_initiator))
        return cls(FrameSealer(to_initiator), FrameOpener(to_responder))

    def confirmation(self) -> bytes:
        """The first frame sealed on this side: proof that it derived the same keys."""
        return self.sealer.seal(b"", CONFIRMATION)

    def check_confirmation(self, sealed: bytes) -> None:
        if len(sealed) != TAG_BYTES:
            raise HandshakeError(f"confirmation of {len(sealed)} bytes, expected {TAG_BYTES}")
        try:
            self.opener.open(sealed, CONFIRMATION)
        except FrameRejected:
            raise HandshakeError(
                "confirmation does not open: the peer does not hold the key of the node it "
                "claims to be"
            ) from None
