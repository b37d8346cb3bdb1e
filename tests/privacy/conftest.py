"""Fixtures for the privacy tests: whole ``qnet`` networks with a transaction manager per
participant, plus what the tests share to talk to them (web3.py with ``w3.quorum``, raw
JSON-RPC over urllib, contract artifacts, the plaintext-marker search).

Every network is module-scoped and always ``qnet down`` in its teardown, also when
``up`` or a test fails. Tests of one module share the network and leave every process
running when they finish.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from quorum_node import contracts
from quorum_node.web3_ext import attach_quorum
from tests.network.harness import QnetNetwork, RpcFailure


@cache
def artifact(name: str) -> dict[str, Any]:
    return contracts.artifact(name)


class PrivateNet:
    """A running network and the ways the tests talk to it."""

    def __init__(self, network: QnetNetwork) -> None:
        self.qnet = network
        self._w3: dict[str, Web3] = {}

    # who is who
    @property
    def names(self) -> list[str]:
        return self.qnet.names

    def key(self, name: str) -> str:
        """``name``'s manager public key (what ``privateFor`` takes)."""
        return str(self.qnet.node(name)["tm_public_key"])

    def tm_url(self, name: str) -> str:
        return str(self.qnet.node(name)["tm_url"])

    def address(self, name: str) -> str:
        return Web3.to_checksum_address(self.qnet.account(name)["address"])

    def private_key(self, name: str) -> str:
        return self.qnet.account(name)["private_key"]

    def directory(self, name: str) -> Path:
        return self.qnet.directory / name

    # web3.py
    def w3(self, name: str) -> Web3:
        if name not in self._w3:
            provider = Web3.HTTPProvider(self.qnet.url(name), request_kwargs={"timeout": 30})
            self._w3[name] = attach_quorum(Web3(provider))
        return self._w3[name]

    def contract(self, name: str, artifact_name: str, address: str | None = None) -> Any:
        build = artifact(artifact_name)
        if address is None:
            return self.w3(name).eth.contract(abi=build["abi"], bytecode=build["bytecode"])
        return self.w3(name).eth.contract(address=address, abi=build["abi"])

    # raw JSON-RPC
    def call(self, name: str, method: str, params: list[Any] | None = None) -> Any:
        return self.qnet.call(name, method, params)

    def error(self, name: str, method: str, params: list[Any]) -> dict[str, Any]:
        """The JSON-RPC error ``method`` answers with (fails if it succeeds)."""
        try:
            result = self.qnet.call(name, method, params)
        except RpcFailure as failure:
            return failure.error
        raise AssertionError(f"{method} succeeded with {result!r}; an error was expected")

    def receipt(self, name: str, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.qnet.wait_receipt(name, tx_hash, timeout)

    def nonce(self, name: str, account_of: str | None = None) -> int:
        return self.qnet.nonce(name, self.address(account_of or name))

    def wait_same_head(self, names: list[str] | None = None, timeout: float = 30.0) -> str:
        return self.qnet.wait_same_head(names, timeout)

    def txpool_empty(self, name: str) -> bool:
        status = self.call(name, "txpool_status")
        return int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0


def files_containing(directory: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``directory`` holding one of ``needles``, as ``path: needle``."""
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        found += [f"{path}: {needle!r}" for needle in needles if needle in content]
    return found


@contextmanager
def private_network(directory: Path, nodes: int) -> Iterator[PrivateNet]:
    """``qnet up`` a network with a transaction manager per participant (qnet's default),
    and ``qnet down`` it whatever happens, even when ``up`` fails half way."""
    network = QnetNetwork(directory)
    try:
        network.qnet("up", "--dir", str(directory), "--nodes", str(nodes))
        network.description = json.loads((directory / "network.json").read_text())
        yield PrivateNet(network)
    finally:
        network.down()


@pytest.fixture(scope="module")
def net3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    """A 3-node network, node1..node3, each with its transaction manager."""
    with private_network(tmp_path_factory.mktemp("private3"), 3) as network:
        yield network


@pytest.fixture(scope="module")
def net4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    """A 4-node network, node1..node4, each with its transaction manager."""
    with private_network(tmp_path_factory.mktemp("private4"), 4) as network:
        yield network


@pytest.fixture(scope="module", params=[3, 4], ids=["3-nodes", "4-nodes"])
def net(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateNet]:
    """A 3-node and then a 4-node network; every test using it runs on both."""
    size = int(request.param)
    with private_network(tmp_path_factory.mktemp(f"private{size}"), size) as network:
        yield network
