"""Determinism and confidentiality under load, on 4 nodes.

200 mixed private transactions (creations and writes) across three party groups,
{node1,node2}, {node1,node2,node3} and {node2,node3}, sent from different members to
their own nodes at the same time. Afterwards every member of a group holds the same
storage root for each of its contracts and the same group root at every block; node4,
party to nothing, holds no private code; and a marker carried in some payloads is found in
no file of a non-party (data directory, manager, logs), nor in plaintext on a party's
disk (the manager stores payloads encrypted; the node stores results, not payloads).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.privacy.conftest import PrivateNet, artifact, files_containing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUPS = {
    "AB": ("node1", "node2"),
    "ABC": ("node1", "node2", "node3"),
    "BC": ("node2", "node3"),
}
CONTRACTS_PER_GROUP = 2
TOTAL_TRANSACTIONS = 200
GET_DATA = "0x" + keccak(text="get()")[:4].hex()


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    node: str
    group: str
    contract: str | None  # None for a creation
    value: int


def deploy_data(value: int) -> str:
    return artifact("SimpleStorage")["bytecode"] + encode(["uint256"], [value]).hex()


def set_data(value: int, trailer: bytes = b"") -> str:
    # Solidity ignores calldata after the arguments: the marker rides in the payload only.
    return "0x" + (keccak(text="set(uint256)")[:4] + encode(["uint256"], [value]) + trailer).hex()


def send(net: PrivateNet, node: str, group: str, request: dict[str, object]) -> str:
    members = GROUPS[group]
    return str(
        net.call(
            node,
            "eth_sendTransaction",
            [
                {
                    "from": net.address(node),
                    "privateFor": [net.key(m) for m in members if m != node],
                    **request,
                }
            ],
        )
    )


def send_concurrently(jobs: list[tuple[str, Callable[[], Sent]]]) -> list[Sent]:
    """Run the jobs, one sequential lane per sending node (so each node numbers its
    account's nonces in order), all lanes at the same time."""
    lanes: dict[str, list[Callable[[], Sent]]] = defaultdict(list)
    for node, job in jobs:
        lanes[node].append(job)
    sent: list[Sent] = []
    lock = threading.Lock()

    def run_lane(jobs: list[Callable[[], Sent]]) -> None:
        for job in jobs:
            result = job()
            with lock:
                sent.append(result)

    with ThreadPoolExecutor(len(lanes)) as pool:
        for future in [pool.submit(run_lane, jobs) for jobs in lanes.values()]:
            future.result()
    return sent


def test_200_private_transactions_agree_per_group_and_leak_nothing(net4: PrivateNet) -> None:
    net = net4
    marker = b"QPY-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()

    # creations: two contracts per group, from different members
    creations: list[tuple[str, Callable[[], Sent]]] = []
    for group, members in GROUPS.items():
        for index in range(CONTRACTS_PER_GROUP):
            node = members[index % len(members)]
            value = 1_000 * (len(creations) + 1)

            def create(node: str = node, group: str = group, value: int = value) -> Sent:
                tx_hash = send(net, node, group, {"data": deploy_data(value)})
                return Sent(tx_hash, node, group, None, value)

            creations.append((node, create))
    deployed = send_concurrently(creations)
    contracts: dict[str, str] = {}
    contract_group: dict[str, str] = {}
    for creation in deployed:
        receipt = net.receipt(creation.node, creation.tx_hash)
        assert receipt["status"] == "0x1", receipt
        contracts[creation.tx_hash] = receipt["contractAddress"]
        contract_group[receipt["contractAddress"]] = creation.group
    addresses = sorted(contract_group)

    # writes: the rest of the 200, round robin over contracts and their members
    jobs: list[tuple[str, Callable[[], Sent]]] = []
    marked_hashes: list[str] = []
    for index in range(TOTAL_TRANSACTIONS - len(deployed)):
        address = addresses[index % len(addresses)]
        group = contract_group[address]
        members = GROUPS[group]
        node = members[(index // len(addresses)) % len(members)]
        value = index + 1
        trailer = marker if group == "AB" and index % 5 == 0 else b""

        def write(
            node: str = node,
            group: str = group,
            address: str = address,
            value: int = value,
            trailer: bytes = trailer,
        ) -> Sent:
            tx_hash = send(
                net,
                node,
                group,
                {"to": address, "data": set_data(value, trailer), "gas": "0x186a0"},
            )
            if trailer:
                marked_hashes.append(tx_hash)
            return Sent(tx_hash, node, group, address, value)

        jobs.append((node, write))
    writes = send_concurrently(jobs)
    assert len(deployed) + len(writes) == TOTAL_TRANSACTIONS
    assert marked_hashes

    # every write succeeded on its sender; the last one in block order wins
    last: dict[str, tuple[int, int, int]] = {}
    for write_sent in writes:
        receipt = net.receipt(write_sent.node, write_sent.tx_hash)
        assert receipt["status"] == "0x1", receipt
        assert len(receipt["logs"]) == 1
        position = (int(receipt["blockNumber"], 16), int(receipt["transactionIndex"], 16))
        assert write_sent.contract is not None
        if write_sent.contract not in last or last[write_sent.contract][:2] < position:
            last[write_sent.contract] = (*position, write_sent.value)
    net.wait_same_head(timeout=60)
    head = int(net.call("node1", "eth_blockNumber"), 16)

    # the public side: every node bumped every sender's nonce alike
    for sender in ("node1", "node2", "node3"):
        nonces = {net.nonce(name, sender) for name in net.names}
        assert len(nonces) == 1, (sender, nonces)
    assert sum(net.nonce("node4", s) for s in ("node1", "node2", "node3")) == TOTAL_TRANSACTIONS

    for address in addresses:
        members = GROUPS[contract_group[address]]
        roots = {name: net.call(name, "eth_storageRoot", [address, "latest"]) for name in members}
        assert len(set(roots.values())) == 1, (address, roots)
        for name in net.names:
            value = net.call(name, "eth_call", [{"to": address, "data": GET_DATA}, "latest"])
            code = net.call(name, "eth_getCode", [address, "latest"])
            if name in members:
                assert int(value, 16) == last[address][2], (address, name)
                assert code == artifact("SimpleStorage")["deployedBytecode"]
            else:
                assert value == "0x" and code == "0x", (address, name)
                assert net.call(name, "eth_storageRoot", [address]) != roots[members[0]]

    # the group roots agree among members at every block, and only members have them
    group_ids = {
        group: net.call(members[0], "eth_getContractPrivacyMetadata", [address])["privacyGroupId"]
        for address in addresses
        for group, members in [(contract_group[address], GROUPS[contract_group[address]])]
    }
    assert len(set(group_ids.values())) == len(GROUPS)
    first_block = min(int(net.receipt(c.node, c.tx_hash)["blockNumber"], 16) for c in deployed)
    for number in range(first_block, head + 1):
        roots_at = {
            name: net.call(name, "debug_privateStateRoots", [hex(number)]) for name in net.names
        }
        assert roots_at["node4"] == {}, number
        for group, members in GROUPS.items():
            group_id = group_ids[group]
            member_roots = {roots_at[name].get(group_id) for name in members}
            assert len(member_roots) == 1, (number, group, member_roots)
            for name in set(net.names) - set(members):
                assert group_id not in roots_at[name], (number, group, name)
    single = {name: net.call(name, "debug_privateStateRoot", [hex(head)]) for name in net.names}
    assert single["node1"] != single["node2"]  # node2 is in all three groups, node1 in two

    # the marker: really in the payloads (parties read it back) ...
    payload_hash = net.call("node1", "eth_getTransactionByHash", [marked_hashes[0]])["input"]
    assert marker.hex() in net.call("node2", "eth_getQuorumPayload", [payload_hash])
    assert net.call("node3", "eth_getQuorumPayload", [payload_hash]) == "0x"
    # ... and in no file of the non-parties, nor in plaintext on the parties' disks
    needles = [marker, marker.hex().encode()]
    for outsider in ("node3", "node4"):
        assert files_containing(net.directory(outsider), needles) == [], outsider
    for party in GROUPS["AB"]:
        assert files_containing(net.directory(party), needles) == [], party
