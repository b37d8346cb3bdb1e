"""View models: what each page shows, built from the nodes' JSON-RPC answers.

Nothing here knows HTTP or HTML; every page asks all participants at once and keeps
each participant's answer (or its error) in its own column, so equal and missing views
are visible side by side. ``Explorer`` takes its nodes as :class:`JsonRpc` objects, so
tests hand it fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quorum_node.explorer.abi import AbiRegistry, Decoded, decode_outputs, selector
from quorum_node.explorer.network import Participant
from quorum_node.explorer.rpc_client import ExplorerError, JsonRpc

PRIVATE_V = (37, 38)
LATEST_BLOCKS = 10
LATEST_TRANSACTIONS = 20
TRANSACTION_SCAN = 100  # blocks searched back for the latest transactions
BLOCK_TRANSACTIONS_SHOWN = 50


def _bytes(text: str | None) -> bytes:
    return bytes.fromhex((text or "0x").removeprefix("0x"))


def _int(text: Any) -> int:
    return int(text, 16) if isinstance(text, str) else int(text or 0)


@dataclass(frozen=True)
class Failed:
    """A participant whose node did not answer: shown as its error."""

    error: str


async def _ask(client: JsonRpc, method: str, params: list[Any]) -> Any:
    try:
        return await client.call(method, params)
    except ExplorerError as exc:
        return Failed(str(exc))


@dataclass
class NodeStatus:
    name: str
    block_number: int | None
    raft_role: str
    peer_count: int | None
    manager: str
    error: str | None = None


@dataclass
class TransactionRow:
    hash: str
    block_number: int
    sender: str
    to: str | None
    private: bool


@dataclass
class BlockRow:
    number: int
    hash: str
    transaction_count: int
    timestamp: int


@dataclass
class Latest:
    blocks: list[BlockRow]
    transactions: list[TransactionRow]
    source: str | None
    error: str | None = None


@dataclass
class LogView:
    address: str
    decoded: str | None
    topics: list[str]
    data: str


@dataclass
class PartyColumn:
    """One participant's view of one transaction."""

    name: str
    not_party: bool = False
    error: str | None = None
    call: str | None = None
    status: int | None = None
    contract_address: str | None = None
    logs: list[LogView] = field(default_factory=list)


@dataclass
class TransactionPage:
    hash: str
    block_number: int | None
    block_hash: str | None
    sender: str
    to: str | None
    nonce: int
    v: int
    private: bool
    input: str
    public_call: str | None
    columns: list[PartyColumn]


@dataclass
class BlockTransactionRow:
    hash: str
    private: bool
    sender: str
    to: str | None
    cells: list[str]  # one per participant: "party (status 1)", "not a party", ...


@dataclass
class BlockPage:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    hashes_by_participant: list[tuple[str, str]]
    transactions: list[BlockTransactionRow]
    more_transactions: int


@dataclass
class ContractColumn:
    name: str
    error: str | None = None
    has_code: bool = False
    code_size: int = 0
    storage_root: str | None = None
    privacy: str | None = None
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class ContractPage:
    address: str
    abi_name: str | None
    functions: list[str]
    columns: list[ContractColumn]


@dataclass
class GroupCell:
    name: str
    status: str  # agreed, pending, not a member, unreachable, or an alarm kind
    detail: str
    colour: str  # green, red, grey


@dataclass
class GroupRow:
    group_id: str
    members: list[str]
    cells: list[GroupCell]


class Explorer:
    """Builds every page's view model from the participants' nodes."""

    def __init__(
        self,
        participants: list[Participant],
        clients: Mapping[str, JsonRpc],
        abis: AbiRegistry,
        upcheck: Callable[[Participant], Awaitable[str]],
    ) -> None:
        self.participants = participants
        self.clients = clients
        self.abis = abis
        self.upcheck = upcheck
        self.names_by_key = {p.tm_public_key: p.name for p in participants if p.tm_public_key}

    async def _each(self, method: str, params: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(
                *(_ask(self.clients[p.name], method, params) for p in self.participants)
            )
        )

    # --- network ---------------------------------------------------------------------

    async def node_status(self, participant: Participant) -> NodeStatus:
        client = self.clients[participant.name]
        number, role, peers = await asyncio.gather(
            _ask(client, "eth_blockNumber", []),
            _ask(client, "raft_role", []),
            _ask(client, "net_peerCount", []),
        )
        manager = await self.upcheck(participant) if participant.tm_url else "none"
        return NodeStatus(
            participant.name,
            None if isinstance(number, Failed) else _int(number),
            "-" if isinstance(role, Failed) else str(role),
            None if isinstance(peers, Failed) else _int(peers),
            manager,
            number.error if isinstance(number, Failed) else None,
        )

    async def statuses(self) -> list[NodeStatus]:
        return list(await asyncio.gather(*(self.node_status(p) for p in self.participants)))

    async def latest(self) -> Latest:
        """The latest blocks and transactions, read from the first node that answers."""
        errors = []
        for participant in self.participants:
            client = self.clients[participant.name]
            head = await _ask(client, "eth_blockNumber", [])
            if isinstance(head, Failed):
                errors.append(f"{participant.name}: {head.error}")
                continue
            blocks: list[BlockRow] = []
            transactions: list[TransactionRow] = []
            number = _int(head)
            lowest = max(-1, number - TRANSACTION_SCAN)
            while number > lowest and len(transactions) < LATEST_TRANSACTIONS:
                batch = range(number, max(lowest, number - 10), -1)
                answers = await asyncio.gather(
                    *(_ask(client, "eth_getBlockByNumber", [hex(n), True]) for n in batch)
                )
                for block in answers:
                    if isinstance(block, Failed) or block is None:
                        continue
                    if len(blocks) < LATEST_BLOCKS:
                        blocks.append(_block_row(block))
                    for tx in block.get("transactions", []):
                        if len(transactions) < LATEST_TRANSACTIONS:
                            transactions.append(_transaction_row(tx))
                number = batch[-1] - 1
            return Latest(blocks, transactions, participant.name)
        return Latest([], [], None, "; ".join(errors) or "no participants")

    # --- transaction -----------------------------------------------------------------

    async def transaction(self, tx_hash: str) -> TransactionPage | None:
        answers = await self._each("eth_getTransactionByHash", [tx_hash])
        public = next((a for a in answers if isinstance(a, dict)), None)
        if public is None:
            return None
        v = _int(public.get("v"))
        private = v in PRIVATE_V
        data = _bytes(public.get("input"))
        to = public.get("to")
        columns = await asyncio.gather(
            *(self._party_column(p, tx_hash, public, private) for p in self.participants)
        )
        block_number = public.get("blockNumber")
        return TransactionPage(
            hash=str(public["hash"]),
            block_number=None if block_number is None else _int(block_number),
            block_hash=public.get("blockHash"),
            sender=str(public.get("from")),
            to=to,
            nonce=_int(public.get("nonce")),
            v=v,
            private=private,
            input="0x" + data.hex(),
            public_call=None if private else self._describe_call(to, data),
            columns=list(columns),
        )

    async def block_number_of_hash(self, block_hash: str) -> int | None:
        """The number of the block with this hash, if a node has it (the search box's
        64-digit hashes are tried as transactions first)."""
        for answer in await self._each("eth_getBlockByHash", [block_hash, False]):
            if isinstance(answer, dict):
                return _int(answer["number"])
        return None

    def _describe_call(self, to: str | None, data: bytes) -> str:
        decoded: Decoded | None
        if to is None:
            decoded = self.abis.decode_creation(data)
            return decoded.text if decoded else f"contract creation ({len(data)} bytes of code)"
        if not data:
            return "transfer (no input)"
        decoded = self.abis.decode_call(data)
        return decoded.text if decoded else f"unknown call 0x{data[:4].hex()} ({len(data)} bytes)"

    async def _party_column(
        self, participant: Participant, tx_hash: str, public: dict[str, Any], private: bool
    ) -> PartyColumn:
        client = self.clients[participant.name]
        column = PartyColumn(participant.name)
        if private:
            payload = await _ask(client, "eth_getQuorumPayload", [public.get("input")])
            if isinstance(payload, Failed):
                column.error = payload.error
                return column
            if not _bytes(payload):
                column.not_party = True
                return column
            column.call = self._describe_call(public.get("to"), _bytes(payload))
        else:
            column.call = self._describe_call(public.get("to"), _bytes(public.get("input")))
        receipt = await _ask(client, "eth_getTransactionReceipt", [tx_hash])
        if isinstance(receipt, Failed):
            column.error = receipt.error
        elif receipt is None:
            column.error = "no receipt yet (pending or not imported)"
        else:
            column.status = _int(receipt.get("status"))
            column.contract_address = receipt.get("contractAddress")
            column.logs = [self._log_view(log) for log in receipt.get("logs", [])]
        return column

    def _log_view(self, log: dict[str, Any]) -> LogView:
        topics = [str(topic) for topic in log.get("topics", [])]
        decoded = self.abis.decode_log([_bytes(t) for t in topics], _bytes(log.get("data")))
        return LogView(
            str(log.get("address")), decoded.text if decoded else None, topics, log.get("data", "")
        )

    # --- block -----------------------------------------------------------------------

    async def block(self, number: int) -> BlockPage | None:
        answers = await self._each("eth_getBlockByNumber", [hex(number), True])
        block = next((a for a in answers if isinstance(a, dict)), None)
        if block is None:
            return None
        hashes = [
            (p.name, a["hash"] if isinstance(a, dict) else ("missing" if a is None else a.error))
            for p, a in zip(self.participants, answers, strict=True)
        ]
        transactions = block.get("transactions", [])
        rows = await asyncio.gather(
            *(self._block_transaction(tx) for tx in transactions[:BLOCK_TRANSACTIONS_SHOWN])
        )
        return BlockPage(
            number=_int(block["number"]),
            hash=str(block["hash"]),
            parent_hash=str(block.get("parentHash")),
            timestamp=_int(block.get("timestamp")),
            hashes_by_participant=hashes,
            transactions=list(rows),
            more_transactions=max(0, len(transactions) - BLOCK_TRANSACTIONS_SHOWN),
        )

    async def _block_transaction(self, tx: dict[str, Any]) -> BlockTransactionRow:
        private = _int(tx.get("v")) in PRIVATE_V
        cells = await asyncio.gather(*(self._block_cell(p, tx, private) for p in self.participants))
        return BlockTransactionRow(
            str(tx["hash"]), private, str(tx.get("from")), tx.get("to"), list(cells)
        )

    async def _block_cell(self, participant: Participant, tx: dict[str, Any], private: bool) -> str:
        client = self.clients[participant.name]
        if private:
            payload = await _ask(client, "eth_getQuorumPayload", [tx.get("input")])
            if isinstance(payload, Failed):
                return payload.error
            if not _bytes(payload):
                return "not a party"
        receipt = await _ask(client, "eth_getTransactionReceipt", [tx["hash"]])
        if isinstance(receipt, Failed):
            return receipt.error
        if receipt is None:
            return "no receipt"
        role = "party" if private else "public"
        return f"{role}, status {_int(receipt.get('status'))}"

    # --- contract --------------------------------------------------------------------

    async def contract(self, address: str) -> ContractPage:
        codes = await self._each("eth_getCode", [address, "latest"])
        code = next((_bytes(c) for c in codes if isinstance(c, str) and _bytes(c)), b"")
        matched = self.abis.match_code(code)
        functions = matched.view_functions() if matched else []
        columns = await asyncio.gather(
            *(
                self._contract_column(p, address, answer, functions)
                for p, answer in zip(self.participants, codes, strict=True)
            )
        )
        return ContractPage(
            address,
            matched.name if matched else None,
            [f["name"] for f in functions],
            list(columns),
        )

    async def _contract_column(
        self,
        participant: Participant,
        address: str,
        code_answer: Any,
        functions: list[dict[str, Any]],
    ) -> ContractColumn:
        column = ContractColumn(participant.name)
        if isinstance(code_answer, Failed):
            column.error = code_answer.error
            return column
        code = _bytes(code_answer)
        column.has_code, column.code_size = bool(code), len(code)
        client = self.clients[participant.name]
        root, metadata = await asyncio.gather(
            _ask(client, "eth_storageRoot", [address, "latest"]),
            _ask(client, "eth_getContractPrivacyMetadata", [address]),
        )
        column.storage_root = root.error if isinstance(root, Failed) else str(root)
        if isinstance(metadata, dict):
            column.privacy = f"private, flag {metadata.get('privacyFlag', 0)}"
        elif metadata is None and code:
            column.privacy = "public"
        if not code:
            return column
        results = await asyncio.gather(
            *(
                _ask(
                    client,
                    "eth_call",
                    [{"to": address, "data": "0x" + selector(f).hex()}, "latest"],
                )
                for f in functions
            )
        )
        for function, result in zip(functions, results, strict=True):
            column.values[function["name"]] = (
                f"error: {result.error}"
                if isinstance(result, Failed)
                else decode_outputs(function, _bytes(result))
            )
        return column

    # --- party groups ----------------------------------------------------------------

    async def groups(self) -> list[GroupRow]:
        answers = await self._each("quorum_auditStatus", [])
        members: dict[str, list[str]] = {}
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        for participant, answer in zip(self.participants, answers, strict=True):
            if not isinstance(answer, list):
                continue
            for entry in answer:
                group_id = str(entry.get("groupId"))
                members.setdefault(group_id, [str(m) for m in entry.get("members", [])])
                entries[(group_id, participant.name)] = entry
        rows = []
        for group_id, keys in sorted(members.items()):
            cells = []
            for participant, answer in zip(self.participants, answers, strict=True):
                cells.append(
                    _group_cell(
                        participant, keys, answer, entries.get((group_id, participant.name))
                    )
                )
            names = sorted(self.names_by_key.get(key, key[:12] + "…") for key in keys)
            rows.append(GroupRow(group_id, names, cells))
        return rows


def _group_cell(
    participant: Participant, keys: list[str], answer: Any, entry: dict[str, Any] | None
) -> GroupCell:
    if isinstance(answer, Failed):
        return GroupCell(participant.name, "unreachable", answer.error, "grey")
    if participant.tm_public_key not in keys:
        return GroupCell(participant.name, "not a member", "", "grey")
    if entry is None:
        return GroupCell(participant.name, "pending", "no commitment yet", "grey")
    status = str(entry.get("status"))
    height = entry.get("agreedHeight")
    if status == "agreed":
        return GroupCell(participant.name, "agreed", f"at height {height}", "green")
    if status == "pending":
        return GroupCell(participant.name, "pending", "no common signed root yet", "grey")
    kinds = sorted({str(alarm.get("kind")) for alarm in entry.get("alarms", [])}) or [status]
    return GroupCell(participant.name, status, "alarm: " + ", ".join(kinds), "red")


def _block_row(block: dict[str, Any]) -> BlockRow:
    return BlockRow(
        _int(block["number"]),
        str(block["hash"]),
        len(block.get("transactions", [])),
        _int(block.get("timestamp")),
    )


def _transaction_row(tx: dict[str, Any]) -> TransactionRow:
    return TransactionRow(
        str(tx["hash"]),
        _int(tx.get("blockNumber")),
        str(tx.get("from")),
        tx.get("to"),
        _int(tx.get("v")) in PRIVATE_V,
    )
