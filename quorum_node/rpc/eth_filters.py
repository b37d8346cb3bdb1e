"""Logs, polling filters and WebSocket subscriptions (``eth_getLogs``, ``eth_newFilter``,
``eth_subscribe`` ...).

Filters and subscriptions are fed by the node's block and pending-transaction listeners
on the event loop; a filter that nobody polls for five minutes is dropped, as in geth.
Notifications are handed to the connection's bounded outbox without waiting (see
``rpc.outbox``): a subscriber that cannot keep up is disconnected, never buffered
without limit.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from eth_typing import Hash32

from quorum_node.chain.logs import LogCriteria, TooManyLogs, find_logs, matching_logs
from quorum_node.chain.service import CommittedBlock
from quorum_node.node import Node
from quorum_node.privacy.audit import Alarm
from quorum_node.privacy.audit_service import AuditService
from quorum_node.rpc import formatting as fmt
from quorum_node.rpc import params as p
from quorum_node.rpc.dispatcher import CallContext, rpc_method
from quorum_node.rpc.errors import InvalidParams, ServerError

FILTER_TIMEOUT_SECONDS = 300
MAX_FILTER_BUFFER = 10_000
#: geth has no cap; we need one because every block costs work per subscription (a
#: header formatted, logs matched), so one connection could otherwise make each block
#: arbitrarily expensive. A dapp holds a handful; a thousand leaves room for one that
#: watches many contracts' events.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 1_000


@dataclass(frozen=True)
class LogQuery:
    criteria: LogCriteria
    from_block: p.BlockId
    to_block: p.BlockId
    block_hash: Hash32 | None = None


def _topics(raw: Any) -> tuple[tuple[bytes, ...] | None, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidParams("filter.topics: expected an array")
    if len(raw) > 4:
        raise InvalidParams("filter.topics: at most 4 positions")
    positions: list[tuple[bytes, ...] | None] = []
    for index, position in enumerate(raw):
        if position is None:
            positions.append(None)
        elif isinstance(position, list):
            alternatives = tuple(p.fixed_data(t, f"filter.topics[{index}]", 32) for t in position)
            positions.append(alternatives or None)
        else:
            positions.append((p.fixed_data(position, f"filter.topics[{index}]", 32),))
    return tuple(positions)


def parse_log_query(raw: Any) -> LogQuery:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams("filter: expected an object")
    address_raw = raw.get("address")
    if address_raw is None:
        addresses: tuple[Any, ...] = ()
    elif isinstance(address_raw, list):
        addresses = tuple(p.address(a, "filter.address") for a in address_raw)
    else:
        addresses = (p.address(address_raw, "filter.address"),)
    criteria = LogCriteria(addresses=addresses, topics=_topics(raw.get("topics")))
    if raw.get("blockHash") is not None:
        if raw.get("fromBlock") is not None or raw.get("toBlock") is not None:
            raise InvalidParams(
                "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
            )
        return LogQuery(
            criteria,
            p.BlockId(tag="latest"),
            p.BlockId(tag="latest"),
            p.block_hash(raw["blockHash"], "filter.blockHash"),
        )
    return LogQuery(
        criteria,
        p.block_id(raw.get("fromBlock"), "filter.fromBlock"),
        p.block_id(raw.get("toBlock"), "filter.toBlock"),
    )


@dataclass
class _Filter:
    kind: str  # "logs", "blocks" or "pending"
    query: LogQuery | None
    buffer: list[Any] = field(default_factory=list)
    last_polled: float = field(default_factory=time.monotonic)


def _block_number_of(node: Node, block: p.BlockId) -> int:
    head = node.chain.head.block_number
    if block.tag in ("latest", "pending", "safe", "finalized"):
        return head
    if block.tag == "earliest":
        return 0
    assert block.number is not None  # noqa: S101 - a BlockId without hash has one
    return block.number


class FilterNamespace:
    def __init__(self, node: Node, audit: AuditService | None = None) -> None:
        self.node = node
        self._filters: dict[str, _Filter] = {}
        self._subscriptions: dict[str, tuple[str, LogCriteria | None, CallContext]] = {}
        node.block_listeners.append(self._on_block)
        node.pending_listeners.append(self._on_pending)
        if audit is not None:
            audit.alarm_listeners.append(self._on_alarm)

    # --- logs ----------------------------------------------------------------------

    async def _run_query(self, query: LogQuery) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            chain = self.node.chain
            if query.block_hash is not None:
                header = chain.header_by_hash(query.block_hash)
                if header is None:
                    raise ServerError("unknown block")
                found = list(
                    matching_logs(chain.records_of(chain.block_of(header)), query.criteria)
                )
            else:
                first = _block_number_of(self.node, query.from_block)
                last = _block_number_of(self.node, query.to_block)
                if first > last:
                    raise ServerError("invalid block range params")
                try:
                    found = find_logs(chain, first, last, query.criteria)
                except TooManyLogs as exc:
                    raise ServerError(str(exc)) from None
            return [fmt.format_log(record, position, log) for record, position, log in found]

        return await self.node.executor.run(read)

    @rpc_method("eth_getLogs")
    async def get_logs(self, params: Any, context: CallContext) -> list[dict[str, Any]]:
        (raw,) = p.expect_params(params, 1, 1)
        return await self._run_query(parse_log_query(raw))

    # --- polling filters -----------------------------------------------------------

    def _new_id(self) -> str:
        return "0x" + secrets.token_hex(16)

    def _expire(self) -> None:
        deadline = time.monotonic() - FILTER_TIMEOUT_SECONDS
        for filter_id in [f for f, item in self._filters.items() if item.last_polled < deadline]:
            del self._filters[filter_id]

    @rpc_method("eth_newFilter")
    async def new_filter(self, params: Any, context: CallContext) -> str:
        (raw,) = p.expect_params(params, 1, 1)
        query = parse_log_query(raw)
        self._expire()
        filter_id = self._new_id()
        self._filters[filter_id] = _Filter("logs", query)
        return filter_id

    @rpc_method("eth_newBlockFilter")
    async def new_block_filter(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 0)
        self._expire()
        filter_id = self._new_id()
        self._filters[filter_id] = _Filter("blocks", None)
        return filter_id

    @rpc_method("eth_newPendingTransactionFilter")
    async def new_pending_filter(self, params: Any, context: CallContext) -> str:
        p.expect_params(params, 0, 1)
        self._expire()
        filter_id = self._new_id()
        self._filters[filter_id] = _Filter("pending", None)
        return filter_id

    def _filter(self, raw: Any) -> tuple[str, _Filter]:
        if not isinstance(raw, str):
            raise InvalidParams("filter id: expected a string")
        found = self._filters.get(raw)
        if found is None:
            raise ServerError("filter not found")
        found.last_polled = time.monotonic()
        return raw, found

    @rpc_method("eth_getFilterChanges")
    async def get_filter_changes(self, params: Any, context: CallContext) -> list[Any]:
        (raw,) = p.expect_params(params, 1, 1)
        _, found = self._filter(raw)
        changes, found.buffer = found.buffer, []
        return changes

    @rpc_method("eth_getFilterLogs")
    async def get_filter_logs(self, params: Any, context: CallContext) -> list[Any]:
        (raw,) = p.expect_params(params, 1, 1)
        _, found = self._filter(raw)
        if found.query is None:
            raise ServerError("filter not found")
        return await self._run_query(found.query)

    @rpc_method("eth_uninstallFilter")
    async def uninstall_filter(self, params: Any, context: CallContext) -> bool:
        (raw,) = p.expect_params(params, 1, 1)
        if not isinstance(raw, str):
            raise InvalidParams("filter id: expected a string")
        return self._filters.pop(raw, None) is not None

    # --- subscriptions (WebSocket only) ------------------------------------------------

    @rpc_method("eth_subscribe")
    async def subscribe(self, params: Any, context: CallContext) -> str:
        kind, options = p.expect_params(params, 1, 2)
        if context.send_notification is None:
            raise ServerError("notifications not supported")
        criteria = None
        if kind == "logs":
            criteria = parse_log_query(options).criteria
        elif kind not in ("newHeads", "newPendingTransactions", "quorumAudit"):
            raise InvalidParams(f"no such subscription: {kind!r}")
        if len(context.subscriptions) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise ServerError(
                f"too many subscriptions on this connection: the limit is "
                f"{MAX_SUBSCRIPTIONS_PER_CONNECTION}; unsubscribe some first"
            )
        subscription_id = self._new_id()
        self._subscriptions[subscription_id] = (kind, criteria, context)
        context.subscriptions.add(subscription_id)
        return subscription_id

    @rpc_method("eth_unsubscribe")
    async def unsubscribe(self, params: Any, context: CallContext) -> bool:
        (raw,) = p.expect_params(params, 1, 1)
        if not isinstance(raw, str):
            raise InvalidParams("subscription id: expected a string")
        found = self._subscriptions.get(raw)
        if found is None or found[2] is not context:
            return False
        del self._subscriptions[raw]
        context.subscriptions.discard(raw)
        return True

    def drop_connection(self, context: CallContext) -> None:
        for subscription_id in context.subscriptions:
            self._subscriptions.pop(subscription_id, None)
        context.subscriptions.clear()

    def _notify(self, subscription_id: str, context: CallContext, result: Any) -> None:
        if context.send_notification is None:
            return
        message = {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": subscription_id, "result": result},
        }
        context.send_notification(message)

    # --- feeding -------------------------------------------------------------------

    def _on_alarm(self, alarm: Alarm) -> None:
        """``eth_subscribe("quorumAudit")``: each new audit alarm, as it is raised."""
        for subscription_id, (kind, _, context) in list(self._subscriptions.items()):
            if kind == "quorumAudit":
                self._notify(subscription_id, context, alarm.to_json())

    def _on_block(self, committed: CommittedBlock) -> None:
        block_hash = fmt.hex_data(committed.block.hash)
        for item in self._filters.values():
            if len(item.buffer) >= MAX_FILTER_BUFFER:
                continue
            if item.kind == "blocks":
                item.buffer.append(block_hash)
            elif item.kind == "logs" and item.query is not None:
                query = item.query
                if query.block_hash is not None:
                    continue
                number = committed.block.number
                if query.from_block.number is not None and number < query.from_block.number:
                    continue
                if query.to_block.number is not None and number > query.to_block.number:
                    continue
                item.buffer.extend(
                    fmt.format_log(record, position, log)
                    for record, position, log in matching_logs(committed.records, query.criteria)
                )
        if not self._subscriptions:
            return
        header = fmt.format_header(committed.block.header)
        for subscription_id, (kind, criteria, context) in list(self._subscriptions.items()):
            if kind == "newHeads":
                self._notify(subscription_id, context, header)
            elif kind == "logs" and criteria is not None:
                for record, position, log in matching_logs(committed.records, criteria):
                    self._notify(subscription_id, context, fmt.format_log(record, position, log))

    def _on_pending(self, transaction_hash: Hash32) -> None:
        hash_hex = fmt.hex_data(transaction_hash)
        for item in self._filters.values():
            if item.kind == "pending" and len(item.buffer) < MAX_FILTER_BUFFER:
                item.buffer.append(hash_hex)
        for subscription_id, (kind, _, context) in list(self._subscriptions.items()):
            if kind == "newPendingTransactions":
                self._notify(subscription_id, context, hash_hex)
