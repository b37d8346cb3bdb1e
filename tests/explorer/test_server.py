"""The explorer's pages over HTTP, in process, with fake nodes: status codes, messages,
escaping and headers. No network, no browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from quorum_node.explorer.abi import AbiRegistry
from quorum_node.explorer.rpc_client import JsonRpc
from quorum_node.explorer.server import build_app
from tests.explorer.fakes import CONTRACT, PRIVATE_TX, non_party, participants, party


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    people = participants(3)
    nodes = [party(), party(), non_party()]
    for node in nodes:
        node.answers.update(
            {
                "eth_blockNumber": "0x0",
                "eth_getBlockByNumber": lambda params: None,
                "eth_getBlockByHash": None,
                "quorum_auditStatus": [],
            }
        )
    clients: dict[str, JsonRpc] = {p.name: n for p, n in zip(people, nodes, strict=True)}
    app = build_app(people, AbiRegistry.load(), clients)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_pages_render(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/", "/groups", f"/tx/{PRIVATE_TX}", f"/address/{CONTRACT}", "/fragment/latest"):
        reply = await client.get(path)
        assert reply.status == 200, (path, await reply.text())
        assert "default-src 'self'" in reply.headers["Content-Security-Policy"]
    text = await (await client.get(f"/tx/{PRIVATE_TX}")).text()
    assert text.count("not a party") >= 1 and "SimpleStorage.new(initVal=42)" in text


async def test_search_redirects_or_explains(client: TestClient) -> None:  # type: ignore[type-arg]
    reply = await client.get("/search", params={"q": "7"}, allow_redirects=False)
    assert reply.status == 302 and reply.headers["Location"] == "/block/7"
    reply = await client.get("/search", params={"q": "<b>bank</b>"})
    assert reply.status == 400
    text = await reply.text()
    assert "Cannot search for" in text and "<b>bank</b>" not in text  # escaped
    for path in ("/block/abc", "/tx/0x12", f"/address/{PRIVATE_TX}", "/search"):
        reply = await client.get(path)
        assert reply.status == 400, path
        assert 'id="message"' in await reply.text()


async def test_missing_things_are_404_pages(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/block/5")).status == 404
    assert (await client.get("/tx/0x" + "99" * 32)).status == 404
    assert (await client.get("/nowhere")).status == 404


async def test_only_get(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.post("/search", data={"q": "1"})).status == 405
