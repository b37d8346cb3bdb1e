"""Bad input on the JSON-RPC edge, sent as raw HTTP: every refusal has geth's code, no
handler ever answers -32603 (an unexpected exception), and the node keeps serving.
"""

from __future__ import annotations

import http.client
import importlib
import inspect
import json
import pkgutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import rlp
from eth_account import Account

import quorum_node.rpc
from tests.support.node_process import TEST_KEYS, NodeProcess, rpc

pytestmark = pytest.mark.integration

ADDRESS = "0x" + "12" * 20
HELD = Account.from_key(TEST_KEYS[0]).address  # the node holds every TEST_KEY
HASH = "0x" + "ab" * 32
OTHER_ADDRESS = "0x" + "34" * 20
SHORT_ADDRESS = "0x1234"
MANAGER_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # 32 bytes, base64
NOT_HEX = "0xzzzz"
OBJECT = {"unexpected": "object"}
DEFAULT_MAX_BODY = 5 * 1024 * 1024


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, Any]:
    """POST ``body``; (HTTP status, decoded JSON or None for an empty body)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, (json.loads(raw) if raw.strip() else None)


def call(url: str, method: str, params: Any) -> dict[str, Any]:
    status, response = post(
        url, json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).encode()
    )
    assert status == 200, response
    assert response["jsonrpc"] == "2.0" and response["id"] == 7, response
    return response  # type: ignore[no-any-return]


def error_code(response: dict[str, Any]) -> int:
    assert "error" in response and "result" not in response, response
    assert isinstance(response["error"]["message"], str) and response["error"]["message"]
    return response["error"]["code"]  # type: ignore[no-any-return]


def rpc_method_names() -> set[str]:
    """Every method a namespace in ``quorum_node.rpc`` defines."""
    names = set()
    for module_info in pkgutil.iter_modules(quorum_node.rpc.__path__):
        module = importlib.import_module(f"quorum_node.rpc.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for attribute in dir(cls):
                name = getattr(getattr(cls, attribute), "_rpc_name", None)
                if name is not None:
                    names.add(name)
    return names


def assert_alive(node: NodeProcess) -> None:
    assert int(rpc(node.http_url, "eth_blockNumber")["result"], 16) >= 0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A dev node that also serves ``debug`` (opt-in), so its methods' checks run too."""
    apis = "eth,net,web3,txpool,quorum,evm,debug"
    started = NodeProcess(
        tmp_path_factory.mktemp("bad-input") / "data",
        extra_args=["--http-api", apis, "--ws-api", apis],
    )
    try:
        yield started.start()
        assert_alive(started)
    finally:
        started.stop()


@pytest.fixture(scope="module")
def url(node: NodeProcess) -> str:
    return node.http_url


# --- the envelope -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"',
        b"\xff\xfe\x00",
        b"",
        b"[1, 2",
    ],
)
def test_malformed_json_is_a_parse_error(url: str, body: bytes) -> None:
    status, response = post(url, body)
    assert status == 200
    assert response["id"] is None and error_code(response) == -32700


@pytest.mark.parametrize(
    "request_object",
    [
        42,
        "eth_chainId",
        None,
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"},
        {"id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "eth_chainId"},
    ],
)
def test_invalid_request(url: str, request_object: Any) -> None:
    status, response = post(url, json.dumps(request_object).encode())
    assert status == 200
    assert error_code(response) == -32600


def test_unknown_method(url: str) -> None:
    response = call(url, "eth_noSuchMethod", [])
    assert error_code(response) == -32601
    assert "eth_noSuchMethod" in response["error"]["message"]


def test_empty_batch(url: str) -> None:
    status, response = post(url, b"[]")
    assert status == 200 and error_code(response) == -32600


def test_batch_mixing_good_and_bad_answers_each_item(url: str) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_noSuchMethod", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": [SHORT_ADDRESS]},
        5,
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # a notification
        {"jsonrpc": "1.0", "id": 6, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": "seven", "method": "eth_blockNumber"},
    ]
    status, responses = post(url, json.dumps(batch).encode())
    assert status == 200 and isinstance(responses, list)
    assert len(responses) == 6  # everything but the notification
    by_id = {response["id"]: response for response in responses if response["id"] is not None}
    assert by_id[1]["result"].startswith("0x")
    assert error_code(by_id[2]) == -32601
    assert error_code(by_id[3]) == -32602
    assert error_code(by_id[6]) == -32600
    assert int(by_id["seven"]["result"], 16) >= 0
    (no_id,) = [response for response in responses if response["id"] is None]
    assert error_code(no_id) == -32600


def test_batch_above_the_limit_is_refused(url: str) -> None:
    """geth's answer: one -32600 "batch too large" error, in an array, with the id of
    the batch's first call."""
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(10_001)]
    status, response = post(url, json.dumps(batch).encode())
    assert status == 200 and len(response) == 1
    assert error_code(response[0]) == -32600 and response[0]["id"] == 0


def test_notifications_get_no_response(url: str) -> None:
    notification = {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []}
    assert post(url, json.dumps(notification).encode()) == (200, None)
    failing = {"jsonrpc": "2.0", "method": "eth_getBalance", "params": [SHORT_ADDRESS]}
    assert post(url, json.dumps(failing).encode()) == (200, None)
    assert post(url, json.dumps([notification, failing]).encode()) == (200, None)


def test_params_may_be_omitted_or_null(url: str) -> None:
    for body in (
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": None},
    ):
        status, response = post(url, json.dumps(body).encode())
        assert status == 200 and response["result"].startswith("0x")


# --- bodies too large -----------------------------------------------------------------


def test_body_above_the_default_limit_is_413_with_a_json_error(url: str) -> None:
    padding = "0x" + "00" * (DEFAULT_MAX_BODY // 2)
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": [padding]}
    ).encode()
    assert len(body) > DEFAULT_MAX_BODY
    status, response = post(url, body)
    assert status == 413
    assert error_code(response) in (-32600, -32000)


def test_chunked_body_above_the_limit_is_413(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    chunk = b" " * (1024 * 1024)
    try:
        connection.request(
            "POST",
            "/",
            body=iter([chunk] * 6),
            encode_chunked=True,
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
        response = connection.getresponse()
        status, raw = response.status, response.read()
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the node dropped the connection instead of answering 413")
    finally:
        connection.close()
    assert status == 413
    assert error_code(json.loads(raw)) in (-32600, -32000)


def test_max_body_bytes_option(tmp_path_factory: pytest.TempPathFactory) -> None:
    node = NodeProcess(
        tmp_path_factory.mktemp("small") / "data", extra_args=["--max-body-bytes", "2048"]
    )
    try:
        node.start()
        fits = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": ["0x" + "11" * 900]}
        ).encode()
        assert len(fits) <= 2048
        status, response = post(node.http_url, fits)
        assert status == 200 and response["result"].startswith("0x")
        too_big = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": ["0x" + "11" * 1100]}
        ).encode()
        assert len(too_big) > 2048
        status, response = post(node.http_url, too_big)
        assert status == 413 and error_code(response) in (-32600, -32000)
        assert_alive(node)
    finally:
        node.stop()


# --- wrong-typed params, method by method ------------------------------------------------

TX_BAD = [
    [OBJECT | {"to": SHORT_ADDRESS}],
    [{"to": ADDRESS, "value": "0xzz"}],
    [{"to": ADDRESS, "value": "12"}],
    [{"to": ADDRESS, "data": 5}],
    [{"to": ADDRESS, "data": "0x123"}],
    [{"to": ADDRESS, "gas": "0x" + "f" * 40}],
    [{"to": ADDRESS, "from": NOT_HEX}],
    [{"to": ADDRESS, "data": "0x00", "input": "0x01"}],
    [{"to": ADDRESS, "accessList": "nope"}],
    [{"to": ADDRESS, "accessList": [{"address": ADDRESS, "storageKeys": ["0x01"]}]}],
    [{"to": ADDRESS, "accessList": [5]}],
    ["0x1234"],
    [[ADDRESS]],
]
BLOCK_BAD = [
    OBJECT,
    "latestt",
    NOT_HEX,
    "0x",
    -1,
    1.5,
    True,
    {"blockNumber": NOT_HEX},
    {"blockHash": "0x12"},
    "0x" + "1" * 70,
]
FILTER_BAD = [
    [{"address": SHORT_ADDRESS}],
    [{"address": [ADDRESS, 5]}],
    [{"topics": "0x12"}],
    [{"topics": ["0x12"]}],
    [{"topics": [[HASH, NOT_HEX]]}],
    [{"topics": [HASH] * 5}],
    [{"fromBlock": NOT_HEX}],
    [{"toBlock": OBJECT}],
    [{"blockHash": HASH, "fromBlock": "0x1"}],
    [{"blockHash": "0x12"}],
    ["not an object"],
    [[]],
]

#: method -> wrong params; every entry must be answered -32602 (or -32000 where geth does)
BAD_PARAMS: dict[str, list[Any]] = {
    "eth_getBalance": [
        [SHORT_ADDRESS],
        [OBJECT],
        [NOT_HEX + "0" * 36],
        [ADDRESS, OBJECT],
        *[[ADDRESS, block] for block in BLOCK_BAD],
    ],
    "eth_getTransactionCount": [[SHORT_ADDRESS], [OBJECT, "latest"], [ADDRESS, "pendingg"]],
    "eth_getCode": [[SHORT_ADDRESS], [5], [ADDRESS, OBJECT]],
    "eth_getStorageAt": [
        [ADDRESS],
        [ADDRESS, OBJECT],
        [ADDRESS, NOT_HEX],
        [SHORT_ADDRESS, "0x0"],
        [ADDRESS, "0x" + "zz" * 32],
        [ADDRESS, "0x" + "1" * 80],
    ],
    "eth_call": [
        *TX_BAD,
        [{"to": ADDRESS}, OBJECT],
        [{"to": ADDRESS}, "latest", "overrides"],
        [{"to": ADDRESS}, "latest", {SHORT_ADDRESS: {}}],
        [{"to": ADDRESS}, "latest", {ADDRESS: {"balance": NOT_HEX}}],
        [{"to": ADDRESS}, "latest", {ADDRESS: {"code": 5}}],
        [{"to": ADDRESS}, "latest", {ADDRESS: {"stateDiff": {"0x01": "0x02"}}}],
        [{"to": ADDRESS}, "latest", {ADDRESS: {"state": [], "stateDiff": {}}}],
        [{"to": ADDRESS}, "latest", {ADDRESS: "x"}],
    ],
    "eth_estimateGas": [*TX_BAD, [{"to": ADDRESS}, NOT_HEX]],
    "eth_createAccessList": [*TX_BAD, [{"to": ADDRESS}, OBJECT]],
    "eth_sendTransaction": [
        *TX_BAD,
        [{"to": ADDRESS}],  # no "from"
        [{"from": HELD, "to": ADDRESS, "gasPrice": "0x1", "maxFeePerGas": "0x1"}],
        [{"from": HELD, "to": ADDRESS, "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}],
        [{"from": HELD, "to": ADDRESS, "chainId": "0x1"}],
        [{"from": ADDRESS, "to": ADDRESS}],  # an account the node does not hold: -32000
        [{"from": HELD, "to": ADDRESS}, "extra"],
    ],
    "eth_signTransaction": [*TX_BAD, [{"to": ADDRESS}], [{"from": ADDRESS, "to": ADDRESS}]],
    "eth_sendRawTransaction": [[NOT_HEX], [OBJECT], [5], ["0x123"], ["0x", "0x"]],
    "eth_sign": [[SHORT_ADDRESS, "0x00"], [HELD, "hello"], [HELD, OBJECT], [ADDRESS, "0x00"]],
    "eth_signTypedData_v4": [
        [HELD, "not json"],
        [HELD, 5],
        [HELD, {"types": 5}],
        [HELD, "[1]"],
        [SHORT_ADDRESS, {}],
    ],
    "eth_signTypedData": [[HELD, "not json"], [HELD, {"types": 5}]],
    "eth_getTransactionByHash": [["0x12"], [OBJECT], [NOT_HEX], [HASH + "00"]],
    "eth_getRawTransactionByHash": [["0x12"], [OBJECT]],
    "eth_getTransactionReceipt": [["0x12"], [OBJECT], [None]],
    "eth_getTransactionByBlockHashAndIndex": [["0x12", "0x0"], [HASH, NOT_HEX], [HASH, OBJECT]],
    "eth_getTransactionByBlockNumberAndIndex": [[OBJECT, "0x0"], ["latest", "0x" + "f" * 20]],
    "eth_getRawTransactionByBlockHashAndIndex": [["0x12", "0x0"], [HASH, NOT_HEX]],
    "eth_getRawTransactionByBlockNumberAndIndex": [[OBJECT, "0x0"], ["latest", OBJECT]],
    "eth_getBlockByNumber": [[OBJECT], ["latest", "yes"], [HASH, False], [NOT_HEX, False]],
    "eth_getBlockByHash": [["0x12", False], [OBJECT, False], [HASH, "no"]],
    "eth_getBlockTransactionCountByHash": [["0x12"], [OBJECT]],
    "eth_getBlockTransactionCountByNumber": [[OBJECT], [NOT_HEX]],
    "eth_getUncleCountByBlockHash": [["0x12"], [5]],
    "eth_getUncleCountByBlockNumber": [[OBJECT]],
    "eth_getUncleByBlockHashAndIndex": [["0x12", "0x0"], [HASH, OBJECT]],
    "eth_getUncleByBlockNumberAndIndex": [[OBJECT, "0x0"], ["latest", NOT_HEX]],
    "eth_getBlockReceipts": [[OBJECT], [NOT_HEX], ["0x" + "12" * 30], [HASH, "extra"]],
    "eth_feeHistory": [
        [NOT_HEX, "latest"],
        ["0x5", OBJECT],
        ["0x5", "latest", "x"],
        ["0x5", "latest", [50, 10]],
        ["0x5", "latest", [101]],
        ["0x5", "latest", [True]],
        ["0x" + "f" * 10, "latest"],
    ],
    "eth_getLogs": FILTER_BAD,
    "eth_newFilter": FILTER_BAD,
    "eth_getFilterChanges": [[5], [OBJECT], ["0xunknown"]],
    "eth_getFilterLogs": [[5], ["0xunknown"]],
    "eth_uninstallFilter": [[5], [OBJECT]],
    "eth_subscribe": [[5], ["newHeads", OBJECT, "extra"]],
    "eth_unsubscribe": [[5], [OBJECT]],
    "eth_getProof": [[SHORT_ADDRESS, [], "latest"], [ADDRESS, "x", "latest"]],
    "web3_sha3": [[NOT_HEX], [5], ["hello"], [OBJECT]],
    # privacy: a dev node without a transaction manager still checks its params first
    "eth_getQuorumPayload": [["0x12"], [OBJECT], [NOT_HEX], [HASH]],
    "eth_storageRoot": [[SHORT_ADDRESS], [OBJECT], [ADDRESS, OBJECT]],
    "eth_getContractPrivacyMetadata": [[SHORT_ADDRESS], [5]],
    "debug_privateStateRoot": [[OBJECT], [NOT_HEX]],
    "debug_privateStateRoots": [[OBJECT], ["latestt"]],
    "quorum_groupContracts": [["0x12"], [5], [NOT_HEX], [HASH, OBJECT]],
    "quorum_discloseTransaction": [
        ["0x12", MANAGER_KEY],
        [HASH, 5],
        [HASH, "not a key"],
        [OBJECT, MANAGER_KEY],
    ],
    "quorum_discloseGroup": [
        ["0x12", "0x1", MANAGER_KEY],
        [HASH, "x", MANAGER_KEY],
        [HASH, "0x1", 5],
        [HASH, OBJECT, MANAGER_KEY],
    ],
    "quorumExtension_extendContract": [
        ["0x12", MANAGER_KEY],
        [OTHER_ADDRESS, 5],
        [OTHER_ADDRESS, MANAGER_KEY, None, "x"],
        [OTHER_ADDRESS, MANAGER_KEY, None, {"from": "0x12"}],
        [OTHER_ADDRESS, MANAGER_KEY, None, {"scope": "everything"}],
    ],
    "quorum_proposeGroupChange": [
        [5],
        [{"groupId": "0x12"}],
        [{"contract": "0x12"}],
        [{"add": "x"}],
        [{"remove": [5]}],
        [{"scope": "x"}],
        [{}, "x"],
    ],
    "quorumExtension_approveExtension": [["0x12", True], [HASH, "yes"], [HASH, True, "x"]],
    "quorumExtension_cancelExtension": [["0x12"], [HASH, "x"]],
    "quorumExtension_getExtensionStatus": [["0x12"], [5]],
    "quorum_getGroupChange": [["0x12"], [5]],
    "evm_mine": [],
}

#: Methods whose every refusal geth answers -32000 (server error) rather than -32602.
SERVER_ERROR_OK = {"eth_getProof"}

CASES = [
    pytest.param(method, params, id=f"{method}-{index}")
    for method, bad in BAD_PARAMS.items()
    for index, params in enumerate(bad)
]


@pytest.mark.parametrize(("method", "params"), CASES)
def test_wrong_typed_params(url: str, method: str, params: Any) -> None:
    code = error_code(call(url, method, params))
    assert code != -32603
    assert code in (-32602, -32000), code
    if method in SERVER_ERROR_OK:
        return
    if code == -32000:
        # only checks on the node's state (an account not held, a filter not found,
        # a subscription over HTTP, a transaction refused) answer -32000
        assert any(
            isinstance(value, str) and value in (ADDRESS, "0xunknown")
            for item in params
            for value in (item.values() if isinstance(item, dict) else [item])
        ) or method in ("eth_subscribe", "eth_sendRawTransaction"), (method, params)


@pytest.mark.parametrize("method", sorted(rpc_method_names()))
def test_every_method_refuses_non_array_and_too_many_params(url: str, method: str) -> None:
    not_array = call(url, method, {"unexpected": "object"})
    if "error" in not_array and not_array["error"]["code"] == -32601:
        pytest.skip(f"{method} is not served by a solo dev node")
    assert error_code(not_array) in (-32602, -32000)
    too_many = call(url, method, [HASH] * 9)
    assert error_code(too_many) in (-32602, -32000)
    assert error_code(too_many) != -32603


def test_every_method_has_typed_bad_params_or_takes_none() -> None:
    """A new method must get its own wrong-typed cases in BAD_PARAMS."""
    without_params = {
        "eth_accounts",
        "eth_blobBaseFee",
        "eth_blockNumber",
        "eth_chainId",
        "eth_coinbase",
        "eth_gasPrice",
        "eth_hashrate",
        "eth_maxPriorityFeePerGas",
        "eth_mining",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_protocolVersion",
        "eth_syncing",
        "net_listening",
        "net_peerCount",
        "net_version",
        "txpool_content",
        "txpool_status",
        "web3_clientVersion",
        "admin_nodeInfo",
        "admin_peers",
        "raft_cluster",
        "raft_leader",
        "raft_role",
        "eth_getPrivacyPrecompileAddress",
        "quorum_auditStatus",
        "quorumExtension_activeExtensionContracts",
        "quorum_groupChanges",
        # takes a raw transaction and options; its refusals are tested in tests/privacy
        "eth_sendRawPrivateTransaction",
        # Raft's, not served by a solo dev node; refusals tested in tests/network
        "raft_addPeer",
        "raft_removePeer",
    }
    missing = rpc_method_names() - set(BAD_PARAMS) - without_params
    assert not missing, f"add wrong-typed params for {sorted(missing)}"


# --- raw transactions -----------------------------------------------------------------


def _signed_legacy(chain_id: int | None, nonce: int = 0) -> bytes:
    fields: dict[str, Any] = {
        "to": ADDRESS,
        "value": 1,
        "gas": 21_000,
        "gasPrice": 0,
        "nonce": nonce,
    }
    if chain_id is not None:
        fields["chainId"] = chain_id
    return bytes(Account.from_key(TEST_KEYS[7]).sign_transaction(fields).raw_transaction)


def _chain_id(url: str) -> int:
    return int(call(url, "eth_chainId", [])["result"], 16)


def test_raw_transaction_with_wrong_chain_id(url: str) -> None:
    wrong = _chain_id(url) + 1
    response = call(url, "eth_sendRawTransaction", ["0x" + _signed_legacy(wrong).hex()])
    assert error_code(response) == -32000
    assert "invalid chain id for signer" in response["error"]["message"]


@pytest.mark.parametrize(
    "field_index,value",
    [(6, 99), (7, 0), (8, 0), (8, 2**256 - 1)],
    ids=["v", "r-zero", "s-zero", "s-huge"],
)
def test_raw_transaction_with_invalid_signature(url: str, field_index: int, value: int) -> None:
    fields = rlp.decode(_signed_legacy(_chain_id(url), nonce=10_000))
    fields[field_index] = rlp.sedes.big_endian_int.serialize(value)
    tampered = rlp.encode(fields)
    response = call(url, "eth_sendRawTransaction", ["0x" + tampered.hex()])
    assert error_code(response) in (-32000, -32602)


@pytest.mark.parametrize(
    "raw",
    [
        "0xdeadbeef",
        "0x",
        "0xc0",
        "0x02c0",
        "0x7f" + "00" * 40,
        "0xf86c" + "00" * 10,
        "0x" + rlp.encode([b"\x01"] * 20).hex(),
    ],
)
def test_raw_transaction_garbage_rlp(url: str, raw: str) -> None:
    response = call(url, "eth_sendRawTransaction", [raw])
    assert error_code(response) in (-32000, -32602)


def test_raw_transaction_too_large(url: str) -> None:
    response = call(url, "eth_sendRawTransaction", ["0x" + "00" * (129 * 1024)])
    assert error_code(response) == -32000
    assert "oversized data" in response["error"]["message"]


# --- WebSocket ------------------------------------------------------------------------


async def test_websocket_bad_input_keeps_the_connection(node: NodeProcess) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(node.ws_url) as socket:
        await socket.send_str("{not json")
        assert (await socket.receive_json(timeout=10))["error"]["code"] == -32700
        await socket.send_str("[]")
        assert (await socket.receive_json(timeout=10))["error"]["code"] == -32600
        await socket.send_json(
            {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["noSuchKind"]}
        )
        assert (await socket.receive_json(timeout=10))["error"]["code"] == -32602
        await socket.send_json(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_subscribe",
                "params": ["logs", {"address": SHORT_ADDRESS}],
            }
        )
        assert (await socket.receive_json(timeout=10))["error"]["code"] == -32602
        await socket.send_json({"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber"})
        answer = await socket.receive_json(timeout=10)
        assert answer["id"] == 3 and answer["result"].startswith("0x")


# --- and the node is still there ----------------------------------------------------------


def test_node_still_answers_after_all_of_it(node: NodeProcess) -> None:
    assert_alive(node)
    assert node.process is not None and node.process.poll() is None
