"""Node-to-node HTTP: the signed server every node runs, and its client for peers.

Endpoints (all requests signed with the node key, see ``identity``):

* ``GET  /p2p/status``                 head, chain id and genesis of the node
* ``POST /p2p/transactions``           RLP list of raw transactions forwarded to the minter
* ``POST /p2p/blocks``                 RLP list with one block the minter pushes before proposing
* ``GET  /p2p/blocks?from=N&count=M``  RLP list of canonical blocks, for catching up

With ``server_tls`` and ``client_tls`` (node.json ``p2p_tls``) the channel is HTTPS with
client certificates: a peer whose certificate the network CA did not issue, or that
presents none, fails the handshake before any request is read. The request signatures
stay: TLS says "a member of this network", the signature says which node.

Requests from nodes that are not on the permissioned list, unsigned or forged requests,
and bodies that do not decode are refused with a 4xx and a message; the node keeps
serving. Peers that answered recently are "live" (``admin_peers``, ``net_peerCount``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from quorum_node.p2p.identity import Enode, NodeKey, SignatureRejected, verify_request
from quorum_node.p2p.permissions import PermissionedNodes
from quorum_node.p2p.wire import (
    MAX_BLOCKS_PER_REQUEST,
    PeerStatus,
    WireError,
    decode_list,
    encode_list,
)

logger = logging.getLogger(__name__)

MAX_P2P_BODY_BYTES = 64 * 1024 * 1024
PEER_LIVENESS_SECONDS = 6.0
PING_INTERVAL_SECONDS = 2.0


class PeerUnreachable(Exception):
    """Another node could not be reached, or refused a request (the message says which)."""


class P2PHandlers(Protocol):
    def peer_status(self) -> PeerStatus: ...

    async def receive_transactions(self, raw_transactions: list[bytes], sender: str) -> int: ...

    async def receive_block(self, encoded_block: bytes, sender: str) -> None: ...

    async def blocks_from(self, start: int, count: int) -> list[bytes]: ...


@dataclass
class Peer:
    enode: Enode
    last_seen: float = 0.0
    status: PeerStatus | None = None

    @property
    def live(self) -> bool:
        return time.monotonic() - self.last_seen < PEER_LIVENESS_SECONDS


@dataclass
class PeerNetwork:
    node_key: NodeKey
    permissions: PermissionedNodes
    host: str
    port: int
    peers: dict[str, Peer] = field(default_factory=dict)
    handlers: P2PHandlers | None = None
    on_peer_status: Callable[[Peer], Awaitable[None]] | None = None
    #: Both set (mutual TLS) or both None (plain HTTP).
    server_tls: ssl.SSLContext | None = None
    client_tls: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _ping_task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_P2P_BODY_BYTES)
        app.router.add_get("/p2p/status", self._status)
        app.router.add_post("/p2p/transactions", self._transactions)
        app.router.add_post("/p2p/blocks", self._push_block)
        app.router.add_get("/p2p/blocks", self._get_blocks)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self.port, reuse_address=True, ssl_context=self.server_tls
        )
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        connector = aiohttp.TCPConnector(ssl=self.client_tls if self.client_tls else True)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=10)
        )
        self.refresh_peers()
        self._ping_task = asyncio.create_task(self._ping_forever(), name="p2p-ping")

    async def stop(self) -> None:
        if self._ping_task is not None:
            self._ping_task.cancel()
            try:
                await self._ping_task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def refresh_peers(self) -> None:
        """Peers are the permissioned nodes other than this one."""
        known = {enode.node_id: enode for enode in self.permissions.enodes()}
        for node_id, enode in known.items():
            if node_id != self.node_key.node_id and node_id not in self.peers:
                self.peers[node_id] = Peer(enode)
        for node_id in [n for n in self.peers if n not in known]:
            del self.peers[node_id]

    def live_peers(self) -> list[Peer]:
        return [peer for peer in self.peers.values() if peer.live]

    def peers_to_ask(self) -> list[Peer]:
        """Every peer, the ones that answered recently first."""
        return sorted(self.peers.values(), key=lambda peer: not peer.live)

    # --- server side ---------------------------------------------------------------

    async def _authenticate(self, request: web.Request) -> tuple[str, bytes]:
        body = await request.read()
        try:
            signer = verify_request(request.method, request.path_qs, body, dict(request.headers))
        except SignatureRejected as exc:
            logger.warning("refused a p2p request from %s: %s", request.remote, exc)
            raise web.HTTPUnauthorized(text=f"{exc}\n") from None
        if not self.permissions.allows(signer):
            logger.warning("refused node %s…: not on the permissioned list", signer[:16])
            raise web.HTTPForbidden(text="node is not on the permissioned-nodes list\n")
        peer = self.peers.get(signer)
        if peer is not None:
            peer.last_seen = time.monotonic()
        return signer, body

    def _require_handlers(self) -> P2PHandlers:
        if self.handlers is None:
            raise web.HTTPServiceUnavailable(text="node is starting\n")
        return self.handlers

    async def _status(self, request: web.Request) -> web.StreamResponse:
        await self._authenticate(request)
        return web.json_response(self._require_handlers().peer_status().to_json())

    async def _transactions(self, request: web.Request) -> web.StreamResponse:
        signer, body = await self._authenticate(request)
        try:
            raws = decode_list(body, "transactions")
        except WireError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        try:
            accepted = await self._require_handlers().receive_transactions(raws, signer)
        except WireError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        return web.json_response({"accepted": accepted})

    async def _push_block(self, request: web.Request) -> web.StreamResponse:
        signer, body = await self._authenticate(request)
        try:
            (encoded_block,) = decode_list(body, "blocks")
        except (WireError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"expected a list with one block: {exc}\n") from None
        try:
            await self._require_handlers().receive_block(encoded_block, signer)
        except WireError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        return web.json_response({"ok": True})

    async def _get_blocks(self, request: web.Request) -> web.StreamResponse:
        await self._authenticate(request)
        try:
            start = int(request.query["from"])
            count = int(request.query.get("count", MAX_BLOCKS_PER_REQUEST))
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="expected ?from=N&count=M\n") from None
        if start < 0 or not 0 < count <= MAX_BLOCKS_PER_REQUEST:
            raise web.HTTPBadRequest(text=f"from >= 0 and 0 < count <= {MAX_BLOCKS_PER_REQUEST}\n")
        blocks = await self._require_handlers().blocks_from(start, count)
        return web.Response(body=encode_list(blocks), content_type="application/octet-stream")

    # --- client side ---------------------------------------------------------------

    def peer_url(self, peer: Peer) -> str:
        scheme = "https" if self.client_tls is not None else "http"
        return f"{scheme}://{peer.enode.host}:{peer.enode.p2p_port}"

    async def _request(self, peer: Peer, method: str, path: str, body: bytes = b"") -> bytes:
        if self._session is None:
            raise PeerUnreachable("network is not started")
        headers = self.node_key.sign_request(method, path, body)
        try:
            async with self._session.request(
                method, self.peer_url(peer) + path, data=body, headers=headers
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise PeerUnreachable(
                        f"{peer.enode.host}:{peer.enode.p2p_port} answered "
                        f"{response.status}: {payload[:200].decode(errors='replace')}"
                    )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(
                f"{peer.enode.host}:{peer.enode.p2p_port} unreachable: {exc}"
            ) from None
        peer.last_seen = time.monotonic()
        return payload

    async def fetch_status(self, peer: Peer) -> PeerStatus:
        payload = await self._request(peer, "GET", "/p2p/status")
        try:
            status = PeerStatus.from_json(json.loads(payload))
        except (ValueError, WireError) as exc:
            raise PeerUnreachable(f"bad status from peer: {exc}") from None
        peer.status = status
        return status

    async def send_transactions(self, peer: Peer, raw_transactions: list[bytes]) -> None:
        await self._request(peer, "POST", "/p2p/transactions", encode_list(raw_transactions))

    async def push_block(self, peer: Peer, encoded_block: bytes) -> None:
        await self._request(peer, "POST", "/p2p/blocks", encode_list([encoded_block]))

    async def fetch_blocks(self, peer: Peer, start: int, count: int) -> list[bytes]:
        payload = await self._request(peer, "GET", f"/p2p/blocks?from={start}&count={count}")
        try:
            return decode_list(payload, "blocks")
        except WireError as exc:
            raise PeerUnreachable(str(exc)) from None

    async def _ping_forever(self) -> None:
        while True:
            self.refresh_peers()
            await asyncio.gather(*(self._ping(peer) for peer in list(self.peers.values())))
            await asyncio.sleep(PING_INTERVAL_SECONDS)

    async def _ping(self, peer: Peer) -> None:
        try:
            await self.fetch_status(peer)
        except PeerUnreachable:
            return
        if self.on_peer_status is not None:
            try:
                await self.on_peer_status(peer)
            except Exception:
                logger.exception("handling a peer's status failed")

    def describe_peers(self) -> list[dict[str, Any]]:
        return [
            {
                "id": peer.enode.node_id,
                "enode": str(peer.enode),
                "name": "quorum-py",
                "network": {"remoteAddress": f"{peer.enode.host}:{peer.enode.p2p_port}"},
                "protocols": {
                    "eth": {
                        "head": peer.status.head_hash if peer.status else None,
                        "number": peer.status.head_number if peer.status else None,
                    }
                },
            }
            for peer in self.live_peers()
        ]
