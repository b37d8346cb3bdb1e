"""GoQuorum's seven-nodes scenario on 3 and 4 nodes: a private SimpleStorage for a subset
of the parties, value 42, read on every node; then every privacy method a party and a
non-party see, through web3.py (plain web3 and ``w3.quorum``) and through raw JSON-RPC
(urllib and json only).

The parties are every node but the last; the last node is the non-party.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from typing import Any

import pytest
import websockets
from eth_abi import encode
from eth_keys import keys
from eth_utils import keccak, to_bytes
from web3.exceptions import BadFunctionCallOutput, Web3RPCError

from quorum_node.chain.transactions import QuorumTransactionBuilder, sign_private
from tests.privacy.conftest import PrivateNet, artifact

pytestmark = pytest.mark.integration

ZERO_WORD = "0x" + "00" * 32
STORED_TOPIC = "0x" + keccak(text="Stored(address,uint256)").hex()


def parties(net: PrivateNet) -> list[str]:
    return net.names[:-1]


def outsider(net: PrivateNet) -> str:
    return net.names[-1]


def private_for(net: PrivateNet, sender: str = "node1") -> list[str]:
    return [net.key(name) for name in parties(net) if name != sender]


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def deploy_data(value: int) -> str:
    return artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [value]).hex()


def set_data(value: int) -> str:
    return "0x" + (selector("set(uint256)") + encode(["uint256"], [value])).hex()


GET_DATA = "0x" + selector("get()").hex()


# --- web3.py -------------------------------------------------------------------------


def test_seven_nodes_scenario_through_web3(net: PrivateNet) -> None:
    """Deploy with Contract.constructor(42).transact({..., privateFor}) (web3.py asks
    eth_estimateGas with privateFor first), read on every node, set through
    functions.set().transact({..., privateFor}), follow the logs and a filter."""
    sender = net.w3("node1")
    account = net.address("node1")
    tx_hash = (
        net.contract("node1", "SimpleStorage")
        .constructor(42)
        .transact({"from": account, "privateFor": private_for(net)})
    )
    receipt = sender.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    address = receipt["contractAddress"]
    assert address is not None
    net.wait_same_head()
    deployment = sender.eth.get_transaction(tx_hash)
    assert deployment["v"] in (37, 38)
    assert len(deployment["input"]) == 64  # the manager's hash, never the payload
    payload_hash = deployment["input"]

    for name in net.names:
        w3 = net.w3(name)
        seen = w3.eth.get_transaction_receipt(tx_hash)
        storage = net.contract(name, "SimpleStorage", address)
        assert seen["contractAddress"] == address, name
        assert seen["status"] == 1, name
        if name in parties(net):
            assert len(seen["logs"]) == 1, name
            assert seen["logs"][0]["address"] == address
            assert storage.functions.get().call() == 42, name
            assert storage.functions.storedData().call() == 42, name
            assert w3.eth.get_code(address) == bytes.fromhex(
                artifact("SimpleStorage")["deployedBytecode"][2:]
            ), name
            assert int.from_bytes(w3.eth.get_storage_at(address, 0), "big") == 42, name
            assert w3.eth.get_balance(address) == 0
            assert w3.quorum.get_quorum_payload(payload_hash) == to_bytes(hexstr=deploy_data(42))
            metadata = w3.quorum.get_contract_privacy_metadata(address)
            assert metadata["creationTxHash"] == "0x" + bytes(tx_hash).hex(), name
            assert metadata["privacyFlag"] == 0
        else:
            assert seen["logs"] == [], name
            assert seen["gasUsed"] == 0, name
            assert w3.eth.get_code(address) == b"", name
            assert int.from_bytes(w3.eth.get_storage_at(address, 0), "big") == 0, name
            with pytest.raises(BadFunctionCallOutput):
                storage.functions.get().call()
            assert w3.quorum.get_quorum_payload(payload_hash) == b""
            assert w3.quorum.get_contract_privacy_metadata(address) is None

    # a filter made before the write sees the private log on a party only
    filters = {
        name: net.w3(name).eth.filter({"address": address, "fromBlock": "latest"})
        for name in net.names
    }
    storage = net.contract("node1", "SimpleStorage", address)
    set_hash = storage.functions.set(7).transact({"from": account, "privateFor": private_for(net)})
    assert sender.eth.wait_for_transaction_receipt(set_hash, timeout=30)["status"] == 1
    net.wait_same_head()
    for name in net.names:
        w3 = net.w3(name)
        logs = w3.eth.get_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
        new_entries = filters[name].get_new_entries()
        if name in parties(net):
            assert net.contract(name, "SimpleStorage", address).functions.get().call() == 7
            values = [int.from_bytes(bytes(log["data"]), "big") for log in logs]
            assert values == [42, 7], name
            assert "0x" + bytes(logs[0]["topics"][0]).hex() == STORED_TOPIC
            assert [int.from_bytes(bytes(e["data"]), "big") for e in new_entries] == [7], name
        else:
            assert logs == [], name
            assert new_entries == [], name
            assert w3.eth.get_code(address) == b""
        w3.eth.uninstall_filter(filters[name].filter_id)

    # the same storage root on every party; the non-party has no such contract
    roots = {name: net.w3(name).quorum.storage_root(address) for name in net.names}
    party_roots = {roots[name] for name in parties(net)}
    assert len(party_roots) == 1
    assert roots[outsider(net)] not in party_roots


def test_w3_quorum_send_and_offline_signing(net: PrivateNet) -> None:
    """w3.quorum.send_transaction, then sign_private_transaction (payload through the
    sender's manager /storeraw, signed here with v = 37/38) and send_raw_private_transaction."""
    w3 = net.w3("node1")
    tx_hash = w3.quorum.send_transaction(
        {"from": net.address("node1"), "data": deploy_data(5)}, private_for=private_for(net)
    )
    address = w3.quorum.wait_for_private_receipt(tx_hash)["contractAddress"]

    raw = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"to": address, "data": set_data(99), "privateFor": private_for(net)},
        manager_url=net.tm_url("node1"),
    )
    nonce_before = net.nonce("node1")
    sent = w3.quorum.send_raw_private_transaction(raw, private_for=private_for(net))
    receipt = w3.quorum.wait_for_private_receipt(sent)
    assert receipt["status"] == 1
    assert len(receipt["logs"]) == 1
    assert net.nonce("node1") == nonce_before + 1
    net.wait_same_head()
    for name in net.names:
        storage = net.contract(name, "SimpleStorage", address)
        if name in parties(net):
            assert storage.functions.get().call() == 99, name
            assert net.w3(name).quorum.get_quorum_payload(
                w3.eth.get_transaction(sent)["input"]
            ) == to_bytes(hexstr=set_data(99))
        else:
            assert net.w3(name).eth.get_code(address) == b""

    # an offline-signed creation: no "to", gas estimated against the group's state
    raw_creation = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"data": deploy_data(11), "privateFor": private_for(net)},
        manager_url=net.tm_url("node1"),
    )
    creation = w3.quorum.wait_for_private_receipt(
        w3.quorum.send_raw_private_transaction(raw_creation, private_for=private_for(net))
    )
    created = net.contract(parties(net)[-1], "SimpleStorage", creation["contractAddress"])
    net.wait_same_head()
    assert created.functions.get().call() == 11


def test_raw_private_transaction_without_private_for_is_refused_through_web3(
    net: PrivateNet,
) -> None:
    w3 = net.w3("node1")
    raw = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"data": deploy_data(1), "gas": 300_000},
        manager_url=net.tm_url("node1"),
    )
    nonce_before = net.nonce("node1")
    with pytest.raises(Web3RPCError, match="transaction is not private"):
        w3.manager.request_blocking("eth_sendRawPrivateTransaction", ["0x" + raw.hex(), {}])
    with pytest.raises(Web3RPCError, match="transaction is not private"):
        w3.manager.request_blocking("eth_sendRawPrivateTransaction", ["0x" + raw.hex()])
    assert net.nonce("node1") == nonce_before
    assert net.txpool_empty("node1")


@pytest.mark.parametrize("flag", [4, 7])
def test_an_unknown_privacy_flag_is_refused_clearly(net: PrivateNet, flag: int) -> None:
    """Flags 0 to 3 are GoQuorum's (tests/privacy/test_privacy_flags.py); others are not."""
    w3 = net.w3("node1")
    nonce_before = net.nonce("node1")
    with pytest.raises(Web3RPCError, match=rf"invalid privacy flag: privacyFlag {flag}"):
        w3.quorum.send_transaction(
            {"from": net.address("node1"), "data": deploy_data(1), "gas": 300_000},
            private_for=private_for(net),
            privacy_flag=flag,
        )
    with pytest.raises(Web3RPCError, match="privacyFlag"):
        net.contract("node1", "SimpleStorage").constructor(1).transact(
            {"from": net.address("node1"), "privateFor": private_for(net), "privacyFlag": flag}
        )
    assert net.nonce("node1") == nonce_before
    assert net.txpool_empty("node1")


def test_private_transaction_to_another_groups_contract_is_refused_naming_the_group(
    net: PrivateNet,
) -> None:
    """A contract of the group {node1, node2} cannot be touched by {node1, last node}."""
    w3 = net.w3("node1")
    tx_hash = w3.quorum.send_transaction(
        {"from": net.address("node1"), "data": deploy_data(3)}, private_for=[net.key("node2")]
    )
    address = w3.quorum.wait_for_private_receipt(tx_hash)["contractAddress"]
    group = w3.quorum.get_contract_privacy_metadata(address)["privacyGroupId"]
    storage = net.contract("node1", "SimpleStorage", address)
    nonce_before = net.nonce("node1")
    other_group = [net.key(outsider(net))]
    with pytest.raises(Web3RPCError) as refused:
        storage.functions.set(4).transact(
            {"from": net.address("node1"), "privateFor": other_group, "gas": 200_000}
        )
    message = str(refused.value)
    assert group in message
    assert net.key("node2") in message and net.key(outsider(net)) in message
    with pytest.raises(Web3RPCError, match=group):  # also when web3.py estimates first
        storage.functions.set(4).transact({"from": net.address("node1"), "privateFor": other_group})
    # the same refusal for a transaction signed offline (eth_sendRawPrivateTransaction)
    raw = w3.quorum.sign_private_transaction(
        net.private_key("node1"),
        {"to": address, "data": set_data(4), "gas": 200_000},
        manager_url=net.tm_url("node1"),
    )
    with pytest.raises(Web3RPCError, match=group):
        w3.quorum.send_raw_private_transaction(raw, private_for=other_group)
    assert net.nonce("node1") == nonce_before
    assert net.txpool_empty("node1")
    assert storage.functions.get().call() == 3


def test_estimate_gas_with_private_for_runs_on_the_groups_state(net: PrivateNet) -> None:
    w3 = net.w3("node1")
    tx_hash = w3.quorum.send_transaction(
        {"from": net.address("node1"), "data": deploy_data(8)}, private_for=private_for(net)
    )
    address = w3.quorum.wait_for_private_receipt(tx_hash)["contractAddress"]
    request: dict[str, Any] = {"from": net.address("node1"), "to": address, "data": set_data(9)}
    private_estimate = w3.eth.estimate_gas({**request, "privateFor": private_for(net)})  # type: ignore[typeddict-unknown-key]
    assert 21_000 < private_estimate < 100_000
    creation = w3.eth.estimate_gas(
        {"from": net.address("node1"), "data": deploy_data(8), "privateFor": private_for(net)}  # type: ignore[typeddict-unknown-key]
    )
    assert creation > 100_000


# --- raw JSON-RPC --------------------------------------------------------------------


def store_raw(net: PrivateNet, name: str, payload: bytes) -> bytes:
    """The manager's /storeraw over plain HTTP: the 64-byte hash of the stored payload."""
    body = json.dumps({"payload": base64.b64encode(payload).decode()}).encode()
    request = urllib.request.Request(
        net.tm_url(name) + "/storeraw", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return base64.b64decode(json.loads(response.read())["key"])


def sign_offline(net: PrivateNet, name: str, *, to: str | None, payload_hash: bytes) -> str:
    unsigned = QuorumTransactionBuilder.create_unsigned_transaction(
        nonce=net.nonce(name),
        gas_price=0,
        gas=500_000,
        to=bytes.fromhex(to[2:]) if to else b"",
        value=0,
        data=payload_hash,
    )
    key = keys.PrivateKey(bytes.fromhex(net.private_key(name)[2:]))
    return "0x" + sign_private(unsigned, key).encode().hex()


def test_seven_nodes_scenario_through_raw_json_rpc(net: PrivateNet) -> None:
    account = net.address("node1")
    tx_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [{"from": account, "data": deploy_data(42), "privateFor": private_for(net)}],
    )
    receipt = net.receipt("node1", tx_hash)
    assert receipt["status"] == "0x1"
    address = receipt["contractAddress"]
    net.wait_same_head()
    payload_hash = net.call("node1", "eth_getTransactionByHash", [tx_hash])["input"]
    assert len(bytes.fromhex(payload_hash[2:])) == 64

    set_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [{"from": account, "to": address, "data": set_data(43), "privateFor": private_for(net)}],
    )
    assert net.receipt("node1", set_hash)["status"] == "0x1"
    net.wait_same_head()
    head = net.call("node1", "eth_blockNumber")

    for name in net.names:
        seen = net.call(name, "eth_getTransactionReceipt", [tx_hash])
        assert seen["contractAddress"] == address
        assert seen["status"] == "0x1"
        code = net.call(name, "eth_getCode", [address, "latest"])
        value = net.call(name, "eth_call", [{"to": address, "data": GET_DATA}, "latest"])
        at_head = net.call(name, "eth_call", [{"to": address, "data": GET_DATA}, head])
        slot = net.call(name, "eth_getStorageAt", [address, "0x0", "latest"])
        balance = net.call(name, "eth_getBalance", [address, "latest"])
        logs = net.call(name, "eth_getLogs", [{"address": address, "fromBlock": "0x0"}])
        payload = net.call(name, "eth_getQuorumPayload", [payload_hash])
        metadata = net.call(name, "eth_getContractPrivacyMetadata", [address])
        assert balance == "0x0"
        if name in parties(net):
            assert len(seen["logs"]) == 1 and seen["logs"][0]["address"].lower() == address.lower()
            assert code == artifact("SimpleStorage")["deployedBytecode"]
            assert int(value, 16) == 43 and int(at_head, 16) == 43
            assert int(slot, 16) == 43
            assert [int(log["data"], 16) for log in logs] == [42, 43]
            assert logs[1]["transactionHash"] == set_hash
            assert payload == deploy_data(42)
            assert metadata["creationTxHash"] == tx_hash
        else:
            assert seen["logs"] == [] and seen["gasUsed"] == "0x0"
            assert code == "0x"
            assert value == "0x" and at_head == "0x"
            assert slot == ZERO_WORD
            assert logs == []
            assert payload == "0x"
            assert metadata is None
        # the set's receipt: the private result on a party, the public side elsewhere
        set_receipt = net.call(name, "eth_getTransactionReceipt", [set_hash])
        assert set_receipt["status"] == "0x1"
        assert len(set_receipt["logs"]) == (1 if name in parties(net) else 0)

    roots = {name: net.call(name, "eth_storageRoot", [address, "latest"]) for name in net.names}
    assert len({roots[name] for name in parties(net)}) == 1
    assert roots[outsider(net)] != roots["node1"]
    assert net.call("node1", "eth_getPrivacyPrecompileAddress") == "0x" + "00" * 19 + "7a"
    group_roots = {name: net.call(name, "debug_privateStateRoots", [head]) for name in net.names}
    group = net.call("node1", "eth_getContractPrivacyMetadata", [address])["privacyGroupId"]
    assert {group_roots[name][group] for name in parties(net)} == {group_roots["node1"][group]}
    assert group not in group_roots[outsider(net)]
    single = {name: net.call(name, "debug_privateStateRoot", [head]) for name in net.names}
    assert len(single["node1"]) == 66


def test_filters_over_raw_json_rpc_see_private_logs_on_parties_only(net: PrivateNet) -> None:
    account = net.address("node1")
    tx_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [{"from": account, "data": deploy_data(1), "privateFor": private_for(net)}],
    )
    address = net.receipt("node1", tx_hash)["contractAddress"]
    net.wait_same_head()
    filters = {
        name: net.call(name, "eth_newFilter", [{"address": address, "fromBlock": "latest"}])
        for name in net.names
    }
    set_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [{"from": account, "to": address, "data": set_data(2), "privateFor": private_for(net)}],
    )
    net.receipt("node1", set_hash)
    net.wait_same_head()
    for name in net.names:
        changes = net.call(name, "eth_getFilterChanges", [filters[name]])
        if name in parties(net):
            assert [(c["transactionHash"], int(c["data"], 16)) for c in changes] == [(set_hash, 2)]
        else:
            assert changes == []
        assert net.call(name, "eth_uninstallFilter", [filters[name]]) is True


def test_offline_signing_through_raw_json_rpc(net: PrivateNet) -> None:
    payload_hash = store_raw(net, "node1", to_bytes(hexstr=deploy_data(77)))
    raw = sign_offline(net, "node1", to=None, payload_hash=payload_hash)
    tx_hash = net.call(
        "node1", "eth_sendRawPrivateTransaction", [raw, {"privateFor": private_for(net)}]
    )
    receipt = net.receipt("node1", tx_hash)
    assert receipt["status"] == "0x1"
    assert len(receipt["logs"]) == 1
    address = receipt["contractAddress"]
    net.wait_same_head()
    for name in net.names:
        value = net.call(name, "eth_call", [{"to": address, "data": GET_DATA}, "latest"])
        payload = net.call(name, "eth_getQuorumPayload", ["0x" + payload_hash.hex()])
        if name in parties(net):
            assert int(value, 16) == 77
            assert payload == deploy_data(77)
        else:
            assert value == "0x" and payload == "0x"


def test_raw_private_transaction_errors_through_raw_json_rpc(net: PrivateNet) -> None:
    payload_hash = store_raw(net, "node1", to_bytes(hexstr=deploy_data(1)))
    raw = sign_offline(net, "node1", to=None, payload_hash=payload_hash)
    nonce_before = net.nonce("node1")
    for params in ([raw], [raw, {}], [raw, {"privateFrom": net.key("node1")}]):
        error = net.error("node1", "eth_sendRawPrivateTransaction", params)
        assert "not private" in error["message"] or "privateFor" in error["message"], error
    assert net.error("node1", "eth_sendRawPrivateTransaction", [raw])["message"] == (
        "transaction is not private"
    )
    error = net.error(
        "node1",
        "eth_sendRawPrivateTransaction",
        [raw, {"privateFor": private_for(net), "privacyFlag": 5}],
    )
    assert "invalid privacy flag" in error["message"]
    error = net.error("node1", "eth_getQuorumPayload", ["0x" + "ab" * 32])
    assert error["code"] == -32602 and "64 bytes" in error["message"]
    assert net.nonce("node1") == nonce_before
    assert net.txpool_empty("node1")


def test_privacy_flag_and_bad_keys_through_raw_json_rpc(net: PrivateNet) -> None:
    account = net.address("node1")
    base = {"from": account, "data": deploy_data(1), "gas": "0x493e0"}
    error = net.error(
        "node1", "eth_sendTransaction", [{**base, "privateFor": private_for(net), "privacyFlag": 9}]
    )
    assert error["message"].startswith("invalid privacy flag")
    error = net.error("node1", "eth_sendTransaction", [{**base, "privateFor": ["not a key!"]}])
    assert error["code"] == -32602 and "privateFor[0]" in error["message"]
    assert net.txpool_empty("node1")


def test_empty_private_for_is_private_to_the_sender_alone(net: PrivateNet) -> None:
    """As in GoQuorum, ``privateFor: []`` still makes the transaction private: the
    sender's own manager is its only party. privateFrom may name the node's own key."""
    tx_hash = net.call(
        "node1",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node1"),
                "data": deploy_data(6),
                "privateFor": [],
                "privateFrom": net.key("node1"),
            }
        ],
    )
    receipt = net.receipt("node1", tx_hash)
    assert receipt["status"] == "0x1" and len(receipt["logs"]) == 1
    address = receipt["contractAddress"]
    net.wait_same_head()
    for name in net.names:
        value = net.call(name, "eth_call", [{"to": address, "data": GET_DATA}])
        assert (int(value, 16) == 6) if name == "node1" else (value == "0x"), name
        assert net.call(name, "eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"


def test_private_from_not_held_by_the_nodes_manager_is_refused(net: PrivateNet) -> None:
    nonce_before = net.nonce("node1")
    error = net.error(
        "node1",
        "eth_sendTransaction",
        [
            {
                "from": net.address("node1"),
                "data": deploy_data(1),
                "gas": "0x493e0",
                "privateFor": [net.key(outsider(net))],
                "privateFrom": net.key("node2"),
            }
        ],
    )
    assert net.key("node2") in error["message"] and "not held" in error["message"], error
    assert net.nonce("node1") == nonce_before
    assert net.txpool_empty("node1")


def test_log_subscriptions_see_private_logs_on_parties_only(net: PrivateNet) -> None:
    """eth_subscribe("logs") over WebSocket: a party is notified of the private log; the
    non-party's first notification is the public log emitted after it."""
    account = net.address("node1")
    private_address = net.receipt(
        "node1",
        net.call(
            "node1",
            "eth_sendTransaction",
            [{"from": account, "data": deploy_data(1), "privateFor": private_for(net)}],
        ),
    )["contractAddress"]
    public_address = net.receipt(
        "node1",
        net.call("node1", "eth_sendTransaction", [{"from": account, "data": deploy_data(1)}]),
    )["contractAddress"]
    net.wait_same_head()
    watched = {"address": [private_address, public_address]}

    async def first_notifications() -> dict[str, str]:
        sockets = {}
        try:
            for name in net.names:
                socket = await websockets.connect(str(net.qnet.node(name)["ws_url"]))
                sockets[name] = socket
                request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe"}
                await socket.send(json.dumps({**request, "params": ["logs", watched]}))
                assert "result" in json.loads(await asyncio.wait_for(socket.recv(), 15))
            private_hash = net.call(
                "node1",
                "eth_sendTransaction",
                [
                    {
                        "from": account,
                        "to": private_address,
                        "data": set_data(5),
                        "privateFor": private_for(net),
                    }
                ],
            )
            net.receipt("node1", private_hash)
            net.call(
                "node1",
                "eth_sendTransaction",
                [{"from": account, "to": public_address, "data": set_data(6)}],
            )
            firsts = {}
            for name, socket in sockets.items():
                message = json.loads(await asyncio.wait_for(socket.recv(), 15))
                firsts[name] = message["params"]["result"]["address"]
            return firsts
        finally:
            for socket in sockets.values():
                await socket.close()

    firsts = asyncio.run(first_notifications())
    for name in net.names:
        expected = private_address if name in parties(net) else public_address
        assert firsts[name].lower() == expected.lower(), name
