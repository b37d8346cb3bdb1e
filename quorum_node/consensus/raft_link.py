"""One TCP connection between two Raft members, from its first byte to its last.

A link runs on pysyncobj's thread, in its poller, with a non-blocking socket, as
pysyncobj's own connections do. Every frame is a 4-byte big-endian length and that
many bytes. The first frames are the handshake of ``p2p.handshake``:

    dialler   -> listener   hello (magic, node id, nonce)
    listener  -> dialler    hello + confirmation   (sealed under the listener's key)
    dialler   -> listener   confirmation           (sealed under the dialler's key)

The listener asks the transport whether the node id in the first hello is a member
before it answers; the dialler checks that the listener is the node it meant to reach.
After that each frame is one message sealed under the link's key for its direction.
A frame over its size limit, a handshake that fails or takes too long, a frame that
does not authenticate, and a peer that stops reading all close the link, with the
reason given to the transport, which names the peer in its log.
"""

from __future__ import annotations

import enum
import errno
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from pysyncobj.poller import POLL_EVENT_TYPE, Poller

from quorum_node.p2p.handshake import (
    TAG_BYTES,
    FrameRejected,
    HandshakeError,
    Hello,
    LinkKeys,
)
from quorum_node.p2p.identity import NodeKey

#: Handshake frames are a hello and a tag; anything longer is not one.
MAX_HANDSHAKE_FRAME = Hello.SIZE + TAG_BYTES
#: A sealed message: raft_wire.MAX_MESSAGE_BYTES and the tag.
MAX_SEALED_FRAME = 1024 * 1024 + TAG_BYTES
#: A handshake not finished in this time is dropped (a peer that connects and waits).
HANDSHAKE_SECONDS = 5.0
#: Bytes waiting to be sent to a peer that does not read: past this the link closes.
MAX_PENDING_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 256 * 1024


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    AWAITING_HELLO = "awaiting hello"
    AWAITING_CONFIRMATION = "awaiting confirmation"
    OPEN = "open"
    CLOSED = "closed"


class LinkRefused(Exception):
    """The transport will not talk to the node a hello names; the message says why."""


@dataclass(frozen=True)
class LocalIdentity:
    """This node as its links present it: its key, and the network its links belong to
    (the genesis hash, bound into every link's keys)."""

    node_key: NodeKey
    network: bytes

    @property
    def node_id(self) -> bytes:
        return bytes.fromhex(self.node_key.node_id)


@dataclass
class LinkCallbacks:
    """What a link tells its transport; every call comes on pysyncobj's thread."""

    #: A listener's link got a hello naming this node id: raise ``LinkRefused`` to refuse.
    admit: Callable[[RaftLink, str], None]
    opened: Callable[[RaftLink], None]
    received: Callable[[RaftLink, bytes], None]
    #: The link closed; the reason is None when this side closed it on purpose.
    closed: Callable[[RaftLink, str | None], None]


class RaftLink:
    """A link's socket, buffers and handshake; see the module docstring."""

    def __init__(
        self,
        poller: Poller,
        sock: socket.socket,
        *,
        local: LocalIdentity,
        callbacks: LinkCallbacks,
        remote_address: str,
        expected_peer: str | None,
        idle_timeout: float,
    ) -> None:
        """``expected_peer`` is the node id a dialled link must reach; None for a link
        that was accepted (its peer is whoever the hello names, if admitted)."""
        self._poller = poller
        self._socket: socket.socket | None = sock
        self._fileno = sock.fileno()
        self._local = local
        self._callbacks = callbacks
        self.remote_address = remote_address
        self.dialled = expected_peer is not None
        self.peer_id: str | None = expected_peer
        self.state = LinkState.CONNECTING if self.dialled else LinkState.AWAITING_HELLO
        #: Set once the handshake succeeded; stays set after the link closes.
        self.was_open = False
        #: Set when the link closed because the peer failed a check (a bad or slow
        #: handshake, a frame over the limit or that does not authenticate), as opposed
        #: to a connection that failed or ended.
        self.refused = False
        self._idle_timeout = idle_timeout
        self._inbound = bytearray()
        self._outbound = bytearray()
        self._hello: Hello | None = None
        self._keys: LinkKeys | None = None
        now = time.monotonic()
        self._handshake_deadline = now + HANDSHAKE_SECONDS
        self._last_read = now
        self._subscribe()

    @classmethod
    def dial(
        cls,
        poller: Poller,
        host: str,
        port: int,
        *,
        local: LocalIdentity,
        callbacks: LinkCallbacks,
        expected_peer: str,
        idle_timeout: float,
    ) -> RaftLink | None:
        """Start connecting to ``host:port``; None if the connect fails at once."""
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        result = sock.connect_ex((host, port))
        if result not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            return None
        return cls(
            poller,
            sock,
            local=local,
            callbacks=callbacks,
            remote_address=f"{host}:{port}",
            expected_peer=expected_peer,
            idle_timeout=idle_timeout,
        )

    # --- what the transport calls -------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state is LinkState.OPEN

    def send(self, plaintext: bytes) -> bool:
        """Seal and queue one message; False if the link is not open (or just closed)."""
        if self._keys is None or self.state is not LinkState.OPEN:
            return False
        self._queue_frame(self._keys.sealer.seal(plaintext))
        return self.state is LinkState.OPEN

    def close_if_expired(self, now: float) -> None:
        """Close a link whose handshake is too slow or whose peer fell silent."""
        if self.state is LinkState.CLOSED:
            return
        if self.state is not LinkState.OPEN and now > self._handshake_deadline:
            self.close(f"handshake not finished in {HANDSHAKE_SECONDS:.0f}s", refused=True)
        elif now - self._last_read > self._idle_timeout:
            self.close(f"nothing received for {self._idle_timeout:.1f}s")

    def close(self, reason: str | None = None, *, refused: bool = False) -> None:
        """Close the socket and tell the transport once; ``reason`` None for on purpose,
        ``refused`` when the peer failed a check."""
        if self.state is LinkState.CLOSED:
            return
        self.refused = refused
        self.state = LinkState.CLOSED
        self._poller.unsubscribe(self._fileno)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._inbound.clear()
        self._outbound.clear()
        self._callbacks.closed(self, reason)

    # --- the poller's side -----------------------------------------------------------------

    def _subscribe(self) -> None:
        events = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        if self._outbound or self.state is LinkState.CONNECTING:
            events |= POLL_EVENT_TYPE.WRITE
        self._poller.subscribe(self._fileno, self._on_event, events)

    def _on_event(self, descriptor: int, events: int) -> None:
        if self.state is LinkState.CLOSED or self._socket is None:
            self._poller.unsubscribe(descriptor)
            return
        if self.state is LinkState.CONNECTING:
            if events & (POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR):
                error = self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self.close(f"connect failed: {errno.errorcode.get(error, error)}")
                    return
                self.state = LinkState.AWAITING_HELLO
                self._hello = Hello(self._local.node_id, _fresh_nonce())
                self._queue_frame(self._hello.to_bytes())
                if self.state is LinkState.CLOSED:
                    return
        elif events & POLL_EVENT_TYPE.ERROR and not events & POLL_EVENT_TYPE.READ:
            self.close("connection reset")
            return
        if events & POLL_EVENT_TYPE.READ:
            self._read()
            if self.state is LinkState.CLOSED:
                return
        if events & POLL_EVENT_TYPE.WRITE:
            self._flush()
            if self.state is LinkState.CLOSED:
                return
        self._subscribe()

    def _read(self) -> None:
        while self._socket is not None:
            try:
                chunk = self._socket.recv(_READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.close(f"read failed: {exc.strerror or exc}")
                return
            if not chunk:
                self.close("closed by the peer")
                return
            self._last_read = time.monotonic()
            self._inbound += chunk
            if not self._take_frames():
                return
            if len(chunk) < _READ_CHUNK:
                break

    def _take_frames(self) -> bool:
        """Handle every whole frame buffered; False once the link closed."""
        while len(self._inbound) >= 4:
            size = int.from_bytes(self._inbound[:4], "big")
            limit = MAX_SEALED_FRAME if self.state is LinkState.OPEN else MAX_HANDSHAKE_FRAME
            if size > limit:
                self.close(f"frame of {size} bytes, over the limit of {limit}", refused=True)
                return False
            if len(self._inbound) < 4 + size:
                return True
            frame = bytes(self._inbound[4 : 4 + size])
            del self._inbound[: 4 + size]
            self._handle(frame)
            if self.state is LinkState.CLOSED:
                return False
        return True

    def _handle(self, frame: bytes) -> None:
        try:
            if self.state is LinkState.OPEN and self._keys is not None:
                plaintext = self._keys.opener.open(frame)
            elif self.dialled:
                self._finish_as_dialler(frame)
                return
            elif self.state is LinkState.AWAITING_HELLO:
                self._answer_hello(frame)
                return
            else:
                self._finish_as_listener(frame)
                return
        except (HandshakeError, LinkRefused) as exc:
            self.close(str(exc), refused=True)
            return
        except FrameRejected:
            self.close("a frame failed authentication (altered on the path?)", refused=True)
            return
        self._callbacks.received(self, plaintext)

    def _answer_hello(self, frame: bytes) -> None:
        hello = Hello.from_bytes(frame)
        self.peer_id = hello.node_id.hex()
        self._callbacks.admit(self, self.peer_id)
        ours = Hello(self._local.node_id, _fresh_nonce())
        self._keys = self._derive(initiator=hello, responder=ours, we_initiated=False)
        self.state = LinkState.AWAITING_CONFIRMATION
        self._queue_frame(ours.to_bytes() + self._keys.confirmation())

    def _finish_as_listener(self, frame: bytes) -> None:
        if self._keys is None:
            raise HandshakeError("a confirmation before the hello")
        self._keys.check_confirmation(frame)
        self._open()

    def _finish_as_dialler(self, frame: bytes) -> None:
        if self.state is not LinkState.AWAITING_HELLO or self._hello is None:
            raise HandshakeError("a frame before the handshake started")
        if len(frame) != Hello.SIZE + TAG_BYTES:
            raise HandshakeError(f"answer of {len(frame)} bytes, expected a hello and a tag")
        theirs = Hello.from_bytes(frame[: Hello.SIZE])
        if theirs.node_id.hex() != self.peer_id:
            raise HandshakeError(
                f"the node at {self.remote_address} is {theirs.node_id.hex()[:16]}…, "
                f"not the member {str(self.peer_id)[:16]}… listed there"
            )
        self._keys = self._derive(initiator=self._hello, responder=theirs, we_initiated=True)
        self._keys.check_confirmation(frame[Hello.SIZE :])
        self._queue_frame(self._keys.confirmation())
        if self.state is not LinkState.CLOSED:
            self._open()

    def _derive(self, *, initiator: Hello, responder: Hello, we_initiated: bool) -> LinkKeys:
        peer = responder if we_initiated else initiator
        try:
            secret = self._local.node_key.shared_secret(peer.node_id)
        except ValueError:
            raise HandshakeError("the peer's node id is not a public key") from None
        return LinkKeys.derive(
            secret,
            initiator=initiator,
            responder=responder,
            we_initiated=we_initiated,
            network=self._local.network,
        )

    def _open(self) -> None:
        self.state = LinkState.OPEN
        self.was_open = True
        self._callbacks.opened(self)

    def _queue_frame(self, payload: bytes) -> None:
        self._outbound += len(payload).to_bytes(4, "big") + payload
        if len(self._outbound) > MAX_PENDING_BYTES:
            self.close(f"the peer does not read: over {MAX_PENDING_BYTES} bytes wait for it")
            return
        if self.state is not LinkState.CONNECTING:
            self._flush()

    def _flush(self) -> None:
        while self._outbound and self._socket is not None:
            try:
                sent = self._socket.send(self._outbound)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.close(f"write failed: {exc.strerror or exc}")
                return
            del self._outbound[:sent]
        if self._outbound and self.state is not LinkState.CLOSED:
            self._subscribe()


def _fresh_nonce() -> bytes:
    return secrets.token_bytes(32)
