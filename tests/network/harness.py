"""Driving a whole ``qnet`` network from tests: the real launcher, real processes on
OS-chosen ports, JSON-RPC over HTTP and signed requests to the node-to-node port.

Everything waits on a condition with a deadline (``wait_until``); nothing sleeps for a
fixed time to "let things settle".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from quorum_node.p2p.identity import NodeKey
from quorum_node.qnet.layout import node_config_path
from quorum_shared.config_files import read_document
from tests.support.node_process import rpc
from tests.support.waiting import wait_until

QNET = [sys.executable, "-m", "quorum_node.qnet.cli"]
BURN_ADDRESS = "0x" + "11" * 20


class RpcFailure(Exception):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error


@dataclass(frozen=True)
class P2PReply:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class QnetNetwork:
    """A network that ``qnet up`` started in ``directory``."""

    directory: Path
    description: dict[str, Any] = field(default_factory=dict)

    # --- the launcher ----------------------------------------------------------------

    def qnet(self, *args: str, timeout: float = 150.0) -> str:
        completed = subprocess.run(
            [*QNET, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"qnet {' '.join(args)} exited with {completed.returncode}:\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed.stdout

    def up(self, nodes: int, *, tx_managers: bool = False) -> None:
        args = ["up", "--dir", str(self.directory), "--nodes", str(nodes)]
        self.qnet(*args, *([] if tx_managers else ["--no-tm"]))
        self.description = json.loads((self.directory / "network.json").read_text())

    def down(self) -> None:
        """``qnet down``; if the launcher itself fails, SIGKILL the processes its pid
        files still name (only those running from this network's directory), so no
        process outlives the fixture that started it."""
        if not (self.directory / "layout.json").exists():
            return
        try:
            self.qnet("down", "--dir", str(self.directory), timeout=90)
        except BaseException:
            self._kill_leftovers()
            raise

    def _kill_leftovers(self) -> None:
        for pid_file in self.directory.glob("*/*.pid"):
            try:
                pid = int(pid_file.read_text().strip())
                command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
                if str(self.directory).encode() in command_line:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def status_output(self) -> str:
        return self.qnet("status", "--dir", str(self.directory), timeout=60)

    def stop(self, name: str, *, kill: bool = False, only: str | None = None) -> None:
        args = ["stop", "--dir", str(self.directory), name]
        if kill:
            args.append("--kill")
        if only is not None:
            args += ["--only", only]
        self.qnet(*args, timeout=60)

    def start(self, name: str, *, only: str | None = None) -> None:
        args = ["start", "--dir", str(self.directory), name]
        if only is not None:
            args += ["--only", only]
        self.qnet(*args)

    # --- who is who ----------------------------------------------------------------

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.description["nodes"])

    @property
    def names(self) -> list[str]:
        return [node["name"] for node in self.nodes]

    @property
    def chain_id(self) -> int:
        return int(self.description["chain_id"])

    def node(self, name: str) -> dict[str, Any]:
        return next(node for node in self.nodes if node["name"] == name)

    def url(self, name: str) -> str:
        return str(self.node(name)["rpc_url"])

    def account(self, name: str) -> dict[str, str]:
        return dict(self.node(name)["accounts"][0])

    def node_config(self, name: str) -> dict[str, Any]:
        return read_document(node_config_path(self.directory / name))

    def p2p_url(self, name: str) -> str:
        config = self.node_config(name)
        return f"http://{config['p2p_host']}:{config['p2p_port']}"

    def node_key(self, name: str) -> NodeKey:
        return NodeKey(bytes.fromhex((self.directory / name / "data" / "nodekey").read_text()))

    def node_id(self, name: str) -> str:
        return str(self.node(name)["enode"]).split("//")[1].split("@")[0]

    def name_of_node_id(self, node_id: str) -> str:
        return next(name for name in self.names if self.node_id(name) == node_id)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.directory / name / "node.log"
        return path.read_text()[-chars:] if path.exists() else "(no log)"

    # --- JSON-RPC --------------------------------------------------------------------

    def call(self, name: str, method: str, params: list[Any] | None = None) -> Any:
        reply = rpc(self.url(name), method, params, timeout=15)
        if "error" in reply:
            raise RpcFailure(method, reply["error"])
        return reply["result"]

    def try_call(self, name: str, method: str, params: list[Any] | None = None) -> Any:
        """``call``, or ``None`` if the node does not answer or answers with an error."""
        try:
            return self.call(name, method, params)
        except (OSError, RpcFailure):
            return None

    def head(self, name: str) -> dict[str, Any]:
        return dict(self.call(name, "eth_getBlockByNumber", ["latest", False]))

    def head_number(self, name: str) -> int:
        return int(self.call(name, "eth_blockNumber"), 16)

    def leader(self, names: list[str] | None = None, timeout: float = 30.0) -> str:
        """The one node among ``names`` that calls itself the minter, once all of them
        agree on who leads."""
        names = names or self.names

        def agreed() -> str | None:
            leaders = {self.try_call(name, "raft_leader") for name in names}
            if len(leaders) != 1 or None in leaders:
                return None
            (leader_id,) = leaders
            minters = [n for n in names if self.try_call(n, "raft_role") == "minter"]
            if len(minters) != 1 or self.node_id(minters[0]) != leader_id:
                return None
            return minters[0]

        return str(wait_until(agreed, timeout, f"one agreed Raft leader among {names}"))

    def wait_same_head(self, names: list[str] | None = None, timeout: float = 30.0) -> str:
        """Wait until every node in ``names`` reports the same head hash; return it."""
        names = names or self.names

        def same() -> str | None:
            hashes = set()
            for name in names:
                block = self.try_call(name, "eth_getBlockByNumber", ["latest", False])
                if block is None:
                    return None
                hashes.add(block["hash"])
            return hashes.pop() if len(hashes) == 1 else None

        try:
            return str(wait_until(same, timeout, f"the same head on {names}"))
        except AssertionError:
            heads = {n: self.try_call(n, "eth_blockNumber") for n in names}
            logs = "\n".join(f"--- {n}:\n{self.log_tail(n)}" for n in names)
            raise AssertionError(f"heads never met: {heads}\n{logs}") from None

    def wait_receipt(self, name: str, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
        return dict(
            wait_until(
                lambda: self.try_call(name, "eth_getTransactionReceipt", [tx_hash]),
                timeout,
                f"a receipt for {tx_hash} on {name}",
            )
        )

    # --- transactions signed here ----------------------------------------------------

    def sign_transfer(
        self, private_key: str, nonce: int, to: str = BURN_ADDRESS, value: int = 1
    ) -> tuple[str, str]:
        """(raw hex, hash) of a plain transfer signed locally with eth-account."""
        signed = Account.sign_transaction(
            {
                "to": to,
                "value": value,
                "gas": 21000,
                "gasPrice": 0,
                "nonce": nonce,
                "chainId": self.chain_id,
            },
            private_key,
        )
        return "0x" + signed.raw_transaction.hex(), "0x" + signed.hash.hex()

    def everyone_mines(self) -> None:
        """A transfer sent to each node, from its own account, is mined and seen by all
        of them, and the heads meet: the network is still whole after a test's attack."""
        hashes = []
        for name in self.names:
            account = self.account(name)
            raw, tx_hash = self.sign_transfer(
                account["private_key"], self.nonce(name, account["address"])
            )
            assert self.call(name, "eth_sendRawTransaction", [raw]) == tx_hash
            hashes.append(tx_hash)
        for tx_hash in hashes:
            for name in self.names:
                self.wait_receipt(name, tx_hash)
        self.wait_same_head()

    def nonce(self, name: str, address: str, block: str = "pending") -> int:
        return int(self.call(name, "eth_getTransactionCount", [address, block]), 16)

    # --- the node-to-node port -------------------------------------------------------

    def p2p_request(
        self,
        name: str,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        signer: NodeKey | None = None,
    ) -> P2PReply:
        """One request to ``name``'s P2P port, signed by ``signer`` unless ``headers``
        are given as they are."""
        if headers is None:
            headers = signer.sign_request(method, path, body) if signer is not None else {}
        request = urllib.request.Request(
            self.p2p_url(name) + path,
            data=body if method != "GET" else None,
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return P2PReply(response.status, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return P2PReply(error.code, error.read())


@contextmanager
def running_network(
    directory: Path, nodes: int, *, tx_managers: bool = False
) -> Iterator[QnetNetwork]:
    """``qnet up`` a network, and ``qnet down`` it whatever happens, even when ``up``
    itself fails half way. Public-only (no transaction managers) unless asked: these
    tests are about ordering and the node channel, and a 2-core machine runs them."""
    network = QnetNetwork(directory)
    try:
        network.up(nodes, tx_managers=tx_managers)
        yield network
    finally:
        network.down()
