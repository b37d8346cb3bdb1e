"""The JSON-RPC edge against hostile browsers, as geth's: real ``quorum-node dev``
processes, raw HTTP requests and WebSocket handshakes with the headers a web page (or a
DNS-rebinding page) would make the browser send.

- a ``text/plain`` POST (a "simple" cross-site request) is 415 and runs nothing;
- a Host that is neither listed nor an IP address is 403 "invalid host specified";
- a WebSocket handshake from a foreign Origin is 403, on both ports;
- CORS headers only for listed origins (none by default);
- namespaces not enabled answer -32601, exactly as unknown methods;
- unlocked accounts on a non-loopback port need --allow-insecure-unlock;
- batches: at most 1,000 calls, at most N bytes of answers.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account

from tests.support.node_process import TEST_KEYS, NodeProcess, rpc

pytestmark = pytest.mark.integration

HELD = Account.from_key(TEST_KEYS[1]).address
APP_ORIGIN = "http://app.example"
EVIL_ORIGIN = "http://evil.example"


def request(
    url: str,
    method: str = "POST",
    body: Any = None,
    headers: dict[str, str] | None = None,
    host: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request with exactly the given headers (``host`` replaces Host)."""
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname is not None
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.putrequest(method, "/", skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if host is not None else parsed.netloc)
        data = json.dumps(body).encode() if body is not None else b""
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if method in ("POST", "PUT") or data:
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def call_body(method: str, params: list[Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []}


JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def configured_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node whose access settings are all set by flags (the dev node has defaults)."""
    node = NodeProcess(
        tmp_path_factory.mktemp("edge") / "data",
        extra_args=[
            "--http-vhosts",
            "node.internal",
            "--http-corsdomain",
            APP_ORIGIN,
            "--ws-origins",
            APP_ORIGIN,
            "--http-api",
            "eth,net",
            "--ws-api",
            "eth,net,web3,debug",
            "--rpc-batch-response-max-size",
            "4000",
            "--max-body-bytes",
            "65536",
        ],
    )
    try:
        yield node.start()
    finally:
        node.stop()


# --- Content-Type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_a_post_that_is_not_json_is_415_and_sends_nothing(
    dev_node: NodeProcess, content_type: str | None
) -> None:
    """What a web page can POST cross-site without a preflight: eth_sendTransaction from
    an account the node holds. Nothing may happen."""
    recipient = "0x" + "5e" * 20
    nonce_before = rpc(dev_node.http_url, "eth_getTransactionCount", [HELD, "pending"])["result"]
    spend = call_body("eth_sendTransaction", [{"from": HELD, "to": recipient, "value": "0x1"}])
    headers = {"Origin": EVIL_ORIGIN}
    if content_type is not None:
        headers["Content-Type"] = content_type
    status, response_headers, body = request(dev_node.http_url, body=spend, headers=headers)
    assert status == 415
    assert b"invalid content type, only application/json is supported" in body
    assert "access-control-allow-origin" not in response_headers
    rpc(dev_node.http_url, "evm_mine")
    assert rpc(dev_node.http_url, "eth_getTransactionCount", [HELD, "pending"])["result"] == (
        nonce_before
    )
    assert rpc(dev_node.http_url, "eth_getBalance", [recipient, "latest"])["result"] == "0x0"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json-rpc",
        "application/jsonrequest",
    ],
)
def test_json_content_types_are_served(dev_node: NodeProcess, content_type: str) -> None:
    status, _, body = request(
        dev_node.http_url, body=call_body("eth_chainId"), headers={"Content-Type": content_type}
    )
    assert status == 200 and json.loads(body)["result"].startswith("0x")


# --- Host (DNS rebinding) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8545", "localhost.evil.example", "", "127.0.0.1.nip.io"]
)
def test_a_hostile_host_is_403_invalid_host_specified(dev_node: NodeProcess, host: str) -> None:
    status, _, body = request(
        dev_node.http_url, body=call_body("eth_accounts"), headers=JSON, host=host
    )
    assert status == 403
    assert body.strip() == b"invalid host specified"


def test_localhost_and_ip_hosts_pass(dev_node: NodeProcess) -> None:
    port = urllib.parse.urlsplit(dev_node.http_url).port
    for host in (
        f"localhost:{port}",
        "localhost",
        "LocalHost",
        f"127.0.0.1:{port}",
        "127.0.0.1",
        f"[::1]:{port}",
        "10.20.30.40",  # an IP literal cannot be rebound
    ):
        status, _, body = request(
            dev_node.http_url, body=call_body("eth_chainId"), headers=JSON, host=host
        )
        assert status == 200, (host, body)
        assert json.loads(body)["result"].startswith("0x"), host


def test_listed_vhosts_pass_and_localhost_then_does_not(configured_node: NodeProcess) -> None:
    chain_id = call_body("eth_chainId")
    assert (
        request(configured_node.http_url, body=chain_id, headers=JSON, host="node.internal")[0]
        == 200
    )
    assert (
        request(configured_node.http_url, body=chain_id, headers=JSON, host="Node.Internal:1")[0]
        == 200
    )
    assert (
        request(configured_node.http_url, body=chain_id, headers=JSON, host="localhost")[0] == 403
    )
    assert (
        request(configured_node.http_url, body=chain_id, headers=JSON, host="127.0.0.1")[0] == 200
    )


async def test_a_websocket_with_a_hostile_host_is_403(dev_node: NodeProcess) -> None:
    for url in (dev_node.ws_url, dev_node.http_url.replace("http://", "ws://")):
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, headers={"Host": "evil.example"})
            assert refused.value.status == 403


# --- WebSocket origins -------------------------------------------------------------------


async def chain_id_over(url: str, origin: str | None) -> str:
    headers = {"Origin": origin} if origin is not None else {}
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        await ws.send_json(call_body("eth_chainId"))
        return str((await ws.receive_json(timeout=10))["result"])


@pytest.mark.parametrize("port", ["ws", "http"])
@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "null", "http://localhost.evil.example", ""])
async def test_a_foreign_origin_websocket_is_refused_at_the_handshake(
    dev_node: NodeProcess, port: str, origin: str
) -> None:
    url = dev_node.ws_url if port == "ws" else dev_node.http_url.replace("http://", "ws://")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await chain_id_over(url, origin)
    assert refused.value.status == 403


@pytest.mark.parametrize("port", ["ws", "http"])
@pytest.mark.parametrize(
    "origin", [None, "http://localhost", "http://localhost:3000", "http://127.0.0.1:5173"]
)
async def test_programs_and_localhost_origins_open_a_websocket(
    dev_node: NodeProcess, port: str, origin: str | None
) -> None:
    url = dev_node.ws_url if port == "ws" else dev_node.http_url.replace("http://", "ws://")
    assert (await chain_id_over(url, origin)).startswith("0x")


async def test_listed_ws_origins_replace_the_localhost_ones(configured_node: NodeProcess) -> None:
    url = configured_node.ws_url
    headers = {"Host": "node.internal"}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers={**headers, "Origin": APP_ORIGIN}) as ws:
            await ws.send_json(call_body("net_version"))
            assert "result" in await ws.receive_json(timeout=10)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers={**headers, "Origin": "http://localhost:3000"})
        assert refused.value.status == 403


# --- CORS --------------------------------------------------------------------------------


def preflight(url: str, origin: str, host: str | None = None) -> tuple[int, dict[str, str]]:
    status, headers, _ = request(
        url,
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        host=host,
    )
    return status, headers


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-allow")}


def test_no_cors_by_default(dev_node: NodeProcess) -> None:
    for origin in (EVIL_ORIGIN, "http://localhost:3000"):
        status, headers = preflight(dev_node.http_url, origin)
        assert status == 403 and cors_headers(headers) == {}
        status, headers, _ = request(
            dev_node.http_url, body=call_body("eth_chainId"), headers={**JSON, "Origin": origin}
        )
        assert status == 200 and cors_headers(headers) == {}


def test_cors_for_listed_origins_only(configured_node: NodeProcess) -> None:
    url, host = configured_node.http_url, "node.internal"
    status, headers = preflight(url, APP_ORIGIN, host)
    assert status == 204
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"].lower()
    status, headers, _ = request(
        url, body=call_body("eth_chainId"), headers={**JSON, "Origin": APP_ORIGIN}, host=host
    )
    assert status == 200 and headers["access-control-allow-origin"] == APP_ORIGIN
    status, headers = preflight(url, EVIL_ORIGIN, host)
    assert status == 403 and cors_headers(headers) == {}


# --- namespaces --------------------------------------------------------------------------


def test_a_disabled_namespace_answers_as_an_unknown_method(dev_node: NodeProcess) -> None:
    """debug is opt-in: the dev node serves it only when listed."""
    disabled = rpc(dev_node.http_url, "debug_privateStateRoot", ["latest"])
    unknown = rpc(dev_node.http_url, "debug_noSuchMethod", ["latest"])
    assert disabled["error"]["code"] == unknown["error"]["code"] == -32601
    assert disabled["error"]["message"] == (
        "the method debug_privateStateRoot does not exist/is not available"
    )
    assert "result" in rpc(dev_node.http_url, "evm_mine")  # evm: on under dev


async def test_http_and_websocket_serve_their_own_namespaces(configured_node: NodeProcess) -> None:
    """--http-api eth,net and --ws-api eth,net,web3,debug on one node."""
    headers = {**JSON}

    def http_call(method: str, params: list[Any]) -> dict[str, Any]:
        _, _, body = request(
            configured_node.http_url,
            body=call_body(method, params),
            headers=headers,
            host="node.internal",
        )
        return dict(json.loads(body))

    assert "result" in http_call("eth_blockNumber", [])
    for method, params in (("web3_clientVersion", []), ("debug_privateStateRoot", ["latest"])):
        assert http_call(method, params)["error"]["code"] == -32601, method
    assert http_call("txpool_status", [])["error"]["code"] == -32601
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(configured_node.ws_url, headers={"Host": "node.internal"}) as ws,
    ):
        for index, method in enumerate(("web3_clientVersion", "debug_privateStateRoot")):
            await ws.send_json(call_body(method, ["latest"] if "debug" in method else [], index))
            answer = await ws.receive_json(timeout=10)
            assert "result" in answer, answer
        await ws.send_json(call_body("txpool_status", [], 9))
        assert (await ws.receive_json(timeout=10))["error"]["code"] == -32601


# --- batches -----------------------------------------------------------------------------


def test_a_batch_of_1001_calls_is_refused_and_1000_served(dev_node: NodeProcess) -> None:
    batch = [call_body("eth_chainId", request_id=index + 1) for index in range(1_001)]
    status, _, body = request(dev_node.http_url, body=batch, headers=JSON)
    assert status == 200
    (error,) = json.loads(body)
    assert error["id"] == 1
    assert error["error"]["code"] == -32600 and "batch too large" in error["error"]["message"]
    status, _, body = request(dev_node.http_url, body=batch[:1_000], headers=JSON)
    answers = json.loads(body)
    assert len(answers) == 1_000 and all("result" in answer for answer in answers)


def test_a_batch_answer_above_the_limit_ends_in_response_too_large(
    configured_node: NodeProcess,
) -> None:
    """--rpc-batch-response-max-size 4000: blocks of about 1 KB each."""
    batch = [call_body("eth_getBlockByNumber", ["0x0", False], index) for index in range(10)]
    _, _, body = request(configured_node.http_url, body=batch, headers=JSON, host="node.internal")
    answers = json.loads(body)
    assert [answer["id"] for answer in answers] == list(range(10))
    served = [answer for answer in answers if "result" in answer]
    refused = answers[len(served) :]
    assert 1 <= len(served) < 10 and refused
    for answer in refused:
        assert answer["error"] == {"code": -32003, "message": "response too large"}
    assert len(json.dumps(served)) <= 4000


async def test_a_websocket_message_above_the_body_limit_closes_with_1009(
    configured_node: NodeProcess,
) -> None:
    """--max-body-bytes 65536 bounds WebSocket messages too."""
    headers = {"Host": "node.internal"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(configured_node.ws_url, headers=headers) as ws,
    ):
        await ws.send_json(call_body("eth_getBalance", ["0x" + "00" * 20, "latest"]))
        assert "result" in await ws.receive_json(timeout=10)  # under the limit: served
        await ws.send_json(call_body("eth_getBalance", ["0x" + "00" * 40_000, "latest"]))
        message = await ws.receive(timeout=30)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        assert ws.close_code == 1009  # message too big
    assert "result" in rpc(configured_node.http_url, "eth_chainId")


# --- unlocked accounts beyond loopback -------------------------------------------------------


def test_unlocked_accounts_on_a_non_loopback_host_need_allow_insecure_unlock(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable,
        "-m",
        "quorum_node.cli",
        "dev",
        "--datadir",
        str(tmp_path / "refused"),
        "--http-host",
        "0.0.0.0",
        "--http-port",
        "0",
        "--ws-port",
        "0",
    ]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert "refusing to unlock" in lines[0] and "--allow-insecure-unlock" in lines[0]
    assert "0.0.0.0" in lines[0]

    node = NodeProcess(
        tmp_path / "allowed", extra_args=["--http-host", "0.0.0.0", "--allow-insecure-unlock"]
    )
    try:
        node.start()
        accounts = rpc(node.http_url, "eth_accounts")["result"]
        assert HELD.lower() in [account.lower() for account in accounts]
    finally:
        node.stop()
