"""The node's own block builder replaying a network's blocks, in a process of its own.

``bench.network_bench`` measures how much CPU a whole network spends per transaction; the
least one node can spend is what its builder spends on the same blocks. This rebuilds
blocks 1..``--last`` of the network at ``--url`` with ``ChainService.seal_block`` on SQLite
(as a node stores them), from fresh copies of the same transactions (``--transactions``:
an RLP list of every signed transaction the network carried), in the same order and with
the same timestamps and coinbase, and prints as JSON the CPU time per transaction of
blocks ``--first``..``--last`` and whether every rebuilt block has the network's hash.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rlp

from quorum_node.chain.db import SqliteDB
from quorum_node.chain.genesis import Genesis
from quorum_node.chain.service import ChainService
from quorum_node.chain.vm import QuorumVM


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["result"]


def replay(
    url: str, genesis: Genesis, raw_transactions: Sequence[bytes], first: int, last: int, db: Path
) -> dict[str, Any]:
    builder = QuorumVM.get_transaction_builder()
    by_hash = {}
    for raw in raw_transactions:
        by_hash["0x" + builder.decode(raw).hash.hex()] = raw
    blocks = [_rpc(url, "eth_getBlockByNumber", [hex(n), False]) for n in range(1, last + 1)]
    database = SqliteDB(db)
    service = ChainService(database, genesis)
    cpu = 0.0
    counted = 0
    identical = True
    try:
        for block in blocks:
            # Fresh objects, as a node decodes them: no sender is cached yet.
            transactions = [builder.decode(by_hash[h]) for h in block["transactions"]]
            started = time.process_time()
            committed = service.seal_block(
                transactions,
                timestamp=int(block["timestamp"], 16),
                coinbase=bytes.fromhex(block["miner"][2:]),
            )
            spent = time.process_time() - started
            identical = identical and "0x" + committed.block.hash.hex() == block["hash"]
            if int(block["number"], 16) >= first:
                cpu += spent
                counted += len(transactions)
    finally:
        database.close()
    return {
        "baseline": "quorum_node ChainService.seal_block (QuorumVM) on SQLite in a fresh "
        "process, replaying the network's own blocks of the measured phase",
        "transactions": counted,
        "blocks": last - first + 1,
        "cpu_ms_per_tx": round(1000 * cpu / max(counted, 1), 3),
        "identical_blocks": identical,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--genesis", type=Path, required=True)
    parser.add_argument("--transactions", type=Path, required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--last", type=int, required=True)
    parser.add_argument("--database", type=Path)
    args = parser.parse_args(argv)
    raw_transactions = rlp.decode(args.transactions.read_bytes())
    database = args.database or Path(tempfile.mkdtemp()) / "replay.sqlite"
    result = replay(
        args.url, Genesis.load(args.genesis), raw_transactions, args.first, args.last, database
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
