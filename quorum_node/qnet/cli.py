"""``qnet``: a whole local network in one command.

    qnet init   --dir DIR --names A,B,C [--hosts HOST_A,HOST_B,HOST_C] [--no-tls]
    qnet up     --dir DIR --nodes N [--consensus raft|solo] [--block-period MS] [--tls]
    qnet status --dir DIR
    qnet stop   --dir DIR NAME [--kill] [--only node|tm]
    qnet start  --dir DIR NAME [--only node|tm]
    qnet down   --dir DIR          (also stops a detached ``qnet explorer``)

The installed ``qnet`` command also offers ``qnet demo`` (``quorum_node.qnet_command``):
the demo uses this module and the disclosure verifier, so it is added from above both.

``init`` writes one bundle per participant (``DIR/<name>/``) to copy to that
participant's host, with mutual TLS under a network CA whose key stays in ``DIR/ca/``.
``up`` generates the same bundles on one host (without TLS unless ``--tls``) on first use,
starts every process in the background, waits until they answer (and, with Raft, until
a leader is elected) and writes ``DIR/network.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from quorum_node.errors import ConfigError
from quorum_node.qnet import audit as network_audit
from quorum_node.qnet import processes
from quorum_node.qnet.layout import (
    NODE_CONFIG,
    TM_CONFIG,
    NetworkLayout,
    ParticipantLayout,
    generate,
    network_description,
)
from quorum_shared.secret_files import write_secret
from quorum_shared.version import VERSION

READY_TIMEOUT = 90.0

#: Subcommands a higher layer adds to ``qnet`` (``qnet demo``): given the subparsers,
#: each ``add_parser`` sets a ``handler`` taking the parsed arguments and returning the
#: exit status, as the commands here do.
MoreCommands = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _kinds(layout: NetworkLayout, only: str | None) -> list[str]:
    kinds = ["tm", "node"] if layout.with_tx_managers else ["node"]
    if only is not None:
        if only == "tm" and not layout.with_tx_managers:
            raise ConfigError("this network has no transaction managers")
        kinds = [only]
    return kinds


def _start_participant(
    directory: Path, layout: NetworkLayout, participant: ParticipantLayout, only: str | None = None
) -> None:
    for kind in _kinds(layout, only):
        processes.start_process(directory, participant, kind)


def _wait_ready(
    directory: Path, layout: NetworkLayout, participants: list[ParticipantLayout], kinds: list[str]
) -> None:
    logs = [processes.log_path(directory, p.name, k) for p in participants for k in kinds]
    for participant in participants:
        if "tm" in kinds:
            processes.wait_for(
                functools.partial(processes.tm_answers, layout, participant),
                READY_TIMEOUT,
                f"{participant.name}'s transaction manager",
                logs,
            )
        if "node" in kinds:
            processes.wait_for(
                functools.partial(processes.node_answers, layout, participant),
                READY_TIMEOUT,
                f"{participant.name}'s node",
                logs,
            )


def _write_network(directory: Path, layout: NetworkLayout) -> None:
    """``network.json`` lists the development accounts' private keys: written as a secret."""
    description = json.dumps(network_description(layout), indent=2) + "\n"
    write_secret(directory / "network.json", description)


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",")] if text else None


def init(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if (directory / "layout.json").exists():
        raise ConfigError(f"{directory} holds a network already (layout.json)")
    names = _names(args.names) or []
    layout = generate(
        directory,
        len(names),
        args.consensus,
        args.block_period,
        names=names,
        with_tx_managers=True,
        hosts=_names(args.hosts),
        tls=not args.no_tls,
    )
    print(f"{len(names)} bundles in {directory}; copy each folder to its participant's host")
    for participant in layout.participants:
        print(
            f"  {participant.name} ({layout.host_of(participant)}): {directory / participant.name}"
        )
    print(f"on each host, in its bundle (managers first): tx-manager run --config {TM_CONFIG}")
    print(f"                                              quorum-node run --config {NODE_CONFIG}")
    if layout.tls:
        print(f"the CA's private key is {directory / 'ca' / 'ca.key'}: keep it off those hosts")
    return 0


def up(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if (directory / "layout.json").exists():
        layout = NetworkLayout.load(directory)
    else:
        layout = generate(
            directory,
            args.nodes,
            args.consensus,
            args.block_period,
            names=_names(args.names),
            with_tx_managers=not args.no_tm,
            tls=args.tls,
        )
    participants = list(layout.participants)
    for participant in participants:
        _start_participant(directory, layout, participant)
    _wait_ready(directory, layout, participants, _kinds(layout, None))
    if layout.consensus == "raft":
        logs = [processes.log_path(directory, p.name, "node") for p in participants]
        processes.wait_for(
            lambda: processes.leader_elected(layout, participants[0]),
            READY_TIMEOUT,
            "a Raft leader",
            logs,
        )
    _write_network(directory, layout)
    print(f"network of {len(participants)} up; described in {directory / 'network.json'}")
    for participant in participants:
        print(f"  {participant.name}: http://{layout.host}:{participant.http_port}")
    return 0


def status(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    layout = NetworkLayout.load(directory)
    print(f"{'name':<10} {'node':<8} {'tm':<8} {'role':<9} {'head':>6}  {'hash':<18} peers")
    for participant in layout.participants:
        url = f"http://{layout.host}:{participant.http_port}"
        node_up = processes.running_pid(directory, participant.name, "node") is not None
        tm_state = "-"
        if layout.with_tx_managers:
            tm_state = "up" if processes.running_pid(directory, participant.name, "tm") else "down"
        role, head, head_hash, peers = "-", "-", "-", "-"
        if node_up:
            try:
                block = processes.rpc_call(url, "eth_getBlockByNumber", ["latest", False])
                head, head_hash = str(int(block["number"], 16)), block["hash"][:18]
                peers = str(int(processes.rpc_call(url, "net_peerCount"), 16))
                role = (
                    processes.rpc_call(url, "raft_role") if layout.consensus == "raft" else "solo"
                )
            except (OSError, RuntimeError, ValueError, KeyError):
                role = "starting"
        print(
            f"{participant.name:<10} {'up' if node_up else 'down':<8} {tm_state:<8} "
            f"{role:<9} {head:>6}  {head_hash:<18} {peers}"
        )
    return 0


def stop(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    layout = NetworkLayout.load(directory)
    participant = layout.participant(args.name)
    for kind in reversed(_kinds(layout, args.only)):
        stopped = processes.stop_process(directory, participant.name, kind, kill=args.kill)
        print(
            f"{participant.name} {kind}: {'killed' if args.kill else 'stopped'}"
            if stopped
            else f"{participant.name} {kind}: was not running"
        )
    return 0


def start(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    layout = NetworkLayout.load(directory)
    participant = layout.participant(args.name)
    kinds = _kinds(layout, args.only)
    _start_participant(directory, layout, participant, args.only)
    _wait_ready(directory, layout, [participant], kinds)
    print(f"{participant.name}: started {', '.join(kinds)}")
    return 0


def down(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    layout = NetworkLayout.load(directory)
    # First `qnet explorer --detach`'s (DIR/explorer/explorer.pid): a client of the nodes
    processes.stop_process(directory, "explorer", "explorer")
    for participant in layout.participants:
        for kind in ("node", "tm"):
            processes.stop_process(directory, participant.name, kind)
    print("network stopped")
    return 0


def build_parser(more_commands: MoreCommands | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qnet", description="Run a local quorum-py network.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    p_up = commands.add_parser("up", help="generate (first time) and start a network")
    p_up.add_argument("--dir", type=Path, required=True)
    p_up.add_argument("--nodes", type=int, default=3)
    p_up.add_argument("--consensus", choices=["raft", "solo"], default="raft")
    p_up.add_argument("--block-period", type=int, default=50, metavar="MS")
    p_up.add_argument("--names", help="comma-separated participant names (default node1..N)")
    p_up.add_argument("--no-tm", action="store_true", help="no transaction managers (public only)")
    p_up.add_argument(
        "--tls", action="store_true", help="mutual TLS on node p2p and manager P2P (as init)"
    )
    p_up.set_defaults(handler=up)
    p_init = commands.add_parser(
        "init", help="write one bundle per participant, to run each on its own host"
    )
    p_init.add_argument("--dir", type=Path, required=True)
    p_init.add_argument("--names", required=True, help="comma-separated participant names")
    p_init.add_argument(
        "--hosts",
        help="comma-separated address of each participant's p2p, Raft and manager P2P "
        "ports, in --names order (default 127.0.0.1 for all)",
    )
    p_init.add_argument("--consensus", choices=["raft", "solo"], default="raft")
    p_init.add_argument("--block-period", type=int, default=50, metavar="MS")
    p_init.add_argument(
        "--no-tls", action="store_true", help="plain HTTP between hosts (not for real networks)"
    )
    p_init.set_defaults(handler=init)
    p_status = commands.add_parser("status", help="role, head and peers of each node")
    p_status.add_argument("--dir", type=Path, required=True)
    p_status.set_defaults(handler=status)
    for name, handler, text in (
        ("stop", stop, "stop one participant"),
        ("start", start, "start one participant"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dir", type=Path, required=True)
        sub.add_argument("name")
        sub.add_argument("--only", choices=["node", "tm"])
        if name == "stop":
            sub.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
        sub.set_defaults(handler=handler)
    p_audit = commands.add_parser(
        "audit", help="each party group's members: signed heights, roots and alarms"
    )
    p_audit.add_argument("--dir", type=Path, required=True)
    p_audit.set_defaults(handler=lambda args: network_audit.audit(args.dir))
    p_recover = commands.add_parser(
        "recover",
        help="recover a participant's payloads and private state from its peers, then check "
        "each group's root against the other members' signed roots",
    )
    p_recover.add_argument("--dir", type=Path, required=True)
    p_recover.add_argument("name")
    p_recover.add_argument(
        "--wipe",
        action="store_true",
        help="first delete its chain and manager store (its keys are kept)",
    )
    p_recover.add_argument("--json", action="store_true", help="print the result as JSON")
    p_recover.set_defaults(
        handler=lambda args: network_audit.recover(args.dir, args.name, args.wipe, args.json)
    )
    p_down = commands.add_parser("down", help="stop every process of the network")
    p_down.add_argument("--dir", type=Path, required=True)
    p_down.set_defaults(handler=down)
    if more_commands is not None:
        more_commands(commands)
    return parser


def main(argv: list[str] | None = None, more_commands: MoreCommands | None = None) -> int:
    args = build_parser(more_commands).parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"qnet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
