"""The explorer's view models from fake JSON-RPC answers: no network, no browser."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from quorum_node.explorer.abi import AbiFileError, AbiRegistry
from quorum_node.explorer.network import Participant
from quorum_node.explorer.rpc_client import JsonRpc
from quorum_node.explorer.views import Explorer, Failed, _ask
from tests.explorer.fakes import (
    CONTRACT,
    PRIVATE_TX,
    PUBLIC_TX,
    SENDER,
    FakeNode,
    non_party,
    participants,
    party,
    private_deploy,
    stored_log,
)


async def _upcheck(participant: Participant) -> str:
    return "up"


def explorer(nodes: list[Any]) -> Explorer:
    people = participants(len(nodes))
    clients: dict[str, JsonRpc] = {p.name: node for p, node in zip(people, nodes, strict=True)}
    return Explorer(people, clients, AbiRegistry.load(), _upcheck)


async def test_a_party_sees_the_decoded_deployment_and_a_non_party_sees_nothing() -> None:
    page = await explorer([party(), party(), non_party()]).transaction(PRIVATE_TX)
    assert page is not None
    assert page.private and page.v == 37 and len(bytes.fromhex(page.input[2:])) == 64
    assert page.public_call is None  # the public input is the hash, not a call
    first, second, third = page.columns
    for column in (first, second):
        assert not column.not_party and column.status == 1
        assert column.call == "SimpleStorage.new(initVal=42)"
        assert column.contract_address == CONTRACT
        assert [log.decoded for log in column.logs] == [
            f"SimpleStorage.Stored(by={SENDER}, value=42)"
        ]
    assert third.not_party and third.status is None and third.call is None


async def test_a_private_call_is_decoded_from_the_payload() -> None:
    payload = "0x60fe47b1" + encode(["uint256"], [43]).hex()
    node = party(payload)
    node.answers["eth_getTransactionByHash"] = {**private_deploy(), "to": CONTRACT}
    node.answers["eth_getTransactionReceipt"] = {"status": "0x1", "logs": [stored_log(43)]}
    page = await explorer([node]).transaction(PRIVATE_TX)
    assert page is not None
    assert page.columns[0].call == "SimpleStorage.set(x=43)"
    assert page.columns[0].logs[0].decoded == f"SimpleStorage.Stored(by={SENDER}, value=43)"


async def test_a_public_transaction_is_decoded_from_its_input() -> None:
    public = {
        "hash": PUBLIC_TX,
        "blockNumber": "0x2",
        "from": SENDER,
        "to": CONTRACT,
        "nonce": "0x1",
        "v": "0x1b",
        "input": "0x60fe47b1" + encode(["uint256"], [7]).hex(),
    }
    node = FakeNode(
        {
            "eth_getTransactionByHash": public,
            "eth_getTransactionReceipt": {"status": "0x0", "logs": []},
        }
    )
    page = await explorer([node, node]).transaction(PUBLIC_TX)
    assert page is not None and not page.private
    assert page.public_call == "SimpleStorage.set(x=7)"
    assert [c.status for c in page.columns] == [0, 0]
    assert all(method != "eth_getQuorumPayload" for method, _ in node.calls)


async def test_an_unknown_transaction_is_none_and_an_unreachable_node_is_its_error() -> None:
    assert (
        await explorer([FakeNode({"eth_getTransactionByHash": None})]).transaction(PRIVATE_TX)
        is None
    )
    down = FakeNode({"eth_getTransactionByHash": None})  # every other method errs
    page = await explorer([party(), down]).transaction(PRIVATE_TX)
    assert page is not None
    assert page.columns[1].error is not None and "eth_getQuorumPayload" in page.columns[1].error


async def test_contract_views_per_participant() -> None:
    page = await explorer([party(), party(), non_party()]).contract(CONTRACT)
    assert page.abi_name == "SimpleStorage"
    assert sorted(page.functions) == ["get", "storedData"]
    first, second, third = page.columns
    assert first.values == second.values == {"get": "42", "storedData": "42"}
    assert first.storage_root == second.storage_root != third.storage_root
    assert not third.has_code and third.values == {}


def test_code_is_matched_by_selectors_when_not_byte_equal() -> None:
    registry = AbiRegistry.load()
    simple = next(c for c in registry.contracts if c.name == "SimpleStorage")
    changed = simple.deployed_bytecode[:-10] + b"\x00" * 10  # other metadata hash
    matched = registry.match_code(changed)
    assert matched is not None and matched.name == "SimpleStorage"
    assert registry.match_code(b"\x60\x00") is None


def test_user_abis_decode_calls(tmp_path: Any) -> None:
    path = tmp_path / "Greeter.json"
    path.write_text(
        '[{"type":"function","name":"greet","stateMutability":"nonpayable",'
        '"inputs":[{"name":"who","type":"string"}],"outputs":[]}]'
    )
    registry = AbiRegistry.load([path])
    data = bytes(function_signature_to_4byte_selector("greet(string)")) + encode(
        ["string"], ["bank"]
    )
    decoded = registry.decode_call(data)
    assert decoded is not None and decoded.text == "Greeter.greet(who=bank)"


def test_a_bad_abi_file_names_the_file(tmp_path: Any) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"not": "an abi"}')
    with pytest.raises(AbiFileError, match="broken.json"):
        AbiRegistry.load([path])


async def test_groups_agreed_alarm_pending_and_not_a_member() -> None:
    entry = {"groupId": "0x01", "members": ["key1", "key2"], "status": "agreed", "agreedHeight": 9}
    alarm = {
        **entry,
        "status": "mismatch",
        "alarms": [{"kind": "mismatch", "height": 10, "member": "key2"}],
    }
    rows = await explorer(
        [
            FakeNode({"quorum_auditStatus": [entry]}),
            FakeNode({"quorum_auditStatus": [alarm]}),
            FakeNode({"quorum_auditStatus": []}),
        ]
    ).groups()
    (row,) = rows
    assert row.members == ["node1", "node2"]
    assert [(c.status, c.colour) for c in row.cells] == [
        ("agreed", "green"),
        ("mismatch", "red"),
        ("not a member", "grey"),
    ]
    assert row.cells[1].detail == "alarm: mismatch"
    pending = explorer([FakeNode({"quorum_auditStatus": [{**entry, "status": "pending"}]})])
    assert (await pending.groups())[0].cells[0].status == "pending"


async def test_network_status_and_latest() -> None:
    block = {
        "number": "0x1",
        "hash": "0x" + "bb" * 32,
        "timestamp": "0x5",
        "transactions": [
            {"hash": PRIVATE_TX, "blockNumber": "0x1", "from": SENDER, "to": None, "v": "0x26"}
        ],
    }
    genesis = {"number": "0x0", "hash": "0x" + "00" * 32, "timestamp": "0x0", "transactions": []}
    node = FakeNode(
        {
            "eth_blockNumber": "0x1",
            "net_peerCount": "0x2",
            "eth_getBlockByNumber": lambda params: block if params[0] == "0x1" else genesis,
        }
    )
    ours = explorer([node])
    (status,) = await ours.statuses()
    assert (status.block_number, status.raft_role, status.peer_count) == (1, "-", 2)
    latest = await ours.latest()
    assert [b.number for b in latest.blocks] == [1, 0]
    assert [(t.hash, t.private) for t in latest.transactions] == [(PRIVATE_TX, True)]


async def test_the_client_refuses_anything_but_reads() -> None:
    answer = await _ask(FakeNode({}), "eth_sendTransaction", [{}])
    assert isinstance(answer, Failed) and "read-only" in answer.error
