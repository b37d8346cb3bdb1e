"""Fake nodes for the explorer's server-side tests: canned JSON-RPC answers per method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_abi import encode

from quorum_node.contracts import artifact
from quorum_node.explorer.network import Participant
from quorum_node.explorer.rpc_client import READ_METHODS, NotReadOnly, RpcError

SENDER = "0x" + "0a" * 20
CONTRACT = "0x" + "cc" * 20
PRIVATE_TX = "0x" + "11" * 32
PUBLIC_TX = "0x" + "22" * 32
PAYLOAD_HASH = "0x" + "ab" * 64
SIMPLE = artifact("SimpleStorage")
DEPLOY_PAYLOAD = SIMPLE["bytecode"] + encode(["uint256"], [42]).hex()
STORED_TOPIC = "0xebfcf7c0a1b09f6499e519a8d8bb85ce33cd539ec6cbd964e116cd74943ead1a"

Answer = Any | Callable[[list[Any]], Any]


class FakeNode:
    """Answers from ``answers`` (a value, or a function of the params); a missing method
    is a JSON-RPC error, as a node answers for a method it does not serve."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[Any]]] = []

    async def call(self, method: str, params: list[Any]) -> Any:
        if method not in READ_METHODS:
            raise NotReadOnly(method)
        self.calls.append((method, params))
        if method not in self.answers:
            raise RpcError(method, "the method does not exist/is not available")
        answer = self.answers[method]
        return answer(params) if callable(answer) else answer


def participants(count: int = 3) -> list[Participant]:
    return [
        Participant(f"node{i}", f"http://127.0.0.1:{8000 + i}", "", "", f"key{i}")
        for i in range(1, count + 1)
    ]


def private_deploy() -> dict[str, Any]:
    return {
        "hash": PRIVATE_TX,
        "blockNumber": "0x1",
        "blockHash": "0x" + "bb" * 32,
        "from": SENDER,
        "to": None,
        "nonce": "0x0",
        "v": "0x25",
        "input": PAYLOAD_HASH,
    }


def receipt(logs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "transactionHash": PRIVATE_TX,
        "status": "0x1",
        "contractAddress": CONTRACT,
        "logs": logs or [],
    }


def stored_log(value: int) -> dict[str, Any]:
    return {
        "address": CONTRACT,
        "topics": [STORED_TOPIC, "0x" + "00" * 12 + SENDER[2:]],
        "data": "0x" + encode(["uint256"], [value]).hex(),
    }


def _known_transaction(params: list[Any]) -> dict[str, Any] | None:
    return private_deploy() if params[0] == PRIVATE_TX else None


def party(payload: str = DEPLOY_PAYLOAD) -> FakeNode:
    """A node of a party to the private deployment of SimpleStorage(42)."""
    return FakeNode(
        {
            "eth_getTransactionByHash": _known_transaction,
            "eth_getQuorumPayload": payload,
            "eth_getTransactionReceipt": receipt([stored_log(42)]),
            "eth_getCode": SIMPLE["deployedBytecode"],
            "eth_storageRoot": "0x" + "77" * 32,
            "eth_getContractPrivacyMetadata": {"privacyFlag": 0, "privacyGroupId": "0x00"},
            "eth_call": "0x" + encode(["uint256"], [42]).hex(),
        }
    )


def non_party() -> FakeNode:
    return FakeNode(
        {
            "eth_getTransactionByHash": _known_transaction,
            "eth_getQuorumPayload": "0x",
            "eth_getTransactionReceipt": receipt(),
            "eth_getCode": "0x",
            "eth_storageRoot": "0x" + "56" * 32,
            "eth_getContractPrivacyMetadata": None,
        }
    )
