"""``Dispatcher``: each kind of error a handler raises becomes its JSON-RPC code, an
unexpected one becomes -32603 with nothing of it in the response (the traceback goes to
the log), and requests, notifications and batches get the shapes JSON-RPC 2.0 gives."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from quorum_node.chain.calls import CallError, CallReverted
from quorum_node.errors import (
    ChainError,
    InvalidTransactionRequest,
    QuorumNodeError,
    TransactionRejected,
)
from quorum_node.privacy.params import InvalidPrivacyParams, PrivacyError
from quorum_node.rpc import dispatcher
from quorum_node.rpc.dispatcher import CallContext, Dispatcher, rpc_method
from quorum_node.rpc.errors import InvalidParams

pytestmark = pytest.mark.timeout(10)

SECRET = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
REVERT_DATA = bytes.fromhex("08c379a0") + b"\x00" * 31 + b"\x20"


class FakeNamespace:
    """Handlers that answer or raise each kind of error the dispatcher maps."""

    def __init__(self) -> None:
        self.notified: list[Any] = []

    @rpc_method("test_echo")
    async def echo(self, params: Any, context: CallContext) -> Any:
        return params

    @rpc_method("test_note")
    async def note(self, params: Any, context: CallContext) -> None:
        self.notified.append(params)

    @rpc_method("test_invalidParams")
    async def invalid_params(self, params: Any, context: CallContext) -> None:
        raise InvalidParams("missing value for required argument 0")

    @rpc_method("test_invalidPrivacyParams")
    async def invalid_privacy_params(self, params: Any, context: CallContext) -> None:
        raise InvalidPrivacyParams("privateFor: expected a list of base64 manager keys")

    @rpc_method("test_invalidTransactionRequest")
    async def invalid_transaction_request(self, params: Any, context: CallContext) -> None:
        raise InvalidTransactionRequest('transaction: "from" is required')

    @rpc_method("test_rejected")
    async def rejected(self, params: Any, context: CallContext) -> None:
        raise TransactionRejected("nonce too low")

    @rpc_method("test_nodeError")
    async def node_error(self, params: Any, context: CallContext) -> None:
        raise QuorumNodeError("header not found")

    @rpc_method("test_chainError")
    async def chain_error(self, params: Any, context: CallContext) -> None:
        raise ChainError("block #9 is invalid")

    @rpc_method("test_privacyError")
    async def privacy_error(self, params: Any, context: CallContext) -> None:
        raise PrivacyError("this node has no transaction manager")

    @rpc_method("test_callError")
    async def call_error(self, params: Any, context: CallContext) -> None:
        raise CallError("intrinsic gas too low: have 100")

    @rpc_method("test_reverted")
    async def reverted(self, params: Any, context: CallContext) -> None:
        raise CallReverted("not the owner", REVERT_DATA)

    @rpc_method("test_revertedSilently")
    async def reverted_silently(self, params: Any, context: CallContext) -> None:
        raise CallReverted(None, b"")

    @rpc_method("test_crash")
    async def crash(self, params: Any, context: CallContext) -> None:
        raise RuntimeError(f"key {SECRET} fell on the floor")

    async def not_registered(self, params: Any, context: CallContext) -> None:
        raise AssertionError("never called: it has no rpc_method mark")


@pytest.fixture
def namespace() -> FakeNamespace:
    return FakeNamespace()


@pytest.fixture
def rpc(namespace: FakeNamespace) -> Dispatcher:
    dispatching = Dispatcher(max_batch_size=4)
    dispatching.register(namespace)
    return dispatching


def request(method: str, request_id: Any = 1, params: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return body


def notification(method: str, params: Any = None) -> dict[str, Any]:
    body = request(method, params=params)
    del body["id"]
    return body


#: The namespaces this test's transport enables (the fake's methods are ``test_*``).
ENABLED = CallContext(namespaces=frozenset({"test", "eth"}))


async def answer_text(rpc: Dispatcher, body: bytes | str) -> Any:
    """The decoded answer to a raw body, or None when the dispatcher sends nothing."""
    text = await rpc.answer(body, ENABLED)
    return None if text is None else json.loads(text)


async def answer(rpc: Dispatcher, body: Any) -> Any:
    return await answer_text(rpc, json.dumps(body))


def error(request_id: Any, code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": code, "message": message, **extra},
    }


def test_only_marked_methods_are_registered(rpc: Dispatcher) -> None:
    assert "test_echo" in rpc.method_names
    assert "not_registered" not in rpc.method_names
    assert rpc.method_names == sorted(rpc.method_names)


async def test_a_result_keeps_the_request_id(rpc: Dispatcher) -> None:
    assert await answer(rpc, request("test_echo", "abc", [1, "two"])) == {
        "jsonrpc": "2.0",
        "id": "abc",
        "result": [1, "two"],
    }
    assert await answer(rpc, request("test_echo", None)) == {
        "jsonrpc": "2.0",
        "id": None,
        "result": [],
    }


@pytest.mark.parametrize(
    ("method", "code", "message"),
    [
        ("test_invalidParams", -32602, "missing value for required argument 0"),
        (
            "test_invalidPrivacyParams",
            -32602,
            "privateFor: expected a list of base64 manager keys",
        ),
        ("test_invalidTransactionRequest", -32602, 'transaction: "from" is required'),
        ("test_rejected", -32000, "nonce too low"),
        ("test_nodeError", -32000, "header not found"),
        ("test_chainError", -32000, "block #9 is invalid"),
        ("test_privacyError", -32000, "this node has no transaction manager"),
        ("test_callError", -32000, "intrinsic gas too low: have 100"),
    ],
)
async def test_typed_errors_map_to_their_codes_with_their_message(
    rpc: Dispatcher, method: str, code: int, message: str
) -> None:
    assert await answer(rpc, request(method, 7)) == error(7, code, message)


async def test_a_revert_is_code_3_with_the_revert_data(rpc: Dispatcher) -> None:
    assert await answer(rpc, request("test_reverted", 3)) == error(
        3, 3, "execution reverted: not the owner", data="0x" + REVERT_DATA.hex()
    )
    assert await answer(rpc, request("test_revertedSilently", 4)) == error(
        4, 3, "execution reverted", data="0x"
    )


async def test_an_unexpected_error_is_internal_with_nothing_of_it_in_the_response(
    rpc: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=dispatcher.__name__):
        response = await answer(rpc, request("test_crash", 11))

    assert response == error(11, -32603, "internal error")
    assert SECRET not in json.dumps(response)
    (logged,) = [r for r in caplog.records if r.name == dispatcher.__name__]
    assert logged.levelno == logging.ERROR
    assert logged.exc_info is not None and logged.exc_info[0] is RuntimeError
    assert "Traceback" in caplog.text and SECRET in caplog.text


async def test_an_unknown_method_is_32601(rpc: Dispatcher) -> None:
    assert await answer(rpc, request("eth_nope", 2)) == error(
        2, -32601, "the method eth_nope does not exist/is not available"
    )


@pytest.mark.parametrize("body", [b"{", b'{"jsonrpc": "2.0",', b"\xff\xfe", b""])
async def test_a_body_that_is_not_json_is_a_parse_error(rpc: Dispatcher, body: bytes) -> None:
    response = await answer_text(rpc, body)

    assert response["id"] is None
    assert response["error"]["code"] == -32700
    assert response["error"]["message"].startswith("parse error")


@pytest.mark.parametrize(
    ("body", "response_id", "message"),
    [
        (1, None, "request must be an object"),
        ("eth_blockNumber", None, "request must be an object"),
        (None, None, "request must be an object"),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "test_echo"}, None, "id must be"),
        ({"jsonrpc": "2.0", "id": [1], "method": "test_echo"}, None, "id must be"),
        ({"id": 5, "method": "test_echo"}, 5, '"jsonrpc" must be "2.0"'),
        ({"jsonrpc": "1.0", "id": 5, "method": "test_echo"}, 5, '"jsonrpc" must be "2.0"'),
        ({"jsonrpc": "2.0", "id": 6}, 6, '"method" must be a string'),
        ({"jsonrpc": "2.0", "id": 6, "method": 42}, 6, '"method" must be a string'),
    ],
)
async def test_requests_of_the_wrong_shape_are_invalid_requests(
    rpc: Dispatcher, body: Any, response_id: Any, message: str
) -> None:
    response = await answer(rpc, body)

    assert response["id"] == response_id
    assert response["error"]["code"] == -32600
    assert response["error"]["message"].startswith(message)
    assert "result" not in response


async def test_notifications_are_run_and_never_answered(
    rpc: Dispatcher, namespace: FakeNamespace
) -> None:
    assert await answer(rpc, notification("test_note", ["hello"])) is None
    assert namespace.notified == [["hello"]]
    assert await answer(rpc, notification("test_rejected")) is None
    assert await answer(rpc, notification("eth_nope")) is None
    assert await answer(rpc, notification("test_crash")) is None


async def test_an_unexpected_error_in_a_notification_is_still_logged(
    rpc: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=dispatcher.__name__):
        assert await answer(rpc, notification("test_crash")) is None

    assert SECRET in caplog.text


async def test_a_mixed_batch_is_answered_in_order_without_its_notifications(
    rpc: Dispatcher, namespace: FakeNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    batch = [
        request("test_echo", 1, ["first"]),
        notification("test_note", ["quiet"]),
        "not a request",
        request("test_crash", 3),
    ]

    with caplog.at_level(logging.ERROR, logger=dispatcher.__name__):
        responses = await answer(rpc, batch)

    assert responses == [
        {"jsonrpc": "2.0", "id": 1, "result": ["first"]},
        error(None, -32600, "request must be an object"),
        error(3, -32603, "internal error"),
    ]
    assert namespace.notified == [["quiet"]]
    batch_of_errors = [request("eth_nope", "x"), request("test_rejected", "y")]
    assert await answer(rpc, batch_of_errors) == [
        error("x", -32601, "the method eth_nope does not exist/is not available"),
        error("y", -32000, "nonce too low"),
    ]


async def test_a_batch_of_notifications_gets_no_answer_at_all(
    rpc: Dispatcher, namespace: FakeNamespace
) -> None:
    batch = [notification("test_note", [index]) for index in range(3)]
    batch.append(notification("test_rejected"))

    assert await answer(rpc, batch) is None
    assert namespace.notified == [[0], [1], [2]]


async def test_an_empty_batch_is_an_invalid_request(rpc: Dispatcher) -> None:
    assert await answer(rpc, []) == error(None, -32600, "empty batch")


async def test_a_batch_over_the_cap_is_refused_whole(
    rpc: Dispatcher, namespace: FakeNamespace
) -> None:
    over = [notification("test_note", [index]) for index in range(5)]

    # geth's answer: one error in an array (with the first call's id; notifications: none)
    assert await answer(rpc, over) == [error(None, -32600, "batch too large (more than 4 items)")]
    assert namespace.notified == []
    at_the_cap = [request("test_echo", index) for index in range(4)]
    assert [response["id"] for response in await answer(rpc, at_the_cap)] == [0, 1, 2, 3]
