"""A Raft member's side of a link, driven by hand from a test.

``RaftPeer`` dials a node's Raft port with a node key of the test's choosing (a
participant's own, from its bundle, or an outsider's), runs the handshake of
``quorum_node.p2p.handshake`` (optionally claiming another node id in its hello) and
then sends sealed frames of the test's choosing: well-formed pysyncobj messages, or
whatever a hostile member would send. ``pickle_that_creates`` builds the payload the
old pickled Raft would have run.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import zlib
from pathlib import Path
from typing import Any

from quorum_node.consensus.raft_wire import dumps, loads
from quorum_node.p2p.handshake import TAG_BYTES, HandshakeError, Hello, LinkKeys
from quorum_node.p2p.identity import NodeKey


class _CreatesFile:
    """Unpickling this opens ``path`` for writing, which creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def pickle_that_creates(path: Path) -> bytes:
    """A pickle whose loading creates ``path``: code a peer would run in pickled Raft."""
    return pickle.dumps({"type": "append_entries", "x": _CreatesFile(path)}, protocol=2)


def pysyncobj_frame(path: Path) -> bytes:
    """The same pickle framed as pysyncobj's own transport sends a message."""
    data = zlib.compress(pickle_that_creates(path), 3)
    return struct.pack("i", len(data)) + data


class RaftPeer:
    def __init__(
        self,
        address: tuple[str, int],
        node_key: NodeKey,
        network: bytes,
        *,
        claim: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """``claim``: the node id to put in the hello (default: ``node_key``'s own)."""
        self.node_key = node_key
        self.network = network
        self.claim = bytes.fromhex(claim or node_key.node_id)
        self.socket = socket.create_connection(address, timeout=timeout)
        self.keys: LinkKeys | None = None

    def __enter__(self) -> RaftPeer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close()

    # --- frames ----------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.socket.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.socket.sendall(len(payload).to_bytes(4, "big") + payload)

    def receive_frame(self) -> bytes:
        header = self._receive_exactly(4)
        return self._receive_exactly(int.from_bytes(header, "big"))

    def _receive_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.socket.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed by the node")
            data += chunk
        return data

    # --- the handshake and sealed messages -----------------------------------------------

    def handshake(self, expect: str | None = None) -> str:
        """Run the dialler's side; the node id the listener proved. ``HandshakeError``
        when its confirmation does not open (or it is not ``expect``)."""
        ours = Hello(self.claim, os.urandom(32))
        self.send_frame(ours.to_bytes())
        answer = self.receive_frame()
        theirs = Hello.from_bytes(answer[: Hello.SIZE])
        if expect is not None and theirs.node_id.hex() != expect:
            raise HandshakeError("not the node expected")
        keys = LinkKeys.derive(
            self.node_key.shared_secret(theirs.node_id),
            initiator=ours,
            responder=theirs,
            we_initiated=True,
            network=self.network,
        )
        keys.check_confirmation(answer[Hello.SIZE : Hello.SIZE + TAG_BYTES])
        self.send_frame(keys.confirmation())
        self.keys = keys
        return theirs.node_id.hex()

    def send_plaintext(self, plaintext: bytes) -> None:
        if self.keys is None:
            raise RuntimeError("handshake first")
        self.send_frame(self.keys.sealer.seal(plaintext))

    def send_message(self, message: dict[str, Any]) -> None:
        self.send_plaintext(dumps(message))

    def receive_message(self) -> Any:
        if self.keys is None:
            raise RuntimeError("handshake first")
        return loads(self.keys.opener.open(self.receive_frame()))

    def closed_by_node(self, timeout: float = 5.0) -> bool:
        """True once the node closed the link (reading what it still sends meanwhile)."""
        self.socket.settimeout(timeout)
        try:
            while self.socket.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True
