"""pysyncobj's transport, replaced: Raft traffic over links authenticated by node keys.

pysyncobj's own TCP transport identifies a peer by the ``host:port`` it claims in its
first message and, with a password, encrypts with a key every member shares; then it
unpickles what arrives. This transport (pysyncobj's pluggable ``transportClass``) keeps
pysyncobj's Raft and replaces everything between two members:

* each pair of members talks over one ``RaftLink``, whose handshake proves each side
  holds the node key of the member it claims to be (``p2p.handshake``); the listener
  admits only members of the Raft cluster, the dialler checks it reached the member it
  dialled, so a member cannot speak as another;
* frames decode with msgpack (``raft_wire``) and are checked against the messages
  pysyncobj sends and the commands this node applies before pysyncobj sees them;
* what a member sends that does not decode or fit, and a vote request whose term is
  absurdly far ahead, is logged as a WARNING naming the member (its node id and
  address), at most once per ten seconds per member and kind with a count, and counted
  through ``observer`` (the node's ``quorum_raft_peer_misbehaviour_total``);
* pysyncobj's "utility" messages (add or remove a node, switch code version, status),
  which its TCP transport accepts from any connection, do not exist here.

As in pysyncobj's TCP transport, the member with the greater address dials, the other
listens, and a dropped link is dialled again after ``connectionRetryTime``.
Read-only nodes are not supported.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pysyncobj.node import Node, TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.transport import Transport, TransportNotReadyError

from quorum_node.consensus.raft_link import (
    LinkCallbacks,
    LinkRefused,
    LocalIdentity,
    RaftLink,
)
from quorum_node.consensus.raft_wire import (
    MAX_MESSAGE_BYTES,
    RaftWireError,
    check_command,
    check_message,
    dumps,
    entries_of,
    loads,
)
from quorum_shared.log_throttle import ThrottledLog

logger = logging.getLogger(__name__)

#: A vote request this many terms ahead of ours is reported (not refused: a member
#: that was cut off from the leader but not from a minority raises its term once per
#: election timeout, and must still be able to rejoin).
ABSURD_TERM_AHEAD = 100
#: Snapshot bytes one link may send in one transfer; this node's snapshots are a few KiB.
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
#: Connections that have not finished their handshake, at most (others are refused).
MAX_UNAUTHENTICATED_LINKS = 64

MisbehaviourObserver = Callable[[str, str], None]


class MemberDirectory(Protocol):
    """Who the members are, by Raft address and by node id (the cluster's replicated
    member list, then the permissioned-nodes file)."""

    def node_id_at(self, raft_address: str) -> str | None: ...

    def raft_address_of(self, node_id: str) -> str | None: ...


class RaftTransport(Transport):  # type: ignore[misc]
    """See the module docstring. Built by pysyncobj (``SyncObj(transportClass=...)``)
    with ``functools.partial`` supplying the keyword arguments."""

    def __init__(
        self,
        syncObj: Any,  # noqa: N803 - pysyncobj's parameter names
        selfNode: TCPNode,  # noqa: N803
        otherNodes: Any,  # noqa: N803
        *,
        local: LocalIdentity,
        directory: MemberDirectory,
        signatures: Mapping[str, tuple[type, ...]],
        observer: MisbehaviourObserver | None = None,
        heard: dict[str, float] | None = None,
    ) -> None:
        """``heard`` (Raft address -> ``time.monotonic()``) is told when each member's
        last checked message arrived: how the engine knows its leader, or a majority,
        spoke lately."""
        super().__init__(syncObj, selfNode, otherNodes)
        if selfNode is None:
            raise ValueError("read-only pysyncobj nodes are not supported")
        self._sync = syncObj
        self._self = selfNode
        self._local = local
        self._directory = directory
        self._signatures_by_name = dict(signatures)
        self._signatures: dict[int, tuple[type, ...]] | None = None
        self._observer = observer
        self._heard = heard if heard is not None else {}
        self._nodes: dict[str, TCPNode] = {}
        self._links: dict[TCPNode, RaftLink] = {}
        #: The member each link in ``_links`` belongs to (dialled, or proven at its
        #: handshake): a received frame finds its sender here, not in the directory.
        self._link_node: dict[RaftLink, TCPNode] = {}
        self._unauthenticated: set[RaftLink] = set()
        self._last_dial: dict[TCPNode, float] = {}
        self._snapshot_bytes: dict[RaftLink, int] = {}
        self._log = ThrottledLog(logger, interval=10.0)
        self._server: socket.socket | None = None
        self._ready = False
        self._bind_attempts = 0
        self._last_bind_attempt = 0.0
        self._bind_over = threading.Event()
        self._callbacks = LinkCallbacks(
            admit=self._admit, opened=self._opened, received=self._received, closed=self._closed
        )
        syncObj.addOnTickCallback(self._on_tick)
        for node in otherNodes:
            self.addNode(node)

    # --- pysyncobj's Transport interface ------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    def tryGetReady(self) -> None:  # noqa: N802
        self._bind()

    def waitReady(self) -> None:  # noqa: N802
        self._bind_over.wait()
        if not self._ready:
            raise TransportNotReadyError

    def addNode(self, node: Node) -> None:  # noqa: N802
        if not isinstance(node, TCPNode):
            raise TypeError(f"raft members are TCP nodes, not {type(node).__name__}")
        self._nodes[node.address] = node

    def dropNode(self, node: Node) -> None:  # noqa: N802
        if isinstance(node, TCPNode):
            self._nodes.pop(node.address, None)
        self._last_dial.pop(node, None)
        link = self._links.pop(node, None)
        if link is not None:
            link.close()

    def send(self, node: Node, message: Any) -> bool:
        link = self._links.get(node)
        if link is None or not link.is_open:
            return False
        return link.send(dumps(message))

    def destroy(self) -> None:
        self.setOnMessageReceivedCallback(None)
        self.setOnNodeConnectedCallback(None)
        self.setOnNodeDisconnectedCallback(None)
        for link in [*self._links.values(), *self._unauthenticated]:
            link.close()
        self._links.clear()
        self._link_node.clear()
        self._unauthenticated.clear()
        self._nodes.clear()
        if self._server is not None:
            self._sync._poller.unsubscribe(self._server.fileno())  # noqa: SLF001
            self._server.close()
            self._server = None

    # --- listening ------------------------------------------------------------------

    def _bind(self) -> None:
        conf = self._sync.conf
        if self._ready or time.monotonic() < self._last_bind_attempt + conf.bindRetryTime:
            return
        self._last_bind_attempt = time.monotonic()
        host, port = (conf.bindAddress or self._self.address).rsplit(":", 1)
        try:
            family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
            server = socket.socket(family, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.setblocking(False)
            server.bind((host, int(port)))
            server.listen(16)
        except OSError as exc:
            self._bind_attempts += 1
            logger.warning("cannot listen for raft on %s:%s: %s", host, port, exc)
            if conf.maxBindRetries and self._bind_attempts >= conf.maxBindRetries:
                self._bind_over.set()
                raise TransportNotReadyError from None
            return
        self._server = server
        self._sync._poller.subscribe(  # noqa: SLF001
            server.fileno(), self._accept, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        )
        self._ready = True
        self._bind_over.set()

    def _accept(self, _descriptor: int, _events: int) -> None:
        if self._server is None:
            return
        try:
            sock, address = self._server.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            logger.warning("accepting a raft connection failed: %s", exc)
            return
        remote = f"{address[0]}:{address[1]}"
        if len(self._unauthenticated) >= MAX_UNAUTHENTICATED_LINKS:
            self._log.warning(
                ("busy", None), "refused a raft connection from %s: too many handshakes", remote
            )
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        link = RaftLink(
            self._sync._poller,  # noqa: SLF001
            sock,
            local=self._local,
            callbacks=self._callbacks,
            remote_address=remote,
            expected_peer=None,
            idle_timeout=self._sync.conf.connectionTimeout,
        )
        self._unauthenticated.add(link)

    # --- dialling and timers ------------------------------------------------------------

    def _on_tick(self) -> None:
        try:
            self._bind()
        except TransportNotReadyError:
            pass
        now = time.monotonic()
        for link in [*self._links.values(), *self._unauthenticated]:
            link.close_if_expired(now)
        for node in list(self._nodes.values()):
            if self._dials(node) and node not in self._links:
                self._dial(node, now)

    def _dials(self, node: TCPNode) -> bool:
        """Of two members, the one with the greater address dials (as pysyncobj does)."""
        return bool(self._self.address > node.address)

    def _dial(self, node: TCPNode, now: float) -> None:
        if now - self._last_dial.get(node, -1e9) < self._sync.conf.connectionRetryTime:
            return
        self._last_dial[node] = now
        expected = self._directory.node_id_at(node.address)
        if expected is None:
            self._log.warning(
                ("unknown", node.address),
                "not dialling raft member %s: no node id is known for that address",
                node.address,
            )
            return
        link = RaftLink.dial(
            self._sync._poller,  # noqa: SLF001
            node.host,
            node.port,
            local=self._local,
            callbacks=self._callbacks,
            expected_peer=expected,
            idle_timeout=self._sync.conf.connectionTimeout,
        )
        if link is not None:
            self._links[node] = link
            self._link_node[link] = node

    # --- link events -----------------------------------------------------------------

    def _node_of(self, node_id: str) -> TCPNode | None:
        address = self._directory.raft_address_of(node_id)
        return None if address is None else self._nodes.get(address)

    def _admit(self, link: RaftLink, node_id: str) -> None:
        if node_id == self._local.node_key.node_id:
            raise LinkRefused("the peer claims to be this node")
        if self._node_of(node_id) is None:
            raise LinkRefused(f"node {node_id[:16]}… is not a member of this raft cluster")

    def _opened(self, link: RaftLink) -> None:
        self._unauthenticated.discard(link)
        node = self._node_of(link.peer_id or "")
        if node is None:  # removed from the cluster during the handshake
            link.close()
            return
        previous = self._links.get(node)
        if previous is not None and previous is not link:
            previous.close()  # the peer restarted, or both dialled: the newest link wins
        self._links[node] = link
        self._link_node[link] = node
        self._onNodeConnected(node)

    def _closed(self, link: RaftLink, reason: str | None) -> None:
        self._unauthenticated.discard(link)
        self._snapshot_bytes.pop(link, None)
        node = self._link_node.pop(link, None)
        if node is not None and self._links.get(node) is link:
            del self._links[node]
            self._onNodeDisconnected(node)
        if reason is None:
            return
        if link.refused:
            self._log.warning(
                ("refused", link.remote_address.rsplit(":", 1)[0]),
                "refused a raft link with %s: %s",
                self._name(link),
                reason,
            )
            self._report(link, "refused_link")
        elif link.was_open:
            # Links between two followers carry nothing and close after the idle timeout,
            # to be dialled again: routine, as in pysyncobj's own transport.
            logger.debug("raft link with %s closed: %s", self._name(link), reason)
        else:
            self._log.info(
                ("unreachable", link.remote_address),
                "raft link with %s failed: %s",
                self._name(link),
                reason,
            )

    def _received(self, link: RaftLink, plaintext: bytes) -> None:
        node = self._link_node.get(link)
        if node is None or self._links.get(node) is not link:
            link.close()
            return
        try:
            if len(plaintext) > MAX_MESSAGE_BYTES:
                raise RaftWireError("malformed", f"a message of {len(plaintext)} bytes")
            message = check_message(loads(plaintext))
            for command in entries_of(message):
                check_command(command, self._command_signatures())
            self._check_snapshot_size(link, message)
        except RaftWireError as exc:
            self._misbehaved(link, exc.kind, str(exc))
            link.close()
            return
        self._heard[node.address] = time.monotonic()
        if message["type"] == "request_vote":
            ahead = message["term"] - self._sync.raftCurrentTerm
            if ahead > ABSURD_TERM_AHEAD:
                self._misbehaved(link, "absurd_term", f"asked for a vote {ahead} terms ahead")
        try:
            self._onMessageReceived(node, message)
        except Exception:
            logger.exception(
                "pysyncobj failed on a %s message from %s", message["type"], self._name(link)
            )
            link.close()

    def _check_snapshot_size(self, link: RaftLink, message: dict[str, Any]) -> None:
        chunk = message.get("serialized")
        if chunk is None:
            return
        data, first, _last = chunk
        total = len(data) + (0 if first else self._snapshot_bytes.get(link, 0))
        if total > MAX_SNAPSHOT_BYTES:
            raise RaftWireError("malformed", f"a snapshot of over {MAX_SNAPSHOT_BYTES} bytes")
        self._snapshot_bytes[link] = total

    def _command_signatures(self) -> dict[int, tuple[type, ...]]:
        """Argument types by method id; pysyncobj numbers the methods after it built
        the transport, so this is resolved on first use."""
        if self._signatures is None:
            self._signatures = {
                method_id: self._signatures_by_name[method.origName]
                for method_id, method in self._sync._idToMethod.items()  # noqa: SLF001
                if method.origName in self._signatures_by_name
            }
        return self._signatures

    # --- reporting ---------------------------------------------------------------------

    def _name(self, link: RaftLink) -> str:
        """The peer as far as it is known: a node id only once the handshake proved it."""
        if link.peer_id is None:
            return link.remote_address
        if link.was_open:
            return f"node {link.peer_id[:16]}… at {link.remote_address}"
        role = "dialled as" if link.dialled else "claiming to be"
        return f"{link.remote_address} ({role} node {link.peer_id[:16]}…)"

    def _misbehaved(self, link: RaftLink, kind: str, detail: str) -> None:
        self._log.warning(
            (kind, link.peer_id),
            "raft member %s misbehaved (%s): %s",
            self._name(link),
            kind,
            detail,
        )
        self._report(link, kind)

    def _report(self, link: RaftLink, kind: str) -> None:
        """Count ``kind`` against the member the link proved to be, or "unknown"."""
        if self._observer is not None:
            proven = link.peer_id if link.was_open and link.peer_id is not None else "unknown"
            self._observer(proven, kind)
