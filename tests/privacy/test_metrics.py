"""A qnet network's /metrics and JSON logs: every node and manager has a metrics port on
loopback, listed in network.json, and after a few transactions the figures move."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi import encode
from prometheus_client.parser import text_string_to_metric_families

from tests.privacy.conftest import PrivateNet, artifact, private_network
from tests.support.node_process import NodeProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def net2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with private_network(tmp_path_factory.mktemp("metrics"), 2) as network:
        yield network


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def total(
    metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        value
        for sample_labels, value in metrics.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def test_nodes_and_managers_serve_metrics_after_transactions(net2: PrivateNet) -> None:
    node1, node2 = net2.names
    description = {node["name"]: node for node in net2.qnet.nodes}
    for entry in description.values():
        for field in ("metrics_url", "tm_metrics_url"):
            assert entry[field].startswith("http://127.0.0.1:"), entry[field]
    sender = net2.address(node1)
    public = net2.call(
        node1, "eth_sendTransaction", [{"from": sender, "to": sender, "value": "0x1"}]
    )
    private = net2.call(
        node1,
        "eth_sendTransaction",
        [{"from": sender, "data": storage_deployment(), "privateFor": [net2.key(node2)]}],
    )
    for tx_hash in (public, private):
        assert net2.receipt(node1, tx_hash)["status"] == "0x1"
    net2.wait_same_head()

    node_metrics = scrape(description[node1]["metrics_url"])
    assert total(node_metrics, "quorum_head_block") > 0
    assert total(node_metrics, "quorum_transactions_total") >= 2
    assert total(node_metrics, "quorum_private_transactions_total") >= 1
    assert total(node_metrics, "quorum_manager_request_seconds_count", operation="POST /send") >= 1
    assert total(node_metrics, "quorum_manager_request_seconds_sum") > 0
    assert total(node_metrics, "quorum_txpool_pending") == 0
    assert total(node_metrics, "quorum_peers") == 1
    assert total(node_metrics, "quorum_raft_term") >= 1
    roles = {labels["role"]: value for labels, value in node_metrics["quorum_raft_role"]}
    assert sorted(roles.values()) == [0, 1]
    alarms = {labels["kind"]: value for labels, value in node_metrics["quorum_audit_alarms_total"]}
    assert alarms == {"mismatch": 0, "equivocation": 0, "lagging": 0}
    leader = net2.qnet.leader()
    leader_metrics = scrape(description[leader]["metrics_url"])
    assert total(leader_metrics, "quorum_raft_commit_seconds_count") >= 1

    other = scrape(description[node2]["metrics_url"])
    assert total(other, "quorum_private_transactions_total") >= 1  # imported, as a party

    manager_metrics = scrape(description[node1]["tm_metrics_url"])
    assert total(manager_metrics, "tm_requests_total", endpoint="/send", status="201") >= 1
    assert total(manager_metrics, "tm_request_seconds_count", api="q2t") >= 1
    assert total(manager_metrics, "tm_pushes_total") >= 1
    assert total(manager_metrics, "tm_peers") >= 1
    assert total(manager_metrics, "tm_store_bytes") > 0


def storage_deployment() -> str:
    code = str(artifact("SimpleStorage")["bytecode"])
    return "0x" + code.removeprefix("0x") + encode(["uint256"], [42]).hex()


def test_a_dev_node_writes_json_logs_and_lists_its_metrics_url(tmp_path: Path) -> None:
    node = NodeProcess(
        tmp_path / "node", extra_args=["--log-format", "json", "--metrics-port", "0"]
    ).start()
    try:
        endpoints = json.loads((node.datadir / "endpoints.json").read_text())
        assert endpoints["metrics"].startswith("http://127.0.0.1:")
        metrics = scrape(endpoints["metrics"])
        assert "quorum_head_block" in metrics and "quorum_raft_role" not in metrics
        wait_until(
            lambda: any(line.startswith("{") for line in node.log_path.read_text().splitlines()),
            20,
            "a JSON log line",
        )
    finally:
        node.stop()
    entries = [
        json.loads(line) for line in node.log_path.read_text().splitlines() if line.startswith("{")
    ]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    started = [entry for entry in entries if entry["message"] == "started"]
    assert started and started[0]["metrics_url"] == endpoints["metrics"]
