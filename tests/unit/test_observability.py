"""Metrics and logs in process: the JSON log format, the node's collectors, the metrics
server, the config fields, the manager client's operation labels."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from quorum_node.config import load_node_config
from quorum_node.metrics import NodeMetrics
from quorum_node.privacy.audit import Alarm
from quorum_shared.logs import JsonFormatter, configure_logging
from quorum_shared.metrics_server import MetricsServer, MetricsServerError
from tx_manager.client import operation_name
from tx_manager.config import parse_config
from tx_manager.errors import ManagerConfigError


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_json_log_lines_carry_named_fields_extras_and_the_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.observability.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("block %d", 7, extra={"block": 7, "peer": b"\x01", "when": Path("/x")})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "test.observability.json"
    assert first["message"] == "block 7" and first["block"] == 7
    assert first["peer"] == "b'\\x01'" and first["when"] == "/x"  # what JSON cannot hold
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_configure_logging_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")


def _node(head: int, pending: int) -> Any:
    return SimpleNamespace(
        head=SimpleNamespace(block_number=head), pool=[None] * pending, block_listeners=[]
    )


def _committed(v_values: list[int]) -> Any:
    transactions = [SimpleNamespace(v=v, type_id=None) for v in v_values]
    return SimpleNamespace(block=SimpleNamespace(transactions=transactions))


def test_node_metrics_in_two_registries_count_blocks_and_read_state_lazily() -> None:
    first, second = NodeMetrics(), NodeMetrics()
    node = _node(head=5, pending=2)
    first.watch(node, object(), lambda: 3)  # not Raft: no role or term
    for listener in node.block_listeners:
        listener(_committed([27, 37, 38]))
        listener(_committed([]))
    first.on_alarm(Alarm("mismatch", b"\x00" * 32, 10, b"\x01" * 32, ()))
    first.on_manager_request("GET /transaction/{hash}", 0.002)
    node.head.block_number = 6  # read when scraped, not copied
    found = values(generate_latest(first.registry).decode())
    assert found[("quorum_head_block", ())] == 6
    assert found[("quorum_txpool_pending", ())] == 2
    assert found[("quorum_peers", ())] == 3
    assert found[("quorum_blocks_total", ())] == 2
    assert found[("quorum_transactions_total", ())] == 3
    assert found[("quorum_private_transactions_total", ())] == 2
    assert found[("quorum_audit_alarms_total", (("kind", "mismatch"),))] == 1
    assert found[("quorum_audit_alarms_total", (("kind", "lagging"),))] == 0
    operation = (("operation", "GET /transaction/{hash}"),)
    assert found[("quorum_manager_request_seconds_count", operation)] == 1
    assert not any(name.startswith("quorum_raft_role") for name, _ in found)
    untouched = values(generate_latest(second.registry).decode())
    assert untouched[("quorum_transactions_total", ())] == 0


async def test_metrics_server_serves_text_format_on_loopback_and_reports_a_taken_port() -> None:
    metrics = NodeMetrics()
    refreshed: list[int] = []

    async def before_scrape() -> None:
        refreshed.append(1)

    server = MetricsServer(metrics.registry, before_scrape=before_scrape)
    url = await server.start()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        port = int(url.rsplit(":", 1)[1].split("/")[0])

        def fetch() -> tuple[str, str]:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.headers["Content-Type"], response.read().decode()

        content_type, body = await asyncio.get_running_loop().run_in_executor(None, fetch)
        assert content_type.startswith("text/plain; version=")
        assert "quorum_transactions_total 0.0" in body and refreshed == [1]
        with pytest.raises(MetricsServerError, match="already in use"):
            await MetricsServer(metrics.registry, port=port).start()
    finally:
        await server.stop()


def test_operation_labels_hide_the_hash() -> None:
    assert operation_name("GET", "/transaction/q83v%2B1==") == "GET /transaction/{hash}"
    assert operation_name("GET", "/transaction/abc/isSender") == "GET /transaction/{hash}/isSender"
    assert operation_name("POST", "/send") == "POST /send"
    assert operation_name("GET", "/commitments?after=3") == "GET /commitments"


def test_manager_config_metrics_and_store_fields() -> None:
    base = {"keys": [{"public": "a.pub", "private": "a.key"}]}
    plain = parse_config(dict(base), Path("/tmp"))
    assert plain.metrics is None and plain.store_url is None
    config = parse_config(
        {**base, "metrics": {"port": 0}, "store": "postgresql://tm@127.0.0.1/tm"}, Path("/tmp")
    )
    assert config.metrics is not None and config.metrics.host == "127.0.0.1"
    assert config.store_url == "postgresql://tm@127.0.0.1/tm" and config.uses_postgresql
    assert parse_config({**base, "store": "sqlite"}, Path("/tmp")).store_url is None
    for bad in ({"metrics": {"host": "127.0.0.1"}}, {"metrics": {"port": 1, "path": "/m"}}):
        with pytest.raises(ManagerConfigError, match="metrics"):
            parse_config({**base, **bad}, Path("/tmp"))
    with pytest.raises(ManagerConfigError, match="postgresql://"):
        parse_config({**base, "store": "mysql://x"}, Path("/tmp"))


def test_node_config_metrics_fields(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({"datadir": "data", "genesis": "g.json"}))
    assert load_node_config(path).metrics_port is None
    path.write_text(
        json.dumps(
            {"datadir": "d", "genesis": "g", "metrics_port": 9100, "metrics_host": "0.0.0.0"}
        )
    )
    config = load_node_config(path)
    assert (config.metrics_port, config.metrics_host) == (9100, "0.0.0.0")
