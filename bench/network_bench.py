"""A 3-node Raft network against raw py-evm, public and private, in one run.

1. **raw py-evm**: the ERC20 and plain transfers that the network will carry are first
   executed with stock py-evm (``bench.node_bench.raw_stock_mine_all``: ``PragueVM`` +
   ``NoProofConsensus``, ``MiningChain.mine_all`` on ``AtomicDB``), the ratio's
   denominator.
2. ``qnet up`` starts 3 participants (A, B, C: a node and a transaction manager each,
   Raft, 50 ms block period) in a temporary folder.
3. **public throughput**: bench senders are funded (untimed), then the pre-signed
   transactions go to all three nodes with ``eth_sendRawTransaction`` in JSON-RPC
   batches; each sender talks to one node (senders round-robin over the nodes), so
   two thirds of the transactions are forwarded by followers to the leader. Timed from
   the first send to the last receipt, every receipt polled at the node it was sent to
   and required to have status 1.
4. **public latency**: ERC20 transfers sent one at a time at 20 tx/s for ``--latency-s``
   seconds, round-robin over the nodes; each one's receipt is polled every 5 ms at the
   node it was sent to; latency is from the send to the first poll that finds it.
5. **private**: a ``Token`` is deployed privately by A for B (C is no party) and tokens
   are handed to the private senders (untimed). Private transfers are then signed
   offline as web3js-quorum does (``/storeraw`` at the sender's manager, then a v=37/38
   signature: ``w3.quorum.sign_private_transaction``'s steps) *before* timing, half the
   senders at A and half at B, and sent with ``eth_sendRawPrivateTransaction`` in
   JSON-RPC batches to their own node (which pushes each envelope to the other party's
   manager before submitting). Timed from the first send to the last private receipt
   (status 1 on the sender's node). The ``/storeraw`` preparation is timed separately;
   ``private_including_storeraw_tx_per_s`` counts it in. Latency: at 10 tx/s offered,
   each transaction is stored, signed and sent when its turn comes; latency from the
   send (and, separately, from the ``/storeraw``) to the private receipt.

Everything runs in one process and one network; the goals the issues set are checked
and written to ``bench/results/network_bench.json`` as met or not met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import rlp
from eth._utils.address import generate_contract_address
from eth.abc import SignedTransactionAPI
from eth_abi import encode
from eth_keys.datatypes import PrivateKey
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector

from bench.cpu_breakdown import breakdown, markdown
from bench.node_bench import (
    TOKEN_ARTIFACT,
    Workload,
    _await_receipts,
    _post,
    _send_all,
    _signer,
    cpu_seconds,
    erc20_workload,
    machine_info,
    raw_quorum_seal_block,
    raw_stock_mine_all,
    sender_keys,
    stat_cpu_seconds,
    transfer_workload,
)
from quorum_node.chain.genesis import Genesis, GenesisAccount
from quorum_node.chain.transactions import (
    QuorumTransactionBuilder,
    sign_private,
    unsigned_private_transaction,
)
from tx_manager.client import Q2TClient

REPO = Path(__file__).resolve().parent.parent
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "network_bench.json"

NODES = 3
BLOCK_PERIOD_MS = 50
SENDERS_PER_WORKLOAD = 60
PRIVATE_SENDERS = 60
SENDER_FUNDS = 10**21
PRIVATE_GAS = 200_000
PUBLIC_LATENCY_RATE = 20.0
PRIVATE_LATENCY_RATE = 10.0
RECEIPT_POLL_S = 0.005
STORERAW_CONCURRENCY = 32

GOALS = {
    "erc20_tx_per_s": 200.0,
    "public_p50_ms_at_20_tx_s": 150.0,
    "private_tx_per_s": 120.0,
    "private_over_public": 0.60,
    "private_p50_ms_at_10_tx_s": 200.0,
    # issue 9 ("less work per transaction"), as ratios of one run:
    "erc20_ratio_to_raw_pyevm": 0.55,
    "nodes_cpu_per_tx_over_builder": 1.2,  # CPU/tx of all nodes ÷ (nodes × builder CPU/tx)
    "public_p50_in_block_periods": 2.0,
    "private_over_public_issue9": 0.85,
}


def log(message: str) -> None:
    print(message, flush=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, Any]:
    ms = [1000 * value for value in latencies_s]
    return {
        "samples": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# --- the network ------------------------------------------------------------------------


def qnet(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "quorum_node.qnet.cli", *args],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def node_pids(directory: Path) -> list[int]:
    return [
        int((directory / node / "node.pid").read_text())
        for node in sorted(p.name for p in directory.iterdir() if (p / "node.pid").exists())
    ]


def tm_pids(directory: Path) -> list[int]:
    return [
        int((directory / node / "tm.pid").read_text())
        for node in sorted(p.name for p in directory.iterdir() if (p / "tm.pid").exists())
    ]


def total_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def thread_cpu(pids: Sequence[int]) -> dict[tuple[int, int], float]:
    """CPU seconds of every thread of the given processes, by (pid, thread id)."""
    found = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                found[(pid, int(task.name))] = stat_cpu_seconds(task / "stat")
    return found


def cpu_by_thread_kind(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float], count: int
) -> dict[str, float]:
    """The nodes' CPU per transaction (ms) split by thread: the event loop (a node's main
    thread), the chain thread (the busiest other thread: it executes every block) and
    the rest (pysyncobj's thread and any short-lived one), summed over the nodes."""
    spent: dict[int, list[tuple[int, float]]] = {}
    for (pid, tid), seconds in after.items():
        spent.setdefault(pid, []).append((tid, seconds - before.get((pid, tid), 0.0)))
    kinds = {"event_loop": 0.0, "chain_thread": 0.0, "raft_and_other": 0.0}
    for pid, threads in spent.items():
        others = sorted((cpu for tid, cpu in threads if tid != pid), reverse=True)
        kinds["event_loop"] += sum(cpu for tid, cpu in threads if tid == pid)
        kinds["chain_thread"] += others[0] if others else 0.0
        kinds["raft_and_other"] += sum(others[1:])
    return {kind: round(1000 * seconds / count, 3) for kind, seconds in kinds.items()}


# --- transactions ------------------------------------------------------------------------


def funding(network: dict[str, Any], keys: Sequence[PrivateKey]) -> list[SignedTransactionAPI]:
    """Value transfers from node A's genesis account to every bench sender."""
    sign = _signer(network["chain_id"])
    funder = PrivateKey(bytes.fromhex(network["nodes"][0]["accounts"][0]["private_key"][2:]))
    return [
        sign(
            funder, nonce, 21_000, Address(key.public_key.to_canonical_address()), SENDER_FUNDS, b""
        )
        for nonce, key in enumerate(keys)
    ]


def raw_genesis(network_genesis: Genesis, keys: Sequence[PrivateKey]) -> Genesis:
    """The network's genesis with the bench senders funded, for the raw py-evm side."""
    alloc = dict(network_genesis.alloc)
    for key in keys:
        alloc[Address(key.public_key.to_canonical_address())] = GenesisAccount(balance=SENDER_FUNDS)
    return dataclasses.replace(network_genesis, alloc=alloc)


def split(workload: Workload, count: int) -> tuple[Workload, list[SignedTransactionAPI]]:
    """The first ``count`` measured transactions as a workload, the rest (continuing
    every sender's nonces) for the latency run."""
    return (
        dataclasses.replace(workload, measured=workload.measured[:count]),
        list(workload.measured[count:]),
    )


def sender_of(transaction: SignedTransactionAPI) -> bytes:
    return bytes(transaction.sender)


def by_node(
    transactions: Sequence[SignedTransactionAPI], senders: Sequence[PrivateKey], nodes: int
) -> list[list[SignedTransactionAPI]]:
    """Each sender talks to one node, senders round-robin over the nodes; order kept."""
    home = {
        key.public_key.to_canonical_address(): index % nodes for index, key in enumerate(senders)
    }
    lanes: list[list[SignedTransactionAPI]] = [[] for _ in range(nodes)]
    for transaction in transactions:
        lanes[home.get(sender_of(transaction), 0)].append(transaction)
    return lanes


def hex_of(data: bytes) -> str:
    return "0x" + bytes(data).hex()


# --- public part ---------------------------------------------------------------------------


async def await_receipts(
    session: aiohttp.ClientSession, url: str, hashes: Sequence[str], window: int = 500
) -> dict[str, Any]:
    """``node_bench._await_receipts`` with a lighter touch: while a window's last
    transaction has no receipt yet, only that one is asked for (one lookup per poll
    instead of up to 500), so the polling costs the nodes little of the CPU whose
    throughput is being measured; each window is then checked in full (status 1)."""
    position = 0
    receipts = 0
    while position < len(hashes):
        last = hashes[min(position + window, len(hashes)) - 1]
        probe = await _post(
            session,
            url,
            [{"jsonrpc": "2.0", "id": 0, "method": "eth_getTransactionReceipt", "params": [last]}],
        )
        if probe[0].get("result") is None:
            await asyncio.sleep(0.05)
            continue
        stats = await _await_receipts(session, url, hashes[position : position + window])
        receipts += stats["receipts"]
        position += window
    return {"receipts": receipts}


async def send_public(
    urls: Sequence[str], lanes: Sequence[Sequence[SignedTransactionAPI]]
) -> dict[str, Any]:
    """All lanes at once, each to its node; from the first send to the last receipt."""
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        first_block = int(await _rpc(session, urls[0], "eth_blockNumber", []), 16)
        started = time.perf_counter()
        sends = [
            asyncio.create_task(_send_all(session, url, [hex_of(tx.encode()) for tx in lane]))
            for url, lane in zip(urls, lanes, strict=True)
            if lane
        ]
        polls = [
            asyncio.create_task(await_receipts(session, url, [hex_of(tx.hash) for tx in lane]))
            for url, lane in zip(urls, lanes, strict=True)
            if lane
        ]
        await asyncio.gather(*sends)
        sent_after = time.perf_counter() - started
        stats = await asyncio.gather(*polls)
        elapsed = time.perf_counter() - started
        blocks = int(await _rpc(session, urls[0], "eth_blockNumber", []), 16) - first_block
    count = sum(len(lane) for lane in lanes)
    return {
        "transactions": count,
        "seconds": round(elapsed, 3),
        "tx_per_s": round(count / elapsed, 1),
        "all_sent_after_s": round(sent_after, 3),
        "receipts": sum(entry["receipts"] for entry in stats),
        "first_block": first_block,
        "blocks": blocks,
        "transactions_per_block": round(count / max(blocks, 1), 1),
    }


async def settled(urls: Sequence[str], timeout: float = 120.0) -> None:
    """Until every node holds the same head: a throughput phase ends at the last receipt
    on the sending nodes, while the others may still be importing its last blocks, and a
    latency phase started then would measure that backlog, not latency at its rate."""
    deadline = time.perf_counter() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            heads = [
                (await _rpc(session, url, "eth_getBlockByNumber", ["latest", False]))["hash"]
                for url in urls
            ]
            if len(set(heads)) == 1:
                return
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the nodes' heads never met: {heads}")
            await asyncio.sleep(0.05)


def replay_builder(
    directory: Path,
    url: str,
    first: int,
    last: int,
    known: Sequence[SignedTransactionAPI],
    concurrent: int = 1,
) -> dict[str, Any]:
    """``bench.builder_replay`` in fresh processes (a node's own is lean too: the bench
    process holds every workload, which slows py-evm's garbage collection).

    With ``concurrent`` > 1 that many replays run at once, each on its own database, and
    the figure is their mean: the builder's CPU per transaction when, as the network's
    nodes do, that many CPU-bound processes share this machine's cores (each then pays
    for caches it no longer has to itself)."""
    transactions_file = directory / "replay-transactions.rlp"
    transactions_file.write_bytes(rlp.encode([transaction.encode() for transaction in known]))
    replays = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.builder_replay",
                "--url",
                url,
                "--genesis",
                str(directory / "genesis.json"),
                "--transactions",
                str(transactions_file),
                "--first",
                str(first),
                "--last",
                str(last),
                "--database",
                str(directory / f"builder-replay-{index}.sqlite"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(concurrent)
    ]
    results = []
    for replay in replays:
        stdout, _ = replay.communicate(timeout=900)
        if replay.returncode != 0:
            raise RuntimeError(f"bench.builder_replay exited with {replay.returncode}")
        results.append(dict(json.loads(stdout)))
    for index in range(concurrent):
        for leftover in directory.glob(f"builder-replay-{index}.sqlite*"):
            leftover.unlink()
    if concurrent == 1:
        return results[0]
    return {
        **results[0],
        "baseline": f"{concurrent} replays at once, as {concurrent} nodes share the cores; "
        "the mean of their CPU per transaction",
        "cpu_ms_per_tx": round(statistics.fmean(r["cpu_ms_per_tx"] for r in results), 3),
        "each_cpu_ms_per_tx": [r["cpu_ms_per_tx"] for r in results],
        "identical_blocks": all(r["identical_blocks"] for r in results),
    }


def idle_cpu_ms_per_s(pids: Sequence[int], seconds: float = 3.0) -> float:
    """The nodes' CPU while nothing is sent (Raft heartbeats and timers, pollers)."""
    before = total_cpu(pids)
    time.sleep(seconds)
    return round(1000 * (total_cpu(pids) - before) / seconds, 2)


async def _poll_receipt(
    session: aiohttp.ClientSession, url: str, transaction_hash: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while True:
        async with session.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getTransactionReceipt",
                "params": [transaction_hash],
            },
        ) as response:
            answer = await response.json()
        receipt = answer.get("result")
        if receipt is not None:
            if receipt["status"] != "0x1":
                raise RuntimeError(f"transaction {transaction_hash} failed")
            return dict(receipt)
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no receipt for {transaction_hash} after {timeout}s")
        await asyncio.sleep(RECEIPT_POLL_S)


async def _rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    async with session.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    ) as response:
        answer = await response.json()
    if "error" in answer:
        raise RuntimeError(f"{method} refused: {answer['error']}")
    return answer["result"]


async def paced_public(
    urls: Sequence[str], transactions: Sequence[SignedTransactionAPI], rate: float
) -> dict[str, Any]:
    """Single sends at ``rate`` per second, round-robin over the nodes; latency of each."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

        async def one(index: int, transaction: SignedTransactionAPI) -> None:
            url = urls[index % len(urls)]
            sent = time.perf_counter()
            transaction_hash = await _rpc(
                session, url, "eth_sendRawTransaction", [hex_of(transaction.encode())]
            )
            await _poll_receipt(session, url, transaction_hash)
            latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        tasks = []
        for index, transaction in enumerate(transactions):
            await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(index, transaction)))
        await asyncio.gather(*tasks)
    return {"offered_tx_per_s": rate, **latency_summary(latencies)}


# --- private part --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Party:
    name: str
    rpc_url: str
    tm_url: str
    tm_key: str


def private_keys(count: int, first: int = 0) -> list[PrivateKey]:
    """Fixed private senders; ``first`` skips that many (disjoint sets for several plans)."""
    return [
        PrivateKey((0x9121A7E0000 + first + index).to_bytes(32, "big")) for index in range(count)
    ]


def sign_private_raw(
    key: PrivateKey, nonce: int, to: bytes, payload_hash: bytes, gas: int = PRIVATE_GAS
) -> bytes:
    """What ``w3.quorum.sign_private_transaction`` signs once ``/storeraw`` answered."""
    unsigned = unsigned_private_transaction(
        nonce=nonce, gas=gas, gas_price=0, to=to, payload_hash=payload_hash
    )
    return bytes(sign_private(unsigned, key).encode())


@dataclasses.dataclass
class PrivateCall:
    """One private transaction to be: who sends it, through which party, with what."""

    key: PrivateKey
    nonce: int
    to: bytes
    payload: bytes
    party: Party
    counterparty: Party
    gas: int = PRIVATE_GAS
    raw: bytes = b""
    transaction_hash: str = ""


async def store_and_sign(calls: Sequence[PrivateCall]) -> float:
    """``/storeraw`` at each call's own manager, then sign; returns the seconds taken."""
    clients: dict[str, Q2TClient] = {}
    semaphore = asyncio.Semaphore(STORERAW_CONCURRENCY)
    try:
        for call in calls:
            if call.party.tm_url not in clients:
                clients[call.party.tm_url] = Q2TClient(call.party.tm_url)

        async def one(call: PrivateCall) -> None:
            async with semaphore:
                payload_hash = await clients[call.party.tm_url].store_raw(
                    call.payload, to=[call.counterparty.tm_key]
                )
            call.raw = sign_private_raw(call.key, call.nonce, call.to, payload_hash, call.gas)
            call.transaction_hash = hex_of(QuorumTransactionBuilder.decode(call.raw).hash)

        started = time.perf_counter()
        await asyncio.gather(*(one(call) for call in calls))
        return time.perf_counter() - started
    finally:
        for client in clients.values():
            await client.close()


def _private_request(call: PrivateCall, request_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "eth_sendRawPrivateTransaction",
        "params": [hex_of(call.raw), {"privateFor": [call.counterparty.tm_key]}],
    }


async def send_private(
    calls: Sequence[PrivateCall], batch: int = 100, connections: int = 4
) -> dict[str, Any]:
    """Batches of ``eth_sendRawPrivateTransaction`` to each call's own node, receipts
    polled there; from the first send to the last private receipt."""
    lanes: dict[str, list[PrivateCall]] = {}
    for call in calls:
        lanes.setdefault(call.party.rpc_url, []).append(call)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=timeout
    ) as session:

        async def send_lane(url: str, lane: list[PrivateCall]) -> None:
            queue = [lane[start : start + batch] for start in range(0, len(lane), batch)]

            async def worker() -> None:
                while queue:
                    chunk = queue.pop(0)
                    answers = await _post(
                        session,
                        url,
                        [_private_request(call, index) for index, call in enumerate(chunk)],
                    )
                    errors = [answer["error"] for answer in answers if "error" in answer]
                    if errors:
                        raise RuntimeError(f"eth_sendRawPrivateTransaction refused: {errors[0]}")

            await asyncio.gather(*(worker() for _ in range(connections)))

        started = time.perf_counter()
        polls = [
            asyncio.create_task(
                await_receipts(session, url, [call.transaction_hash for call in lane])
            )
            for url, lane in lanes.items()
        ]
        await asyncio.gather(*(send_lane(url, lane) for url, lane in lanes.items()))
        sent_after = time.perf_counter() - started
        stats = await asyncio.gather(*polls)
        elapsed = time.perf_counter() - started
    return {
        "transactions": len(calls),
        "seconds": round(elapsed, 3),
        "tx_per_s": round(len(calls) / elapsed, 1),
        "all_sent_after_s": round(sent_after, 3),
        "receipts": sum(entry["receipts"] for entry in stats),
    }


async def paced_private(calls: Sequence[PrivateCall], rate: float) -> dict[str, Any]:
    """At ``rate`` per second: ``/storeraw``, sign, send, poll the private receipt."""
    from_send: list[float] = []
    from_store: list[float] = []
    send_answered: list[float] = []
    clients = {url: Q2TClient(url) for url in {call.party.tm_url for call in calls}}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:

            async def one(call: PrivateCall) -> None:
                stored = time.perf_counter()
                payload_hash = await clients[call.party.tm_url].store_raw(
                    call.payload, to=[call.counterparty.tm_key]
                )
                raw = sign_private_raw(call.key, call.nonce, call.to, payload_hash, call.gas)
                sent = time.perf_counter()
                answer = await _post(
                    session,
                    call.party.rpc_url,
                    [_private_request(dataclasses.replace(call, raw=raw), 0)],
                )
                if "error" in answer[0]:
                    raise RuntimeError(f"eth_sendRawPrivateTransaction: {answer[0]['error']}")
                send_answered.append(time.perf_counter() - sent)
                await _poll_receipt(session, call.party.rpc_url, answer[0]["result"])
                done = time.perf_counter()
                from_send.append(done - sent)
                from_store.append(done - stored)

            started = time.perf_counter()
            tasks = []
            for index, call in enumerate(calls):
                await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one(call)))
            await asyncio.gather(*tasks)
    finally:
        for client in clients.values():
            await client.close()
    return {
        "offered_tx_per_s": rate,
        **latency_summary(from_send),
        "including_storeraw": latency_summary(from_store),
        # The node answers eth_sendRawPrivateTransaction once both managers stored the
        # payload and the pool admitted the transaction; the rest is ordering and import.
        "send_answered": latency_summary(send_answered),
    }


def private_plan(
    parties: Sequence[Party], keys: Sequence[PrivateKey], count: int, latency_count: int
) -> tuple[list[PrivateCall], list[PrivateCall], list[PrivateCall], bytes]:
    """Deploy (A for B), token handouts, measured transfers, latency transfers."""
    party_a, party_b = parties[0], parties[1]
    artifact = json.loads(TOKEN_ARTIFACT.read_text())
    bytecode = bytes.fromhex(artifact["bytecode"].removeprefix("0x"))
    supply = 10**30
    deployer = keys[0]
    token = bytes(generate_contract_address(Address(deployer.public_key.to_canonical_address()), 0))
    selector = function_signature_to_4byte_selector("transfer(address,uint256)")

    def transfer_call(to: bytes, amount: int) -> bytes:
        return selector + encode(["address", "uint256"], [to, amount])

    nonces = [0] * len(keys)
    deploy = [
        PrivateCall(
            deployer,
            0,
            b"",
            bytecode + encode(["string", "string", "uint256"], ["Private", "PRV", supply]),
            party_a,
            party_b,
            gas=3_000_000,
        )
    ]
    nonces[0] = 1
    handouts = []
    for key in keys[1:]:
        handouts.append(
            PrivateCall(
                deployer,
                nonces[0],
                token,
                transfer_call(key.public_key.to_canonical_address(), supply // (2 * len(keys))),
                party_a,
                party_b,
            )
        )
        nonces[0] += 1
    # Senders alternate between A and B: even senders sign at A, odd ones at B.
    transfers = []
    for index in range(count + latency_count):
        slot = index % len(keys)
        party, counterparty = (party_a, party_b) if slot % 2 == 0 else (party_b, party_a)
        transfers.append(
            PrivateCall(
                keys[slot],
                nonces[slot],
                token,
                transfer_call(bytes((0xCC << 152 | index).to_bytes(20, "big")), 1),
                party,
                counterparty,
            )
        )
        nonces[slot] += 1
    return [*deploy, *handouts], transfers[:count], transfers[count:], token


# --- the run -------------------------------------------------------------------------------


def cpu_figures(nodes_cpu_ms_per_tx: float, raw: dict[str, Any]) -> dict[str, Any]:
    """Figures from CPU time, which a busy shared machine disturbs far less than wall
    time: each node's CPU per transaction against raw py-evm's, and the rate the
    network's processes alone could reach with every core of this machine."""
    return {
        "per_node_cpu_ratio_to_raw": round(raw["cpu_ms_per_tx"] / (nodes_cpu_ms_per_tx / NODES), 3),
        "cpu_bound_tx_per_s_all_cores": round(
            1000 * (os.cpu_count() or 1) / nodes_cpu_ms_per_tx, 1
        ),
    }


@contextlib.contextmanager
def profiling(out_dir: Path | None, directory: Path, phase: str) -> Iterator[None]:
    """With ``--profile DIR``: sample every node and manager with py-spy while the block
    runs, one collapsed-stack file per process (``bench.cpu_breakdown`` sums them up)."""
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    samplers = []
    for pid_file in sorted(directory.glob("*/*.pid")):
        name = f"{phase}-{pid_file.parent.name}-{pid_file.stem}.txt"
        samplers.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "--rate",
                    "200",
                    "--pid",
                    pid_file.read_text().strip(),
                    "--output",
                    str(out_dir / name),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in samplers:
            sampler.wait(timeout=60)


def goal(value: float, target: float, above: bool) -> dict[str, Any]:
    met = value >= target if above else value < target
    return {"value": value, "target": (">= " if above else "< ") + str(target), "met": met}


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    public_n = args.n or (1000 if quick else 5000)
    private_n = args.private_n or (800 if quick else 4000)
    latency_s = args.latency_s or (5.0 if quick else 10.0)
    result: dict[str, Any] = {
        "benchmark": "network_bench",
        "quick": quick,
        "machine": {**machine_info(), "loadavg_start": load_average()},
    }
    directory = Path(tempfile.mkdtemp(prefix="network_bench_"))
    run_started = time.perf_counter()
    try:
        log(f"qnet up --nodes {NODES} --block-period {BLOCK_PERIOD_MS} in {directory}")
        qnet(
            "up",
            "--dir",
            str(directory),
            "--nodes",
            str(NODES),
            "--block-period",
            str(BLOCK_PERIOD_MS),
        )
        network = json.loads((directory / "network.json").read_text())
        urls = [node["rpc_url"] for node in network["nodes"]]
        chain_id = network["chain_id"]
        network_genesis = Genesis.load(directory / "genesis.json")

        keys = sender_keys(2 * SENDERS_PER_WORKLOAD)
        erc20_keys, plain_keys = keys[:SENDERS_PER_WORKLOAD], keys[SENDERS_PER_WORKLOAD:]
        latency_n = int(PUBLIC_LATENCY_RATE * latency_s)
        erc20_all = erc20_workload(erc20_keys, public_n + latency_n, chain_id)
        erc20, erc20_latency = split(erc20_all, public_n)
        plain = transfer_workload(plain_keys, public_n, chain_id)

        # (a) raw py-evm on the same transactions.
        genesis = raw_genesis(network_genesis, keys)
        raw = {
            "erc20_transfers": raw_stock_mine_all(genesis, erc20),
            "simple_transfers": raw_stock_mine_all(genesis, plain),
        }
        for kind, entry in raw.items():
            log(f"raw py-evm {kind}: {entry['tx_per_s']} tx/s")
        # The node's own block builder on the same ERC20 transactions (ChainService.seal_block,
        # QuorumVM, AtomicDB): what one node must spend per transaction at the least.
        builder = raw_quorum_seal_block(genesis, erc20)
        log(f"builder alone, ERC20: {builder['cpu_ms_per_tx']} ms CPU/tx")

        # Setup on the network (untimed): fund the senders, deploy and hand out tokens.
        funded = funding(network, keys)
        asyncio.run(send_public([urls[0]], [funded]))
        asyncio.run(send_public([urls[0]], [list(erc20.setup)]))

        # (b) public throughput, then latency.
        pids = node_pids(directory)
        nodes_idle = idle_cpu_ms_per_s(pids)
        log(f"nodes idle: {nodes_idle} ms CPU per second")
        public: dict[str, Any] = {}
        for kind, workload, senders in (
            ("erc20_transfers", erc20, erc20_keys),
            ("simple_transfers", plain, plain_keys),
        ):
            cpu_before = total_cpu(pids)
            threads_before = thread_cpu(pids)
            with profiling(args.profile, directory, f"public-{kind}"):
                measured = asyncio.run(
                    send_public(urls, by_node(workload.measured, senders, NODES))
                )
            cpu = total_cpu(pids) - cpu_before
            measured["nodes_cpu_ms_per_tx"] = round(1000 * cpu / len(workload.measured), 3)
            measured["nodes_cpu_ms_per_tx_by_thread"] = cpu_by_thread_kind(
                threads_before, thread_cpu(pids), len(workload.measured)
            )
            # What the nodes would have spent idle over the phase's wall-clock time: part
            # of the figure above, and larger the slower a loaded machine runs the phase.
            measured["nodes_idle_cpu_ms_per_tx"] = round(
                nodes_idle * measured["seconds"] / len(workload.measured), 3
            )
            measured["ratio_to_raw_pyevm"] = round(measured["tx_per_s"] / raw[kind]["tx_per_s"], 3)
            measured.update(cpu_figures(measured["nodes_cpu_ms_per_tx"], raw[kind]))
            public[kind] = measured
            if kind == "erc20_transfers":
                # The builder on exactly the blocks the network made (same transactions,
                # order, timestamps, SQLite): what one node must spend at the least.
                replay_args = (
                    directory,
                    urls[0],
                    measured["first_block"] + 1,
                    measured["first_block"] + measured["blocks"],
                    [*funded, *erc20.setup, *erc20.measured],
                )
                in_network = replay_builder(*replay_args)
                in_network_contended = replay_builder(*replay_args, concurrent=NODES)
                log(
                    f"builder replaying the network's blocks: {in_network['cpu_ms_per_tx']} "
                    f"ms CPU/tx alone, {in_network_contended['cpu_ms_per_tx']} with "
                    f"{NODES} at once (identical blocks: {in_network['identical_blocks']})"
                )
            log(
                f"network {kind}: {measured['tx_per_s']} tx/s "
                f"(ratio to raw {measured['ratio_to_raw_pyevm']}, "
                f"{measured['nodes_cpu_ms_per_tx']} ms CPU/tx in all nodes, "
                f"CPU-bound {measured['cpu_bound_tx_per_s_all_cores']} tx/s)"
            )
        asyncio.run(settled(urls))
        latency = asyncio.run(paced_public(urls, erc20_latency, PUBLIC_LATENCY_RATE))
        log(
            f"network ERC20 latency at {PUBLIC_LATENCY_RATE:.0f} tx/s: p50 {latency['p50_ms']} ms, "
            f"p99 {latency['p99_ms']} ms"
        )

        # (c) private, A and B parties, C not.
        parties = [
            Party(node["name"], node["rpc_url"], node["tm_url"], node["tm_public_key"])
            for node in network["nodes"]
        ]
        private_latency_n = int(PRIVATE_LATENCY_RATE * latency_s)
        setup_calls, transfers, latency_calls, token = private_plan(
            parties, private_keys(PRIVATE_SENDERS), private_n, private_latency_n
        )
        asyncio.run(store_and_sign(setup_calls[:1]))
        asyncio.run(send_private(setup_calls[:1]))
        asyncio.run(store_and_sign(setup_calls[1:]))
        asyncio.run(send_private(setup_calls[1:]))
        tm_cpu_pids = tm_pids(directory)
        storeraw_s = asyncio.run(store_and_sign(transfers))
        cpu_before = total_cpu(pids)
        tm_cpu_before = total_cpu(tm_cpu_pids)
        with profiling(args.profile, directory, "private-erc20_transfers"):
            private = asyncio.run(send_private(transfers))
        private["nodes_cpu_ms_per_tx"] = round(1000 * (total_cpu(pids) - cpu_before) / private_n, 3)
        private["managers_cpu_ms_per_tx"] = round(
            1000 * (total_cpu(tm_cpu_pids) - tm_cpu_before) / private_n, 3
        )
        private["cpu_bound_tx_per_s_all_cores"] = round(
            1000
            * (os.cpu_count() or 1)
            / (private["nodes_cpu_ms_per_tx"] + private["managers_cpu_ms_per_tx"]),
            1,
        )
        private["storeraw_and_sign_seconds"] = round(storeraw_s, 3)
        private["including_storeraw_tx_per_s"] = round(
            private_n / (storeraw_s + private["seconds"]), 1
        )
        private["ratio_to_public_erc20"] = round(
            private["tx_per_s"] / public["erc20_transfers"]["tx_per_s"], 3
        )
        log(
            f"network private ERC20: {private['tx_per_s']} tx/s (ratio to public "
            f"{private['ratio_to_public_erc20']}; /storeraw+sign beforehand {storeraw_s:.1f}s)"
        )
        asyncio.run(settled(urls))
        private_latency = asyncio.run(paced_private(latency_calls, PRIVATE_LATENCY_RATE))
        log(
            f"network private latency at {PRIVATE_LATENCY_RATE:.0f} tx/s: p50 "
            f"{private_latency['p50_ms']} ms, p99 {private_latency['p99_ms']} ms"
        )
        consistency = asyncio.run(check_private_views(parties, token))

        result["settings"] = {
            "nodes": NODES,
            "consensus": "raft",
            "block_period_ms": BLOCK_PERIOD_MS,
            "tx_managers": True,
            "public_transactions_per_workload": public_n,
            "public_senders_per_workload": SENDERS_PER_WORKLOAD,
            "private_transactions": private_n,
            "private_senders": PRIVATE_SENDERS,
            "latency_seconds": latency_s,
            "receipt_poll_ms": 1000 * RECEIPT_POLL_S,
            "sending": "pre-signed; each sender pinned to one node, senders round-robin over "
            "the nodes; JSON-RPC batches of 200 (public) / 100 (private), "
            "4 connections per node",
            "receipt_polling": "throughput: the last receipt of each 500-transaction window "
            "polled alone every 50 ms, then the window checked in one "
            "batch; latency: each receipt polled alone every 5 ms",
            "private_sending": "signed offline: /storeraw at the sender's manager and the "
            "v=37/38 signature before timing; timed: "
            "eth_sendRawPrivateTransaction (the node pushes the envelope "
            "to the counterparty's manager) to the last private receipt",
        }
        result["raw_pyevm"] = {
            "baseline": "stock PragueVM + NoProofConsensus, "
            "MiningChain.mine_all, AtomicDB (bench.node_bench)",
            **raw,
        }
        result["builder"] = {
            "best_case": {
                "baseline": "quorum_node ChainService.seal_block (QuorumVM), AtomicDB, the "
                "ERC20 transactions in as few blocks as the gas limit allows",
                **builder,
            },
            "in_network": in_network,
            "in_network_contended": in_network_contended,
        }
        over_builder = public["erc20_transfers"]["nodes_cpu_ms_per_tx"] / (
            NODES * in_network["cpu_ms_per_tx"]
        )
        public["erc20_transfers"]["nodes_cpu_over_nodes_times_builder"] = round(over_builder, 3)
        # The same with the builder measured as the nodes run: NODES processes sharing
        # the cores (the goal below keeps the builder alone, as issue 9 defines it).
        public["erc20_transfers"]["nodes_cpu_over_nodes_times_contended_builder"] = round(
            public["erc20_transfers"]["nodes_cpu_ms_per_tx"]
            / (NODES * in_network_contended["cpu_ms_per_tx"]),
            3,
        )
        result["nodes_idle_cpu_ms_per_s"] = nodes_idle
        by_thread = public["erc20_transfers"]["nodes_cpu_ms_per_tx_by_thread"]
        public["erc20_transfers"]["chain_threads_over_nodes_times_builder"] = round(
            by_thread["chain_thread"] / (NODES * in_network["cpu_ms_per_tx"]), 3
        )
        log(
            "nodes' CPU per ERC20 transfer by thread: "
            + ", ".join(f"{kind} {ms} ms" for kind, ms in by_thread.items())
        )
        log(
            f"nodes' CPU per transaction over {NODES} x the builder's: {over_builder:.3f} "
            f"(builder alone), "
            f"{public['erc20_transfers']['nodes_cpu_over_nodes_times_contended_builder']} "
            f"({NODES} builders at once); idle share "
            f"{public['erc20_transfers']['nodes_idle_cpu_ms_per_tx']} ms/tx"
        )
        result["public"] = {**public, "erc20_latency": latency}
        result["private"] = {
            "erc20_transfers": private,
            "latency": private_latency,
            "party_views": consistency,
        }
        result["goals"] = {
            "erc20_tx_per_s": goal(
                public["erc20_transfers"]["tx_per_s"], GOALS["erc20_tx_per_s"], True
            ),
            "public_p50_ms_at_20_tx_s": goal(
                latency["p50_ms"], GOALS["public_p50_ms_at_20_tx_s"], False
            ),
            "private_tx_per_s": goal(private["tx_per_s"], GOALS["private_tx_per_s"], True),
            "private_over_public": goal(
                private["ratio_to_public_erc20"], GOALS["private_over_public"], True
            ),
            "private_p50_ms_at_10_tx_s": goal(
                private_latency["p50_ms"], GOALS["private_p50_ms_at_10_tx_s"], False
            ),
            "erc20_ratio_to_raw_pyevm": goal(
                public["erc20_transfers"]["ratio_to_raw_pyevm"],
                GOALS["erc20_ratio_to_raw_pyevm"],
                True,
            ),
            "nodes_cpu_per_tx_over_builder": goal(
                round(over_builder, 3), GOALS["nodes_cpu_per_tx_over_builder"] + 1e-9, False
            ),
            "public_p50_in_block_periods": goal(
                round(latency["p50_ms"] / BLOCK_PERIOD_MS, 2),
                GOALS["public_p50_in_block_periods"] + 1e-9,
                False,
            ),
            "private_over_public_issue9": goal(
                private["ratio_to_public_erc20"], GOALS["private_over_public_issue9"], True
            ),
        }
        if args.profile is not None:
            phases = [
                (f"public-{kind}", len(workload.measured), public[kind]["nodes_cpu_ms_per_tx"])
                for kind, workload in (("erc20_transfers", erc20), ("simple_transfers", plain))
            ]
            phases.append(
                (
                    "private-erc20_transfers",
                    private_n,
                    private["nodes_cpu_ms_per_tx"] + private["managers_cpu_ms_per_tx"],
                )
            )
            result["cpu_breakdown"] = [
                breakdown(args.profile, phase, count, measured) for phase, count, measured in phases
            ]
            log(markdown(result["cpu_breakdown"]))
    finally:
        try:
            qnet("down", "--dir", str(directory))
        finally:
            if not args.keep:
                shutil.rmtree(directory, ignore_errors=True)
    result["machine"]["loadavg_end"] = load_average()
    result["seconds"] = round(time.perf_counter() - run_started, 1)
    return result


async def check_private_views(parties: Sequence[Party], token: bytes) -> dict[str, Any]:
    """The token's code on A, B (parties: the same) and C (not a party: none)."""
    async with aiohttp.ClientSession() as session:
        heads = [
            int(await _rpc(session, party.rpc_url, "eth_blockNumber", []), 16) for party in parties
        ]
        block = hex(min(heads))  # one block every node has imported
        codes = [
            await _rpc(session, party.rpc_url, "eth_getCode", [hex_of(token), block])
            for party in parties
        ]
        roots = []
        for party in parties[:2]:
            roots.append(
                await _rpc(session, party.rpc_url, "eth_storageRoot", [hex_of(token), block])
            )
    return {
        "code_on_a_equals_b": codes[0] == codes[1] and len(codes[0]) > 2,
        "code_on_c": codes[2],
        "storage_root_a_equals_b": roots[0] == roots[1],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point for ``python -m bench.network_bench`` and ``bench.run_all``."""
    parser = argparse.ArgumentParser(description="3-node Raft network vs raw py-evm")
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 2 minutes)")
    parser.add_argument("--n", type=int, help="public transactions per workload")
    parser.add_argument("--private-n", type=int, help="private transactions")
    parser.add_argument("--latency-s", type=float, help="seconds of each paced latency run")
    parser.add_argument("--keep", action="store_true", help="keep the network folder")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample every node and manager with py-spy into this folder (slows the run)",
    )
    args = parser.parse_args(argv)
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, entry in result["goals"].items():
        log(
            f"goal {name}: {entry['value']} (target {entry['target']}): "
            f"{'met' if entry['met'] else 'NOT met'}"
        )
    log(f"wrote {args.output} in {result['seconds']} s")
    return result


if __name__ == "__main__":
    main()
