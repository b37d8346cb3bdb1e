"""The JSON-RPC edge's rules in-process: Host and Origin matching, Content-Type,
namespace filtering in the dispatcher, batch limits, the outbox bound, and the config
fields that carry them. The real-process tests are in test_rpc_edge.py and
test_ws_bounds.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from quorum_node.config import (
    DEFAULT_APIS,
    RpcConfig,
    check_insecure_unlock,
    load_node_config,
    parse_apis,
)
from quorum_node.errors import ConfigError
from quorum_node.rpc.access import content_type_is_json, host_allowed, origin_allowed
from quorum_node.rpc.dispatcher import CallContext, Dispatcher, namespace_of, rpc_method
from quorum_node.rpc.outbox import Outbox
from quorum_shared.addresses import is_loopback_host
from quorum_shared.config_files import write_document

# --- Host ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8545",
        "LOCALHOST:1",
        "127.0.0.1",
        "127.0.0.1:8545",
        "[::1]:8545",
        "[::1]",
        "::1",
        "192.168.1.20:80",
        "[fe80::1%eth0]:8545",
    ],
)
def test_default_vhosts_serve_localhost_and_ip_literals(host: str) -> None:
    assert host_allowed(host, ("localhost",))


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "evil.example:8545",
        "localhost.evil.example",
        "localhost.",
        "127.0.0.1.nip.io",
        "2130706433",  # 127.0.0.1 as a number: a name to DNS, not an IP literal here
        "[::1",
    ],
)
def test_default_vhosts_refuse_names_and_junk(host: str | None) -> None:
    assert not host_allowed(host, ("localhost",))


def test_vhost_star_and_listed_names() -> None:
    assert host_allowed("anything.example", ("*",)) and host_allowed(None, ("*",))
    assert host_allowed("Node.Internal:8545", ("node.internal",))
    assert not host_allowed("localhost", ("node.internal",))
    assert not host_allowed("node.internal", ())


# --- Origin ------------------------------------------------------------------------------

LOCAL = ("http://localhost", "http://127.0.0.1", "http://[::1]")


@pytest.mark.parametrize(
    "origin",
    ["http://localhost", "http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8080"],
)
def test_localhost_origins_match_on_any_port(origin: str) -> None:
    assert origin_allowed(origin, LOCAL)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://localhost",  # another scheme than the rule's
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "null",
        "",
        "file://",
        "localhost:3000",  # no scheme: not a browser origin
        "http://localhost:notaport",
    ],
)
def test_other_origins_do_not(origin: str) -> None:
    assert not origin_allowed(origin, LOCAL)


def test_origin_rules_with_port_without_scheme_and_star() -> None:
    assert origin_allowed("http://app.example:3000", ("http://app.example:3000",))
    assert not origin_allowed("http://app.example:3001", ("http://app.example:3000",))
    assert origin_allowed("https://app.example", ("app.example",))
    assert origin_allowed("HTTP://APP.EXAMPLE", ("http://app.example",))
    assert origin_allowed("null", ("*",))
    assert not origin_allowed("http://app.example", ())


# --- Content-Type ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("application/json", True),
        ("application/json; charset=UTF-8", True),
        (" Application/JSON ", True),
        ("application/json-rpc", True),
        ("application/jsonrequest", True),
        ("text/plain", False),
        ("text/plain; charset=application/json", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/jsonx", False),
        ("", False),
        (None, False),
    ],
)
def test_content_type(header: str | None, accepted: bool) -> None:
    assert content_type_is_json(header) is accepted


# --- namespaces in the dispatcher ---------------------------------------------------------


class Sample:
    @rpc_method("eth_sample")
    async def eth_sample(self, params: Any, context: CallContext) -> str:
        return "eth"

    @rpc_method("admin_sample")
    async def admin_sample(self, params: Any, context: CallContext) -> str:
        return "admin"

    @rpc_method("quorumExtension_sample")
    async def extension_sample(self, params: Any, context: CallContext) -> str:
        return "quorum"

    @rpc_method("eth_big")
    async def eth_big(self, params: Any, context: CallContext) -> str:
        return "x" * 1000


def test_namespace_of() -> None:
    assert namespace_of("eth_getBalance") == "eth"
    assert namespace_of("debug_privateStateRoot") == "debug"
    assert namespace_of("quorumExtension_approveExtension") == "quorum"
    assert namespace_of("nounderscore") == "nounderscore"


async def answer(dispatcher: Dispatcher, body: Any, namespaces: frozenset[str]) -> Any:
    text = await dispatcher.answer(json.dumps(body), CallContext(namespaces=namespaces))
    return None if text is None else json.loads(text)


def call(method: str, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": []}


async def test_a_disabled_namespace_is_method_not_found() -> None:
    dispatcher = Dispatcher()
    dispatcher.register(Sample())
    enabled = frozenset({"eth", "quorum"})
    assert (await answer(dispatcher, call("eth_sample"), enabled))["result"] == "eth"
    assert (await answer(dispatcher, call("quorumExtension_sample"), enabled))["result"] == "quorum"
    disabled = await answer(dispatcher, call("admin_sample"), enabled)
    unknown = await answer(dispatcher, call("admin_noSuchThing"), enabled)
    assert disabled["error"]["code"] == unknown["error"]["code"] == -32601
    assert disabled["error"]["message"] == (
        "the method admin_sample does not exist/is not available"
    )
    everything = frozenset({"eth", "admin", "quorum"})
    assert (await answer(dispatcher, call("admin_sample"), everything))["result"] == "admin"


async def test_a_context_that_names_no_namespace_serves_nothing() -> None:
    dispatcher = Dispatcher()
    dispatcher.register(Sample())
    text = await dispatcher.answer(json.dumps(call("eth_sample")), CallContext())
    assert text is not None and json.loads(text)["error"]["code"] == -32601


async def test_batch_item_limit_answers_one_error_with_the_first_call_id() -> None:
    dispatcher = Dispatcher(max_batch_size=3)
    dispatcher.register(Sample())
    eth = frozenset({"eth"})
    served = await answer(dispatcher, [call("eth_sample", i) for i in range(3)], eth)
    assert [item["result"] for item in served] == ["eth"] * 3
    notification = {"jsonrpc": "2.0", "method": "eth_sample"}
    refused = await answer(dispatcher, [notification] + [call("eth_sample", 7)] * 3, eth)
    assert refused == [
        {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {"code": -32600, "message": "batch too large (more than 3 items)"},
        }
    ]


async def test_batch_response_limit_turns_the_rest_into_errors() -> None:
    dispatcher = Dispatcher(max_batch_response_bytes=2_500)
    dispatcher.register(Sample())
    answers = await answer(dispatcher, [call("eth_big", i) for i in range(5)], frozenset({"eth"}))
    assert [item["id"] for item in answers] == [0, 1, 2, 3, 4]
    assert [("result" in item) for item in answers] == [True, True, False, False, False]
    assert answers[2]["error"] == {"code": -32003, "message": "response too large"}


# --- config ------------------------------------------------------------------------------


def test_parse_apis_refuses_unknown_names() -> None:
    assert parse_apis(["eth", " NET ", ""], "--http-api") == frozenset({"eth", "net"})
    with pytest.raises(ConfigError, match="--http-api: unknown API namespace eht"):
        parse_apis(["eht", "net"], "--http-api")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.5", False),
        ("node.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_insecure_unlock_rule() -> None:
    exposed = RpcConfig(host="0.0.0.0")
    check_insecure_unlock(RpcConfig(), 3)  # loopback: fine
    check_insecure_unlock(exposed, 0)  # nothing unlocked: fine
    check_insecure_unlock(RpcConfig(host="0.0.0.0", allow_insecure_unlock=True), 3)
    with pytest.raises(ConfigError, match="--allow-insecure-unlock"):
        check_insecure_unlock(exposed, 1)


def write_config(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({"datadir": "data", "genesis": "genesis.json", **fields}))
    return path


def test_node_json_access_fields(tmp_path: Path) -> None:
    rpc = load_node_config(
        write_config(
            tmp_path,
            rpc_host="0.0.0.0",
            http_vhosts=["node.internal"],
            http_corsdomain=["http://app.example"],
            ws_origins=[],
            http_api=["eth", "admin"],
            ws_api=["eth"],
            allow_insecure_unlock=True,
            rpc_batch_request_limit=10,
            rpc_batch_response_max_size=1000,
            ws_max_queued_bytes=4096,
        )
    ).rpc
    assert rpc.http_vhosts == ("node.internal",)
    assert rpc.http_corsdomain == ("http://app.example",)
    assert rpc.ws_origins == ()
    assert rpc.http_api == frozenset({"eth", "admin"}) and rpc.ws_api == frozenset({"eth"})
    assert rpc.allow_insecure_unlock is True
    assert (rpc.max_batch_size, rpc.max_batch_response_bytes, rpc.ws_max_queued_bytes) == (
        10,
        1000,
        4096,
    )


def test_node_toml_reads_as_the_same_fields_in_json(tmp_path: Path) -> None:
    """``node.toml`` (as ``qnet init`` writes it) and ``node.json`` (as earlier
    versions did) with the same fields give the same config."""
    fields: dict[str, Any] = {
        "datadir": "data",
        "genesis": "genesis.json",
        "consensus": "raft",
        "http_api": ["eth", "raft"],
        "p2p_host": "10.0.0.1",
        "p2p_port": 21000,
        "p2p_tls": {"cert": "tls/A.pem", "key": "tls/A.key", "ca": "tls/ca.pem"},
        "allow_insecure_unlock": False,
    }
    (tmp_path / "toml").mkdir()
    (tmp_path / "json").mkdir()
    write_document(tmp_path / "toml" / "node.toml", fields)
    write_document(tmp_path / "json" / "node.json", fields)
    from_toml = load_node_config(tmp_path / "toml" / "node.toml")
    from_json = load_node_config(tmp_path / "json" / "node.json")
    assert from_toml.p2p_tls is not None
    assert from_toml.p2p_tls.ca == tmp_path / "toml" / "tls" / "ca.pem"
    assert replace(from_toml, datadir=Path(), genesis_file=Path(), p2p_tls=None) == replace(
        from_json, datadir=Path(), genesis_file=Path(), p2p_tls=None
    )
    (tmp_path / "bad.toml").write_text("http_port = ")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_node_config(tmp_path / "bad.toml")


def test_node_json_defaults(tmp_path: Path) -> None:
    rpc = load_node_config(write_config(tmp_path)).rpc
    assert rpc.http_api == rpc.ws_api == DEFAULT_APIS
    assert rpc.http_vhosts == ("localhost",) and rpc.http_corsdomain == ()
    assert "http://localhost" in rpc.ws_origins and rpc.allow_insecure_unlock is False
    assert rpc.max_batch_size == 1_000 and rpc.max_batch_response_bytes == 25 * 1024 * 1024


@pytest.mark.parametrize(
    "fields",
    [
        {"http_api": "eth,net"},
        {"http_api": ["eht"]},
        {"ws_origins": [5]},
        {"allow_insecure_unlock": "yes"},
        {"rpc_batch_request_limit": 0},
    ],
)
def test_node_json_bad_access_fields(tmp_path: Path, fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        load_node_config(write_config(tmp_path, **fields))


# --- the outbox bound -----------------------------------------------------------------------


async def test_an_outbox_keeps_order_and_drains() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    outbox = Outbox(send, max_queued_bytes=10, on_overflow=lambda waiting: None)
    outbox.start()
    for text in ("abc", "def", "ghi"):
        assert outbox.put(text)
    while outbox.queued_bytes:
        await asyncio.sleep(0)
    assert sent == ["abc", "def", "ghi"]
    assert outbox.put("0123456789ABCDEF")  # one large message alone is accepted
    await outbox.close()


async def test_an_outbox_that_cannot_drain_overflows_once_and_drops_the_rest() -> None:
    stalled = asyncio.Event()
    overflows: list[int] = []

    async def send(text: str) -> None:
        stalled.set()
        await asyncio.Event().wait()  # a client that never reads

    outbox = Outbox(send, max_queued_bytes=10, on_overflow=overflows.append)
    outbox.start()
    assert outbox.put("aaaa")
    await stalled.wait()  # "aaaa" is being written, and stays so
    assert outbox.put("bbbb")  # 8 bytes waiting
    assert not outbox.put("ccc")  # 11 > 10: overflow
    assert overflows == [11] and outbox.overflowed and outbox.closed
    assert not outbox.put("d")  # closed: refused without a second overflow
    assert overflows == [11]
    await outbox.close()  # cancels the stalled write


async def test_an_outbox_whose_connection_broke_refuses_quietly() -> None:
    async def send(text: str) -> None:
        raise ConnectionResetError("gone")

    overflows: list[int] = []
    outbox = Outbox(send, max_queued_bytes=100, on_overflow=overflows.append)
    outbox.start()
    outbox.put("x")
    while not outbox.closed:
        await asyncio.sleep(0)
    assert not outbox.put("y") and overflows == []
    await outbox.close()
