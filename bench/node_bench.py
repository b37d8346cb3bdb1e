"""Node throughput against raw py-evm: the same signed transactions, two ways, one run.

For each workload (plain value transfers, then ERC20 ``transfer`` calls) the benchmark

1. starts a real ``quorum-node dev`` process (``tests/support/node_process.py``) with
   ``SENDERS`` development keys funded at genesis, and reads the genesis file it wrote,
   so both sides start from exactly the same state;
2. signs N transactions once, up front (untimed);
3. **raw py-evm**: executes them on a fresh in-memory chain with that genesis, in
   batches, two ways:

   * ``stock_mine_all``: stock ``PragueVM`` + ``NoProofConsensus``, ``MiningChain.
     mine_all`` over ``AtomicDB``: what py-evm offers for batch execution out of the box.
     It is the ratio's denominator.
   * ``quorum_seal_block``: the node's own ``ChainService.seal_block`` (``QuorumVM``)
     over ``AtomicDB``: the node minus RPC, pool, SQLite and process boundaries.

   Blocks are cut where the declared gas of the next transaction would exceed the block
   gas limit, the rule the node's pool follows.
4. **node**: sends the same raw transactions with ``eth_sendRawTransaction`` in JSON-RPC
   batches over a few concurrent HTTP connections, polls receipts with batched
   ``eth_getTransactionReceipt``, and times from the first send to the last receipt.
   Every receipt must have status 1. The node's peak RSS is ``VmHWM`` of its process.

ERC20 setup (deploying the token, giving every sender tokens) runs before the timed part
on both sides, with the same signed transactions; only the transfers are timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import aiohttp
from eth._utils.address import generate_contract_address
from eth.abc import SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.consensus.noproof import NoProofConsensus
from eth.db.atomic import AtomicDB
from eth.vm.forks.prague import PragueVM
from eth_abi import encode
from eth_keys.datatypes import PrivateKey
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector

from quorum_node.chain.genesis import Genesis
from quorum_node.chain.service import ChainService
from quorum_node.chain.vm import QuorumVM

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support is not an installed package
from tests.support.node_process import NodeProcess, rpc  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "node_bench.json"
TOKEN_ARTIFACT = REPO / "quorum_node" / "contracts" / "Token.json"

SENDERS = 100
#: Legacy transactions at 1 gwei: stock Prague may raise the base fee above 0 after a
#: full block, the node keeps it at 0; both accept this price.
GAS_PRICE = 10**9
TRANSFER_GAS = 21_000
TOKEN_TRANSFER_GAS = 60_000
#: Recipients are fresh accounts (an account or a storage slot created per transfer).
RECIPIENT_BASE = 0xBB << 152
RPC_BATCH = 200
RPC_CONNECTIONS = 4
RECEIPT_BATCH = 500


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    setup: tuple[SignedTransactionAPI, ...]
    measured: tuple[SignedTransactionAPI, ...]


def sender_keys(count: int) -> list[PrivateKey]:
    return [PrivateKey((0x5EED0000 + index).to_bytes(32, "big")) for index in range(count)]


Signer = Callable[[PrivateKey, int, int, Address, int, bytes], SignedTransactionAPI]


def _signer(chain_id: int) -> Signer:
    vm_class = QuorumVM

    def sign(
        key: PrivateKey, nonce: int, gas: int, to: Address, value: int, data: bytes
    ) -> SignedTransactionAPI:
        unsigned = vm_class.create_unsigned_transaction(
            nonce=nonce, gas_price=GAS_PRICE, gas=gas, to=to, value=value, data=data
        )
        return cast(SignedTransactionAPI, unsigned.as_signed_transaction(key, chain_id=chain_id))

    return sign


def _recipient(index: int) -> Address:
    return Address((RECIPIENT_BASE + index).to_bytes(20, "big"))


def transfer_workload(keys: Sequence[PrivateKey], count: int, chain_id: int) -> Workload:
    """``count`` value transfers, senders round-robin, each to a fresh account."""
    sign = _signer(chain_id)
    nonces = [0] * len(keys)
    measured = []
    for index in range(count):
        slot = index % len(keys)
        measured.append(sign(keys[slot], nonces[slot], TRANSFER_GAS, _recipient(index), 1, b""))
        nonces[slot] += 1
    return Workload(
        "simple_transfers", "legacy value transfers to fresh accounts", (), tuple(measured)
    )


def erc20_workload(keys: Sequence[PrivateKey], count: int, chain_id: int) -> Workload:
    """Deploy the token from the first sender, give every sender tokens (setup), then
    ``count`` ``transfer`` calls, senders round-robin, each to a fresh holder."""
    sign = _signer(chain_id)
    artifact = json.loads(TOKEN_ARTIFACT.read_text())
    bytecode = bytes.fromhex(artifact["bytecode"].removeprefix("0x"))
    supply = 10**30
    deployer = keys[0]
    deploy = sign(
        deployer,
        0,
        3_000_000,
        Address(b""),
        0,
        bytecode + encode(["string", "string", "uint256"], ["Bench", "BEN", supply]),
    )
    token = Address(
        generate_contract_address(Address(deployer.public_key.to_canonical_address()), 0)
    )
    selector = function_signature_to_4byte_selector("transfer(address,uint256)")

    def transfer_call(to: bytes, amount: int) -> bytes:
        return selector + encode(["address", "uint256"], [to, amount])

    setup = [deploy]
    nonces = [0] * len(keys)
    nonces[0] = 1
    for key in keys[1:]:
        share = supply // (2 * len(keys))
        setup.append(
            sign(
                deployer,
                nonces[0],
                TOKEN_TRANSFER_GAS,
                token,
                0,
                transfer_call(key.public_key.to_canonical_address(), share),
            )
        )
        nonces[0] += 1
    measured = []
    for index in range(count):
        slot = index % len(keys)
        measured.append(
            sign(
                keys[slot],
                nonces[slot],
                TOKEN_TRANSFER_GAS,
                token,
                0,
                transfer_call(_recipient(index), 1),
            )
        )
        nonces[slot] += 1
    return Workload(
        "erc20_transfers",
        "Token.transfer(fresh holder, 1) from senders holding tokens",
        tuple(setup),
        tuple(measured),
    )


def gas_chunks(
    transactions: Sequence[SignedTransactionAPI], gas_limit: int
) -> list[list[SignedTransactionAPI]]:
    """Cut blocks where the declared gas would pass the limit (the pool's rule)."""
    chunks: list[list[SignedTransactionAPI]] = [[]]
    gas = 0
    for transaction in transactions:
        if chunks[-1] and gas + transaction.gas > gas_limit:
            chunks.append([])
            gas = 0
        chunks[-1].append(transaction)
        gas += transaction.gas
    return chunks


# --- (a) raw py-evm ---------------------------------------------------------------------


def decoded(
    transactions: Sequence[SignedTransactionAPI], builder: Any
) -> list[SignedTransactionAPI]:
    """Fresh objects decoded from the signed bytes, as a node would receive them.

    py-evm caches a transaction's sender on the object; each run gets new objects so
    that no run profits from another's signature recovery.
    """
    return [builder.decode(transaction.encode()) for transaction in transactions]


StockVM = PragueVM.configure(__name__="StockPragueNoProof", consensus_class=NoProofConsensus)


def raw_stock_mine_all(genesis: Genesis, workload: Workload) -> dict[str, Any]:
    chain_class = MiningChain.configure(
        __name__="BenchStockChain", vm_configuration=((0, StockVM),), chain_id=genesis.chain_id
    )
    chain = cast(
        MiningChain, chain_class.from_genesis(AtomicDB(), genesis.header_params(), genesis.state())
    )  # type: ignore[arg-type]
    builder = StockVM.get_transaction_builder()
    for chunk in gas_chunks(decoded(workload.setup, builder), genesis.gas_limit):
        chain.mine_all(chunk)
    chunks = gas_chunks(decoded(workload.measured, builder), genesis.gas_limit)
    started, cpu_started = time.perf_counter(), time.process_time()
    computations: list[Any] = []
    for chunk in chunks:
        _, _, chunk_computations = chain.mine_all(chunk)
        computations.extend(chunk_computations)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    failed = len([computation for computation in computations if computation.is_error])
    if failed:
        raise RuntimeError(f"raw py-evm: {failed} transactions failed")
    return _raw_rate(len(workload.measured), elapsed, cpu, blocks=len(chunks))


def raw_quorum_seal_block(genesis: Genesis, workload: Workload) -> dict[str, Any]:
    service = ChainService(AtomicDB(), genesis)
    coinbase = b"\x00" * 20

    def seal_all(transactions: Sequence[SignedTransactionAPI]) -> int:
        remaining = list(transactions)
        blocks = 0
        while remaining:
            committed = service.seal_block(remaining, timestamp=0, coinbase=coinbase)
            blocks += 1
            if committed.rejected:
                raise RuntimeError(f"seal_block rejected {committed.rejected[0]}")
            if any(record.status != 1 for record in committed.records):
                raise RuntimeError("a transaction failed in seal_block")
            remaining = list(committed.deferred)
        return blocks

    builder = QuorumVM.get_transaction_builder()
    seal_all(decoded(workload.setup, builder))
    measured = decoded(workload.measured, builder)
    started, cpu_started = time.perf_counter(), time.process_time()
    blocks = seal_all(measured)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return _raw_rate(len(workload.measured), elapsed, cpu, blocks=blocks)


def _rate(count: int, elapsed: float, **extra: Any) -> dict[str, Any]:
    return {
        "transactions": count,
        "seconds": round(elapsed, 3),
        "tx_per_s": round(count / elapsed, 1),
        **extra,
    }


def _raw_rate(count: int, elapsed: float, cpu: float, **extra: Any) -> dict[str, Any]:
    return _rate(count, elapsed, cpu_ms_per_tx=round(1000 * cpu / count, 3), **extra)


# --- (b) the node over JSON-RPC ------------------------------------------------------------


async def _post(
    session: aiohttp.ClientSession, url: str, batch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    async with session.post(url, json=batch) as response:
        response.raise_for_status()
        answers = await response.json()
    if not isinstance(answers, list):
        raise RuntimeError(f"expected a batch answer, got {answers!r}")
    return sorted(answers, key=lambda answer: int(answer["id"]))


async def _send_all(
    session: aiohttp.ClientSession, url: str, raw_transactions: Sequence[str]
) -> None:
    batches = [
        list(raw_transactions[start : start + RPC_BATCH])
        for start in range(0, len(raw_transactions), RPC_BATCH)
    ]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            answers = await _post(
                session,
                url,
                [
                    {
                        "jsonrpc": "2.0",
                        "id": index,
                        "method": "eth_sendRawTransaction",
                        "params": [raw],
                    }
                    for index, raw in enumerate(batch)
                ],
            )
            errors = [answer["error"] for answer in answers if "error" in answer]
            if errors:
                raise RuntimeError(f"eth_sendRawTransaction refused: {errors[0]}")

    await asyncio.gather(*(worker() for _ in range(RPC_CONNECTIONS)))


async def _await_receipts(
    session: aiohttp.ClientSession, url: str, hashes: Sequence[str]
) -> dict[str, Any]:
    """Poll in submission order; blocks include transactions in about that order, so a
    missing receipt in the oldest batch means: wait a block period and ask again."""
    position = 0
    polls = 0
    statuses_ok = 0
    while position < len(hashes):
        window = hashes[position : position + RECEIPT_BATCH]
        answers = await _post(
            session,
            url,
            [
                {
                    "jsonrpc": "2.0",
                    "id": index,
                    "method": "eth_getTransactionReceipt",
                    "params": [transaction_hash],
                }
                for index, transaction_hash in enumerate(window)
            ],
        )
        polls += 1
        arrived = 0
        for answer in answers:
            receipt = answer.get("result")
            if receipt is None:
                break
            if receipt["status"] != "0x1":
                raise RuntimeError(f"transaction {receipt['transactionHash']} failed")
            arrived += 1
        statuses_ok += arrived
        position += arrived
        if arrived < len(window):
            await asyncio.sleep(0.05)
    return {"receipt_polls": polls, "receipts": statuses_ok}


async def _through_node(
    url: str, transactions: Sequence[SignedTransactionAPI]
) -> tuple[float, dict[str, Any]]:
    raw = ["0x" + transaction.encode().hex() for transaction in transactions]
    hashes = ["0x" + transaction.hash.hex() for transaction in transactions]
    connector = aiohttp.TCPConnector(limit=RPC_CONNECTIONS + 1)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        sending = asyncio.create_task(_send_all(session, url, raw))
        polling = asyncio.create_task(_await_receipts(session, url, hashes))
        await sending
        sent_at = time.perf_counter() - started
        stats = await polling
        elapsed = time.perf_counter() - started
    return elapsed, {**stats, "all_sent_after_s": round(sent_at, 3)}


def peak_rss_kib(pid: int) -> int:
    """``VmHWM``: the peak resident set size of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def reset_peak_rss(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); False if refused.

    Needed because the node's start-up peak hides the run's: writing the dev account's
    keystore runs scrypt with n = 2**18, which briefly takes about 256 MiB.
    """
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def stat_cpu_seconds(stat_file: Path) -> float:
    """User plus system CPU time in a ``/proc`` stat file (a process's or a thread's)."""
    fields = stat_file.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (all its threads)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def _block_number(url: str) -> int:
    return int(rpc(url, "eth_blockNumber")["result"], 16)


def node_run(node: NodeProcess, workload: Workload) -> dict[str, Any]:
    if node.process is None:
        raise RuntimeError("the node is not running")
    pid = node.process.pid
    startup_peak = peak_rss_kib(pid)
    peak_was_reset = reset_peak_rss(pid)
    if workload.setup:
        asyncio.run(_through_node(node.http_url, workload.setup))
    first_block = _block_number(node.http_url)
    cpu_before = cpu_seconds(pid)
    elapsed, stats = asyncio.run(_through_node(node.http_url, workload.measured))
    cpu = cpu_seconds(pid) - cpu_before
    blocks = _block_number(node.http_url) - first_block
    return {
        **_rate(len(workload.measured), elapsed, **stats),
        "blocks": blocks,
        "node_cpu_seconds": round(cpu, 2),
        "node_cpu_ms_per_tx": round(1000 * cpu / len(workload.measured), 3),
        "peak_rss_mib": round(peak_rss_kib(pid) / 1024, 1),
        "peak_rss_covers": "setup and measured run"
        if peak_was_reset
        else "the whole process, start-up included",
        "startup_peak_rss_mib": round(startup_peak / 1024, 1),
    }


# --- one workload, both ways --------------------------------------------------------------


def run_workload(
    kind: str,
    count: int,
    keys: Sequence[PrivateKey],
    with_quorum_raw: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    datadir = Path(tempfile.mkdtemp(prefix=f"node_bench_{kind}_"))
    node = NodeProcess(datadir / "node", keys=[key.to_bytes() for key in keys])
    try:
        node.start()
        genesis = Genesis.load(node.datadir / "genesis.json")
        build = transfer_workload if kind == "simple_transfers" else erc20_workload
        started = time.perf_counter()
        workload = build(keys, count, genesis.chain_id)
        log(
            f"{kind}: signed {len(workload.setup) + len(workload.measured)} transactions "
            f"in {time.perf_counter() - started:.1f}s"
        )
        raw = raw_stock_mine_all(genesis, workload)
        log(
            f"{kind}: raw py-evm mine_all      {raw['tx_per_s']:8.1f} tx/s "
            f"({raw['cpu_ms_per_tx']} ms CPU/tx, {raw['blocks']} blocks)"
        )
        raw_quorum = None
        if with_quorum_raw:
            raw_quorum = raw_quorum_seal_block(genesis, workload)
            log(
                f"{kind}: raw QuorumVM seal_block  {raw_quorum['tx_per_s']:8.1f} tx/s "
                f"({raw_quorum['cpu_ms_per_tx']} ms CPU/tx, {raw_quorum['blocks']} blocks)"
            )
        through_node = node_run(node, workload)
        log(
            f"{kind}: node over JSON-RPC       {through_node['tx_per_s']:8.1f} tx/s "
            f"({through_node['node_cpu_ms_per_tx']} ms CPU/tx, {through_node['blocks']} blocks, "
            f"all sent after {through_node['all_sent_after_s']} s), "
            f"peak RSS {through_node['peak_rss_mib']} MiB"
        )
    finally:
        node.stop()
        shutil.rmtree(datadir, ignore_errors=True)
    result: dict[str, Any] = {
        "description": workload.description,
        "transactions": len(workload.measured),
        "senders": len(keys),
        "setup_transactions": len(workload.setup),
        "raw_pyevm": {
            "baseline": "stock PragueVM + NoProofConsensus, MiningChain.mine_all, AtomicDB",
            **raw,
        },
        "node": through_node,
        "ratio_node_over_raw": round(through_node["tx_per_s"] / raw["tx_per_s"], 3),
        # The same ratio from CPU time per transaction (node: all its threads), which a
        # busy shared machine disturbs far less than wall-clock time.
        "cpu_ratio_node_over_raw": round(
            raw["cpu_ms_per_tx"] / through_node["node_cpu_ms_per_tx"], 3
        ),
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }
    if raw_quorum is not None:
        result["raw_quorum_seal_block"] = {
            "baseline": "quorum_node ChainService.seal_block (QuorumVM), AtomicDB",
            **raw_quorum,
        }
        result["ratio_node_over_raw_quorum"] = round(
            through_node["tx_per_s"] / raw_quorum["tx_per_s"], 3
        )
    return result


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "py_evm": version("py-evm"),
        "trie": version("trie"),
        "coincurve": version("coincurve"),
        "aiohttp": version("aiohttp"),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point for ``python -m bench.node_bench`` and ``bench.run_all``."""
    parser = argparse.ArgumentParser(description="node vs raw py-evm throughput")
    parser.add_argument("--n", type=int, default=20_000, help="measured transactions per workload")
    parser.add_argument("--quick", action="store_true", help="2,000 transactions per workload")
    parser.add_argument("--senders", type=int, default=SENDERS)
    parser.add_argument(
        "--no-quorum-raw", action="store_true", help="skip the ChainService-on-AtomicDB baseline"
    )
    parser.add_argument(
        "--workload",
        choices=["simple_transfers", "erc20_transfers"],
        action="append",
        help="run only these (default: both)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    count = 2_000 if args.quick else args.n
    keys = sender_keys(args.senders)

    def log(message: str) -> None:
        print(message, flush=True)

    workloads = args.workload or ["simple_transfers", "erc20_transfers"]
    result: dict[str, Any] = {
        "benchmark": "node_bench",
        "machine": machine_info(),
        "load_average_before": [round(value, 2) for value in os.getloadavg()],
        "n": count,
        "settings": {
            "rpc_batch": RPC_BATCH,
            "rpc_connections": RPC_CONNECTIONS,
            "receipt_batch": RECEIPT_BATCH,
            "gas_price_wei": GAS_PRICE,
            "node": "quorum-node dev (solo, 50 ms block period, SQLite WAL FULL)",
            "timing": "node: first eth_sendRawTransaction to last receipt; raw: execution of "
            "the same signed transactions, blocks cut at the block gas limit",
        },
        "workloads": {
            kind: run_workload(kind, count, keys, not args.no_quorum_raw, log) for kind in workloads
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for kind, entry in result["workloads"].items():
        log(
            f"{kind}: raw {entry['raw_pyevm']['tx_per_s']} tx/s, node "
            f"{entry['node']['tx_per_s']} tx/s, ratio {entry['ratio_node_over_raw']} "
            f"(CPU-time ratio {entry['cpu_ratio_node_over_raw']})"
        )
    log(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
