"""WebSocket bounds through a real node: a subscriber that stops reading while blocks
keep coming is disconnected (and only it: a reading subscriber with the same load goes
on), and one connection cannot hold more than 1,000 subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.node_process import NodeProcess, rpc

pytestmark = pytest.mark.integration

QUEUE_LIMIT = 256 * 1024
#: newHeads subscriptions per connection: about 60 KB of notifications per block, well
#: under the queue limit, so one block's burst alone never overflows a reading client.
SUBSCRIPTIONS = 50
NOWHERE = "0x" + "00" * 19 + "01"  # an address that emits no logs


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    started = NodeProcess(
        tmp_path_factory.mktemp("ws-bounds") / "data",
        extra_args=["--ws-max-queued-bytes", str(QUEUE_LIMIT)],
    )
    try:
        yield started.start()
    finally:
        started.stop()


def subscribe(kind: str, request_id: int, *options: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "eth_subscribe",
        "params": [kind, *options],
    }


async def subscribe_heads(ws: aiohttp.ClientWebSocketResponse, count: int) -> None:
    await ws.send_json([subscribe("newHeads", index) for index in range(count)])
    answers = await ws.receive_json(timeout=30)
    assert len(answers) == count and all("result" in answer for answer in answers), answers


async def mine(session: aiohttp.ClientSession, url: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}
    async with session.post(url, json=body) as response:
        assert "result" in await response.json()
    body = {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []}
    async with session.post(url, json=body) as response:
        return int((await response.json())["result"], 16)


async def test_a_subscriber_that_stops_reading_is_disconnected_and_others_go_on(
    node: NodeProcess,
) -> None:
    heads_seen: list[int] = []

    async def read_all(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                params = message.json().get("params")
                if params is not None:
                    heads_seen.append(int(params["result"]["number"], 16))

    async with aiohttp.ClientSession() as session:
        slow = await session.ws_connect(node.ws_url)
        reader = await session.ws_connect(node.ws_url)
        await subscribe_heads(slow, SUBSCRIPTIONS)
        await subscribe_heads(reader, SUBSCRIPTIONS)
        reading = asyncio.create_task(read_all(reader))
        try:
            # From here on ``slow`` is never read: its socket buffers fill, then the
            # node's queue for it, and the node must give it up.
            deadline = time.monotonic() + 90
            while "reads too slowly" not in node.log_path.read_text():
                assert time.monotonic() < deadline, "the slow subscriber was never dropped"
                await mine(session, node.http_url)
            log_line = next(
                line
                for line in node.log_path.read_text().splitlines()
                if "reads too slowly" in line
            )
            assert " INFO " in log_line and "closing the WebSocket connection" in log_line

            # The reading subscriber is still served: a block mined now reaches it.
            head = await mine(session, node.http_url)
            deadline = time.monotonic() + 30
            while heads_seen.count(head) < SUBSCRIPTIONS:
                assert time.monotonic() < deadline, f"block {head} never reached the reader"
                assert not reading.done(), "the reading subscriber was disconnected"
                await asyncio.sleep(0.05)
            assert not reader.closed
            assert "result" in rpc(node.http_url, "eth_chainId")

            # The slow one, read at last: what was already in flight, then the end.
            ended = None
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                while ended is None:
                    message = await slow.receive(timeout=30)
                    if message.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        ended = message
            assert slow.closed or ended is not None
            if ended is not None and ended.type == aiohttp.WSMsgType.CLOSE:
                assert ended.data == 1008  # policy violation, with the reason
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            await slow.close()
            await reader.close()


async def test_subscriptions_per_connection_are_capped_at_1000(node: NodeProcess) -> None:
    logs = {"address": NOWHERE}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(node.ws_url) as ws:
            await ws.send_json([subscribe("logs", index, logs) for index in range(1_000)])
            answers = await ws.receive_json(timeout=30)
            ids = [answer["result"] for answer in answers]
            assert len(set(ids)) == 1_000

            await ws.send_json(subscribe("newHeads", 1_000))
            refused = await ws.receive_json(timeout=10)
            assert refused["error"]["code"] == -32000
            assert "the limit is 1000" in refused["error"]["message"]

            await ws.send_json(
                {"jsonrpc": "2.0", "id": 1_001, "method": "eth_unsubscribe", "params": [ids[0]]}
            )
            assert (await ws.receive_json(timeout=10))["result"] is True
            await ws.send_json(subscribe("newHeads", 1_002))
            assert "result" in await ws.receive_json(timeout=10)

            # The cap is per connection: another one starts from zero.
            async with session.ws_connect(node.ws_url) as other:
                await other.send_json(subscribe("newHeads", 1))
                assert "result" in await other.receive_json(timeout=10)


async def test_a_node_with_a_connected_websocket_client_stops_at_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """SIGTERM closes open WebSockets with 1001 "going away" instead of waiting (aiohttp's
    cleanup would wait a minute for each client, and `qnet down` with it)."""
    node = NodeProcess(tmp_path_factory.mktemp("ws-stop") / "data").start()
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(node.ws_url) as ws:
            await ws.send_json(subscribe("newHeads", 1))
            assert "result" in await ws.receive_json(timeout=10)
            assert node.process is not None
            started = time.monotonic()
            node.process.send_signal(signal.SIGTERM)
            message = await ws.receive(timeout=15)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
            await asyncio.to_thread(node.process.wait, 15)
            assert time.monotonic() - started < 15
    finally:
        node.stop()
