"""Group-root commitments (issue 10): what they cost, and how fast a participant recovers.

1. **Commitment overhead.** Fresh 3-participant Raft networks (``qnet``, 50 ms blocks),
   alternately with ``commitment_interval: 0`` (off) and ``1`` (a commitment at every
   block), written into each ``node.json`` before the nodes start. Each carries the
   private workload of ``bench.network_bench``: a ``Token`` deployed privately by A for B
   (C is no party), then private ``transfer``s signed offline (``/storeraw`` at the
   sender's manager, v=37/38 signature) before timing and sent with
   ``eth_sendRawPrivateTransaction``; timed from the first send to the last private
   receipt. CPU time of the nodes and of the managers per transaction is recorded in both
   modes. After each loaded phase with commitments on, every node's
   ``quorum_auditStatus`` must report its groups ``agreed`` at the head (no alarm).
2. **Verified recovery.** A fresh network with the default interval; private transfers
   in two party groups that both include the last participant ({A, C} and {B, C}, senders
   at both members of each), then ``qnet recover --dir DIR C --wipe --json`` while this
   process watches the phases from outside: the manager's recovery (``GET /recovery`` on
   C's Q2T port until it says not recovering: envelopes received per second) and the
   node's resync (its head against the others': blocks replayed per second), and the
   total time until ``qnet recover`` answers ``ok``.

Results go to ``bench/results/audit_bench.json`` with the load average and git commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.cpu_breakdown import IDLE_LEAF
from bench.network_bench import (
    BLOCK_PERIOD_MS,
    NODES,
    PRIVATE_SENDERS,
    REPO,
    Party,
    PrivateCall,
    _rpc,
    load_average,
    node_pids,
    paced_private,
    private_keys,
    private_plan,
    profiling,
    qnet,
    send_private,
    settled,
    store_and_sign,
    tm_pids,
    total_cpu,
)
from bench.node_bench import machine_info
from quorum_node.qnet import processes
from quorum_node.qnet.layout import NODE_CONFIG, generate, node_config_path
from quorum_shared.config_files import read_document, write_document

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "audit_bench.json"

#: Issue 10: throughput with a commitment at every block ≥ this share of it without.
GOAL_THROUGHPUT_RATIO = 0.95
AUDIT_TIMEOUT_S = 60.0
#: Private transactions per second offered in the paced phase (blocks of one or two).
PACED_RATE = 20.0
POLL_S = 0.1


def log(message: str) -> None:
    print(message, flush=True)


def git_commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return completed.stdout.strip()


# --- networks ---------------------------------------------------------------------------


def network_up(
    directory: Path, commitment_interval: int | None
) -> tuple[dict[str, Any], list[Party]]:
    """Generate a network, set each node's ``commitment_interval`` (``None``: the
    default), then start it with ``qnet up``."""
    generate(directory, NODES, "raft", BLOCK_PERIOD_MS)
    if commitment_interval is not None:
        for bundle in sorted(p.parent for p in directory.glob(f"*/{NODE_CONFIG}")):
            config_path = node_config_path(bundle)
            config = read_document(config_path)
            config["commitment_interval"] = commitment_interval
            write_document(config_path, config)
    qnet("up", "--dir", str(directory))
    network = json.loads((directory / "network.json").read_text())
    parties = [
        Party(node["name"], node["rpc_url"], node["tm_url"], node["tm_public_key"])
        for node in network["nodes"]
    ]
    return network, parties


def network_down(directory: Path, keep: bool) -> None:
    try:
        qnet("down", "--dir", str(directory))
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def deploy(setup_calls: Sequence[PrivateCall]) -> None:
    """The private deploy first, then the token handouts (untimed)."""
    asyncio.run(store_and_sign(setup_calls[:1]))
    asyncio.run(send_private(setup_calls[:1]))
    asyncio.run(store_and_sign(setup_calls[1:]))
    asyncio.run(send_private(setup_calls[1:]))


async def audit_statuses(urls: Sequence[str], timeout: float = AUDIT_TIMEOUT_S) -> dict[str, Any]:
    """Until every node reports each of its groups ``agreed`` at or above the head it had
    when called (or the deadline): each node's entries, and whether all agreed."""
    deadline = time.perf_counter() + timeout
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        heads = [int(await _rpc(session, url, "eth_blockNumber", []), 16) for url in urls]
        while True:
            entries = [await _rpc(session, url, "quorum_auditStatus", []) for url in urls]
            agreed = all(
                entry["status"] == "agreed"
                and entry["agreedHeight"] is not None
                and entry["agreedHeight"] >= head
                for head, node_entries in zip(heads, entries, strict=True)
                for entry in node_entries
            )
            if agreed or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.25)
    alarms = sum(len(entry["alarms"]) for node_entries in entries for entry in node_entries)
    return {
        "all_agreed_at_head": agreed,
        "alarms": alarms,
        "seconds_to_agree": round(time.perf_counter() - started, 2),
        "heads": heads,
        "nodes": [
            [
                {
                    "groupId": entry["groupId"],
                    "members": len(entry["members"]),
                    "status": entry["status"],
                    "agreedHeight": entry["agreedHeight"],
                    "alarms": [
                        {"kind": alarm["kind"], "height": alarm["height"]}
                        for alarm in entry["alarms"]
                    ],
                }
                for entry in node_entries
            ]
            for node_entries in entries
        ],
    }


# --- 1. commitment overhead -------------------------------------------------------------


class ProcessCpu:
    """CPU time of a network's nodes and managers from now on."""

    def __init__(self, directory: Path) -> None:
        self._nodes, self._managers = node_pids(directory), tm_pids(directory)
        self._nodes_before = total_cpu(self._nodes)
        self._managers_before = total_cpu(self._managers)

    def per_transaction(self, count: int) -> dict[str, float]:
        nodes = total_cpu(self._nodes) - self._nodes_before
        managers = total_cpu(self._managers) - self._managers_before
        return {
            "nodes_cpu_ms_per_tx": round(1000 * nodes / count, 3),
            "managers_cpu_ms_per_tx": round(1000 * managers / count, 3),
        }


def overhead_round(
    commitment_interval: int,
    count: int,
    paced_seconds: float,
    keep: bool,
    profile: Path | None,
    label: str,
) -> dict[str, Any]:
    """One fresh network: the loaded phase (throughput), the audit, then the paced phase
    (small blocks, so a commitment for nearly every transaction: CPU per transaction and
    latency at ``PACED_RATE``)."""
    directory = Path(tempfile.mkdtemp(prefix=f"audit_bench_{label}_"))
    try:
        _, parties = network_up(directory, commitment_interval)
        urls = [party.rpc_url for party in parties]
        paced_count = int(PACED_RATE * paced_seconds)
        setup_calls, transfers, paced_calls, _ = private_plan(
            parties, private_keys(PRIVATE_SENDERS), count, paced_count
        )
        deploy(setup_calls)
        storeraw_s = asyncio.run(store_and_sign(transfers))
        cpu = ProcessCpu(directory)
        first_block = block_number(urls[0]) or 0
        with profiling(profile, directory, label):
            measured = asyncio.run(send_private(transfers))
        measured.update(cpu.per_transaction(count))
        measured["blocks"] = (block_number(urls[0]) or 0) - first_block
        measured["storeraw_and_sign_seconds"] = round(storeraw_s, 3)
        measured["commitment_interval"] = commitment_interval
        asyncio.run(settled(urls))
        if commitment_interval > 0:
            measured["audit"] = asyncio.run(audit_statuses(urls))
        if paced_count:
            cpu = ProcessCpu(directory)
            first_block = block_number(urls[0]) or 0
            with profiling(profile, directory, f"{label}-paced"):
                paced = asyncio.run(paced_private(paced_calls, PACED_RATE))
            paced.update(cpu.per_transaction(paced_count))
            paced["blocks"] = (block_number(urls[0]) or 0) - first_block
            if commitment_interval > 0:
                paced["audit"] = asyncio.run(audit_statuses(urls))
            measured["paced"] = paced
        return measured
    finally:
        network_down(directory, keep)


def overhead(
    pairs: int, count: int, paced_seconds: float, keep: bool, profile: Path | None
) -> dict[str, Any]:
    """``pairs`` × (off, on), alternating, each on a fresh network."""
    rounds: list[dict[str, Any]] = []
    for pair in range(pairs):
        for interval in (0, 1) if pair % 2 == 0 else (1, 0):
            label = f"{'on' if interval else 'off'}-{pair}"
            entry = overhead_round(interval, count, paced_seconds, keep, profile, label)
            entry["label"] = label
            rounds.append(entry)
            audit = entry.get("audit", {})
            audit_text = (
                f"agreed {audit['all_agreed_at_head']}, {audit['alarms']} alarms" if audit else "-"
            )
            log(
                f"commitment_interval {interval} (pair {pair}): {entry['tx_per_s']} private tx/s "
                f"in {entry['blocks']} blocks, nodes {entry['nodes_cpu_ms_per_tx']} ms + managers "
                f"{entry['managers_cpu_ms_per_tx']} ms CPU/tx; audit: {audit_text}"
            )
            if "paced" in entry:
                paced = entry["paced"]
                log(
                    f"  paced at {PACED_RATE:.0f} tx/s: p50 {paced['p50_ms']} ms in "
                    f"{paced['blocks']} blocks, nodes {paced['nodes_cpu_ms_per_tx']} ms + "
                    f"managers {paced['managers_cpu_ms_per_tx']} ms CPU/tx; alarms "
                    f"{paced.get('audit', {}).get('alarms', '-')}"
                )

    def mode(interval: int) -> dict[str, Any]:
        chosen = [entry for entry in rounds if entry["commitment_interval"] == interval]
        return {
            "tx_per_s": [entry["tx_per_s"] for entry in chosen],
            "mean_tx_per_s": round(statistics.fmean(e["tx_per_s"] for e in chosen), 1),
            "nodes_cpu_ms_per_tx": round(
                statistics.fmean(e["nodes_cpu_ms_per_tx"] for e in chosen), 3
            ),
            "managers_cpu_ms_per_tx": round(
                statistics.fmean(e["managers_cpu_ms_per_tx"] for e in chosen), 3
            ),
        }

    def paced_mode(interval: int) -> dict[str, Any]:
        chosen = [
            e["paced"] for e in rounds if e["commitment_interval"] == interval and "paced" in e
        ]
        if not chosen:
            return {}
        return {
            key: round(statistics.fmean(e[key] for e in chosen), 3)
            for key in (
                "p50_ms",
                "p99_ms",
                "nodes_cpu_ms_per_tx",
                "managers_cpu_ms_per_tx",
                "blocks",
            )
        }

    off, on = mode(0), mode(1)
    off["paced"], on["paced"] = paced_mode(0), paced_mode(1)
    ratio = round(on["mean_tx_per_s"] / off["mean_tx_per_s"], 3)
    cpu_ratio = round(
        (on["nodes_cpu_ms_per_tx"] + on["managers_cpu_ms_per_tx"])
        / (off["nodes_cpu_ms_per_tx"] + off["managers_cpu_ms_per_tx"]),
        3,
    )
    paced_cpu_ratio = None
    if off["paced"] and on["paced"]:
        paced_cpu_ratio = round(
            (on["paced"]["nodes_cpu_ms_per_tx"] + on["paced"]["managers_cpu_ms_per_tx"])
            / (off["paced"]["nodes_cpu_ms_per_tx"] + off["paced"]["managers_cpu_ms_per_tx"]),
            3,
        )
    audits = [entry["audit"] for entry in rounds if "audit" in entry]
    paced_audits = [e["paced"]["audit"] for e in rounds if "audit" in e.get("paced", {})]
    profiled = {}
    if profile is not None:
        for entry in rounds:
            label = entry["label"]
            for phase in (label, f"{label}-paced"):
                profiled[phase] = commitment_share(profile, phase)
                log(f"  profile {phase}: share of work in commitments {profiled[phase]['share']}")
    return {
        "profile": profiled,
        "rounds": rounds,
        "off": off,
        "every_block": on,
        "throughput_ratio_every_block_over_off": ratio,
        "cpu_per_tx_ratio_every_block_over_off": cpu_ratio,
        "paced_cpu_per_tx_ratio_every_block_over_off": paced_cpu_ratio,
        "audit_all_agreed_after_load": all(audit["all_agreed_at_head"] for audit in audits),
        # An honest network must raise no alarm at all (statuses can be "agreed" again
        # after a lagging alarm was raised, so the alarms are counted too).
        "alarms_after_load": sum(audit["alarms"] for audit in audits),
        "alarms_after_paced": sum(audit["alarms"] for audit in paced_audits),
        "goal": {
            "value": ratio,
            "target": f">= {GOAL_THROUGHPUT_RATIO}",
            "met": ratio >= GOAL_THROUGHPUT_RATIO,
        },
    }


#: Stack frames that belong to the commitments, in a node or a manager (the HTTP
#: handlers, the service, the wire messages, the store's rows, signing and verifying).
COMMITMENT_FRAMES = re.compile(
    r"audit_service\.py|quorum_node/privacy/audit\.py|audit_store\.py|"
    r"tx_manager/commitments\.py|commitment_messages\.py|quorum_shared/commitments\.py|"
    r"_insert_commitment|page_commitments|save_commitments|push_commitments|"
    r"list_commitments|\(commit \(tx_manager/api/q2t\.py"
)


def commitment_share(folder: Path, phase: str) -> dict[str, Any]:
    """Of the working samples (``bench.cpu_breakdown`` leaves out waiting threads) of
    every process in a profiled phase, the share whose stack is in commitment code:
    nodes and managers apart, and the commitment samples by innermost commitment frame."""
    working: Counter[str] = Counter()
    in_commitments: Counter[str] = Counter()
    where: Counter[str] = Counter()
    for path in sorted(folder.glob(f"{phase}-*.txt")):
        process = path.stem.rsplit("-", 1)[-1]
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit() or IDLE_LEAF.match(stack.rsplit(";", 1)[-1]):
                continue
            working[process] += int(count)
            frames = [frame for frame in stack.split(";") if COMMITMENT_FRAMES.search(frame)]
            if frames:
                in_commitments[process] += int(count)
                where[f"{process}: {frames[-1].split(' (')[0]}"] += int(count)
    return {
        "phase": phase,
        "share": {
            process: round(in_commitments[process] / working[process], 4)
            for process in sorted(working)
            if working[process]
        },
        "top_frames": dict(where.most_common(12)),
    }


# --- 2. verified recovery ---------------------------------------------------------------


def manager_recovery(tm_url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(tm_url + "/recovery", timeout=2) as response:
            return dict(json.loads(response.read()))
    except (OSError, urllib.error.URLError, ValueError):
        return None


def block_number(url: str) -> int | None:
    try:
        return int(processes.rpc_call(url, "eth_blockNumber", timeout=2), 16)
    except (OSError, RuntimeError, ValueError):
        return None


def watch_recover(directory: Path, target: Party, head: int) -> dict[str, Any]:
    """Run ``qnet recover --wipe --json`` on ``target`` and time its phases from outside."""
    command = [
        sys.executable,
        "-m",
        "quorum_node.qnet.cli",
        "recover",
        "--dir",
        str(directory),
        target.name,
        "--wipe",
        "--json",
    ]
    old_pids = {
        kind: processes.running_pid(directory, target.name, kind) for kind in ("node", "tm")
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    marks: dict[str, float] = {}
    received = None
    highest_received = 0
    while process.poll() is None:
        now = time.perf_counter() - started
        if "restarted" not in marks:
            # The old processes answer until qnet recover has stopped them.
            current = {
                kind: processes.running_pid(directory, target.name, kind) for kind in old_pids
            }
            if all(current[kind] not in (None, old_pids[kind]) for kind in old_pids):
                marks["restarted"] = now
            else:
                time.sleep(POLL_S)
                continue
        if "manager_recovered" not in marks:
            state = manager_recovery(target.tm_url)
            if state is not None:
                marks.setdefault("manager_answers", now)
                highest_received = max(highest_received, int(state.get("received", 0)))
                if not state.get("recovering", True):
                    marks["manager_recovered"] = now
                    received = state.get("received")
        if "node_synced" not in marks:
            number = block_number(target.rpc_url)
            if number is not None:
                marks.setdefault("node_answers", now)
                if number >= head:
                    marks["node_synced"] = now
        time.sleep(POLL_S)
    total = time.perf_counter() - started
    stdout, stderr = process.communicate()
    report = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    if process.returncode != 0 or report is None:
        log(f"qnet recover failed ({process.returncode}): {stdout[-2000:]} {stderr[-2000:]}")
    manager_s = marks.get("manager_recovered", total) - marks.get("manager_answers", 0.0)
    resync_from = marks.get("manager_recovered", 0.0)
    resync_s = marks.get("node_synced", total) - resync_from
    envelopes = received if received is not None else highest_received
    return {
        "command": " ".join(["qnet", *command[3:]]),
        "exit_status": process.returncode,
        "report": report,
        "ok": bool(report and report.get("ok")),
        "marks_s": {name: round(value, 2) for name, value in marks.items()},
        "envelopes_received": envelopes,
        "manager_recovery_seconds": round(manager_s, 2),
        "manager_payloads_per_s": round(envelopes / manager_s, 1) if manager_s > 0 else None,
        # From the new processes' start (the manager's own start-up included).
        "manager_recovery_seconds_from_start": round(
            marks.get("manager_recovered", total) - marks.get("restarted", 0.0), 2
        ),
        "head_blocks": head,
        "node_resync_seconds_after_manager": round(resync_s, 2),
        "node_blocks_per_s": round(head / resync_s, 1) if resync_s > 0 else None,
        "node_synced_after_s": round(marks.get("node_synced", total), 2),
        "total_seconds_to_ok": round(total, 2),
    }


def recovery(count: int, keep: bool) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="audit_bench_recovery_"))
    try:
        _, parties = network_up(directory, None)
        party_a, party_b, party_c = parties
        urls = [party.rpc_url for party in parties]
        half = PRIVATE_SENDERS // 2
        plans = [
            private_plan([party_a, party_c], private_keys(half), count // 2, 0),
            private_plan([party_b, party_c], private_keys(half, first=half), count - count // 2, 0),
        ]
        for setup_calls, _, _, _ in plans:
            deploy(setup_calls)
        transfers = [call for _, plan_transfers, _, _ in plans for call in plan_transfers]
        asyncio.run(store_and_sign(transfers))
        sent = asyncio.run(send_private(transfers))
        log(f"recovery workload: {count} private transfers at {sent['tx_per_s']} tx/s")
        asyncio.run(settled(urls))
        before = asyncio.run(audit_statuses(urls))
        head = block_number(party_a.rpc_url) or 0
        log(f"qnet recover --dir DIR {party_c.name} --wipe --json (head {head})")
        result = watch_recover(directory, party_c, head)
        result["private_transactions"] = count + sum(len(plan[0]) for plan in plans)
        # Blocks under this load hold hundreds of transactions: the replay rate in
        # transactions says more than the one in blocks.
        resync_s = result["node_resync_seconds_after_manager"]
        result["node_private_tx_per_s"] = (
            round(result["private_transactions"] / resync_s, 1) if resync_s > 0 else None
        )
        result["send"] = sent
        result["audit_before"] = before
        log(
            f"recovery: manager {result['envelopes_received']} envelopes in "
            f"{result['manager_recovery_seconds']} s ({result['manager_payloads_per_s']}/s), "
            f"node {head} blocks in {result['node_resync_seconds_after_manager']} s after it "
            f"({result['node_blocks_per_s']}/s, {result['node_private_tx_per_s']} private tx/s), "
            f"ok after {result['total_seconds_to_ok']} s: "
            f"{result['report']}"
        )
        return result
    finally:
        network_down(directory, keep)


# --- the run ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Entry point for ``python -m bench.audit_bench`` and ``bench.run_all``."""
    parser = argparse.ArgumentParser(description="group-root commitments: cost and recovery")
    parser.add_argument("--quick", action="store_true", help="one pair of 1,000, recovery of 500")
    parser.add_argument("--pairs", type=int, default=2, help="(off, on) network pairs")
    parser.add_argument("--private-n", type=int, default=2000, help="private transfers per run")
    parser.add_argument(
        "--paced-s",
        type=float,
        default=5.0,
        help=f"seconds of the paced phase at {PACED_RATE:.0f} tx/s",
    )
    parser.add_argument("--recovery-transactions", type=int, default=2000)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the network folders")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample every node and manager with py-spy during the timed phases",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.private_n, args.recovery_transactions = 1, 1000, 500
        args.paced_s = 3.0
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "audit_bench",
        "git_commit": git_commit(),
        "machine": {**machine_info(), "loadavg_start": load_average()},
        "settings": {
            "nodes": NODES,
            "consensus": "raft",
            "block_period_ms": BLOCK_PERIOD_MS,
            "pairs": args.pairs,
            "paced_seconds": args.paced_s,
            "paced_tx_per_s": PACED_RATE,
            "private_transactions_per_run": args.private_n,
            "recovery_transactions": args.recovery_transactions,
            "workload": "bench.network_bench's private Token transfers (A for B, C no party), "
            "signed offline after /storeraw, sent with eth_sendRawPrivateTransaction",
        },
    }
    if not args.skip_overhead:
        result["overhead"] = overhead(
            args.pairs, args.private_n, args.paced_s, args.keep, args.profile
        )
        result["machine"]["loadavg_after_overhead"] = load_average()
        entry = result["overhead"]
        log(
            f"with a commitment every block / without: throughput "
            f"{entry['throughput_ratio_every_block_over_off']} (goal >= "
            f"{GOAL_THROUGHPUT_RATIO}), CPU per tx "
            f"{entry['cpu_per_tx_ratio_every_block_over_off']}; "
            f"paced, CPU per tx {entry['paced_cpu_per_tx_ratio_every_block_over_off']}"
        )
    if not args.skip_recovery:
        result["recovery"] = recovery(args.recovery_transactions, args.keep)
    result["machine"]["loadavg_end"] = load_average()
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.output} in {result['seconds']} s")
    failed = []
    if "overhead" in result and not result["overhead"]["audit_all_agreed_after_load"]:
        failed.append("an audit did not agree after the loaded phase")
    if "overhead" in result and (
        result["overhead"]["alarms_after_load"] or result["overhead"]["alarms_after_paced"]
    ):
        failed.append("an honest network raised audit alarms")
    if "recovery" in result and result["recovery"]["audit_before"]["alarms"]:
        failed.append("an honest network raised audit alarms before the recovery")
    if "recovery" in result and not result["recovery"]["ok"]:
        failed.append("qnet recover did not report ok")
    if failed:
        raise SystemExit("; ".join(failed))
    return result


if __name__ == "__main__":
    main()
