"""A node's Prometheus metrics, in a registry of its own (several nodes can share a
test process).

Gauges are read when scraped from state the node keeps anyway (the head, the pool,
the Raft role and term, the live peers). Counters and histograms are fed by hooks
that cost one call each: a block listener (transactions, private ones), the audit's
alarm listener, the Raft engine's commit and misbehaviour observers (propose → the
block is the head here; a member's refused traffic) and the manager client's observer
(each Q2T request's duration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quorum_node.chain.service import CommittedBlock
from quorum_node.chain.transactions import is_private
from quorum_node.consensus.raft import RaftEngine
from quorum_node.node import Node
from quorum_node.privacy.audit import Alarm

#: A Raft round trip on loopback takes milliseconds; a loaded or distant cluster, seconds.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: A cached payload read is sub-millisecond; a send waits for every recipient's manager.
MANAGER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
RAFT_ROLES = ("minter", "verifier")
#: ``privacy.audit.Alarm.kind``: listed so that each is exported (as 0) before it happens.
ALARM_KINDS = ("mismatch", "equivocation", "lagging")


class NodeMetrics:
    """The registry and the hooks; ``watch`` wires them to one running node."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.transactions = Counter(
            "quorum_transactions",
            "Transactions in blocks that became the head here (public and private)",
            registry=self.registry,
        )
        self.private_transactions = Counter(
            "quorum_private_transactions",
            "Private transactions (hash of a manager payload) in blocks that became the head",
            registry=self.registry,
        )
        self.blocks = Counter(
            "quorum_blocks", "Blocks that became the head here", registry=self.registry
        )
        self.audit_alarms = Counter(
            "quorum_audit_alarms",
            "Alarms raised by the audit of signed group roots, by kind",
            ("kind",),
            registry=self.registry,
        )
        for kind in ALARM_KINDS:
            self.audit_alarms.labels(kind)
        self.raft_commit_seconds = Histogram(
            "quorum_raft_commit_seconds",
            "On the leader: from proposing a block to the Raft log to its being the head",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.raft_misbehaviour = Counter(
            "quorum_raft_peer_misbehaviour",
            "Raft traffic refused or reported, by member (the first 16 hex digits of its node "
            "id; 'unknown' before a handshake named one) and kind",
            ("peer", "kind"),
            registry=self.registry,
        )
        self.manager_request_seconds = Histogram(
            "quorum_manager_request_seconds",
            "Duration of the node's requests to its transaction manager, by operation",
            ("operation",),
            buckets=MANAGER_BUCKETS,
            registry=self.registry,
        )

    def on_block(self, committed: CommittedBlock) -> None:
        transactions = committed.block.transactions
        self.blocks.inc()
        self.transactions.inc(len(transactions))
        private = sum(1 for transaction in transactions if is_private(transaction))
        if private:
            self.private_transactions.inc(private)

    def on_alarm(self, alarm: Alarm) -> None:
        self.audit_alarms.labels(alarm.kind).inc()

    def on_raft_misbehaviour(self, node_id: str, kind: str) -> None:
        self.raft_misbehaviour.labels(node_id[:16], kind).inc()

    def on_manager_request(self, operation: str, seconds: float) -> None:
        self.manager_request_seconds.labels(operation).observe(seconds)

    def watch(
        self,
        node: Node,
        engine: object,
        live_peers: Callable[[], int],
    ) -> None:
        """Collect the head, the pool, the peers and (under Raft) role and term when
        scraped; and hear of committed blocks and Raft commits."""
        node.block_listeners.append(self.on_block)
        raft = engine if isinstance(engine, RaftEngine) else None
        if raft is not None:
            raft.commit_observer = self.raft_commit_seconds.observe
            raft.misbehaviour_observer = self.on_raft_misbehaviour
        self.registry.register(_NodeStateCollector(node, raft, live_peers))


class _NodeStateCollector(Collector):
    def __init__(self, node: Node, raft: RaftEngine | None, live_peers: Callable[[], int]) -> None:
        self._node = node
        self._raft = raft
        self._live_peers = live_peers

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "quorum_head_block", "Number of the head block", self._node.head.block_number
        )
        yield GaugeMetricFamily(
            "quorum_txpool_pending", "Transactions waiting in the pool", len(self._node.pool)
        )
        yield GaugeMetricFamily("quorum_peers", "Peers that answered recently", self._live_peers())
        if self._raft is None:
            return
        role = GaugeMetricFamily(
            "quorum_raft_role", "This node's Raft role: 1 for the one it has", labels=("role",)
        )
        current = self._raft.role()
        for name in RAFT_ROLES:
            role.add_metric((name,), 1 if name == current else 0)
        yield role
        term = self._raft.term()
        if term is not None:
            yield GaugeMetricFamily("quorum_raft_term", "The current Raft term", term)
