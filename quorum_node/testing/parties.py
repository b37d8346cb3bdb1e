"""What a test holds: a per-test view of a running network, its parties, and the
helpers to deploy privately and to state what each party must see.

Each test gets fresh accounts. A party's ``account`` is a new ``eth_account`` key made
for the test and funded from the participant's development account (the one its node
holds). Private transactions are signed offline with it: the payload goes to the
party's manager (``w3.quorum.sign_private_transaction``) and the node distributes it
(``send_raw_private_transaction``), because a node's ``eth_sendTransaction`` with
``privateFor`` only signs for accounts the node holds, and qnet's nodes do not serve
``personal`` to import new ones. The party's ``w3`` also signs public transactions
with the key (web3.py's signing middleware, the key as ``default_account``), so tests
never share a nonce and can run in any order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import Wei

from quorum_node.testing.network import QuorumNetworkError, RunningNetwork
from quorum_node.web3_ext import attach_quorum, quorum_module

#: What a fresh account is funded with (the development accounts hold far more).
FUNDING_WEI = 10 * 10**18
RECEIPT_TIMEOUT = 30.0

Artifact = Mapping[str, Any] | str | PathLike[str]


class _NotAParty:
    """The view of a party whose node holds no code at the contract's address."""

    _instance: _NotAParty | None = None

    def __new__(cls) -> _NotAParty:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_A_PARTY"


#: ``assert_views``' expectation for a party that must not see the contract at all.
NOT_A_PARTY = _NotAParty()


class PrivateTransactionFailed(QuorumNetworkError):
    """A private transaction was mined with status 0 on its sender's node."""

    def __init__(self, what: str, sender: str, receipt: Any) -> None:
        super().__init__(
            f"{what} from {sender} failed: status 0 in block {receipt['blockNumber']} "
            f"(transaction {receipt['transactionHash'].hex()}, gas used {receipt['gasUsed']})"
        )
        self.receipt = receipt


class ViewsDiffer(AssertionError):
    """What the parties saw is not what the test expected; the message is the table."""


def load_artifact(artifact: Artifact) -> dict[str, Any]:
    """A solc artifact as a dict with ``abi`` and ``bytecode``, from a dict or a JSON file."""
    if isinstance(artifact, Mapping):
        loaded = dict(artifact)
    else:
        loaded = json.loads(Path(artifact).read_text())
    if "abi" not in loaded:
        raise QuorumNetworkError(f"artifact {str(artifact)[:80]} has no 'abi'")
    bytecode = loaded.get("bytecode")
    if isinstance(bytecode, Mapping):  # solc's standard JSON: {"object": "..."}
        loaded["bytecode"] = bytecode.get("object")
    return loaded


def _artifact_name(artifact: Artifact | None) -> str:
    if isinstance(artifact, Mapping):
        return str(artifact.get("contractName", "the contract"))
    return Path(artifact).stem if artifact is not None else "the contract"


class Party:
    """One participant as a test sees it: its node's web3 (with ``w3.quorum``), the
    test's fresh ``account`` and its manager public ``key`` (what ``privateFor`` takes)."""

    def __init__(self, view: QuorumNetwork, entry: dict[str, Any], account: LocalAccount) -> None:
        self._view = view
        self.name: str = entry["name"]
        self.rpc_url: str = entry["rpc_url"]
        self.tm_url: str = entry.get("tm_url") or ""
        self.key: str = entry.get("tm_public_key") or ""
        self.dev_address: str = Web3.to_checksum_address(entry["accounts"][0]["address"])
        self.account = account
        self.w3 = attach_quorum(
            Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": RECEIPT_TIMEOUT}))
        )
        self.w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
        self.w3.eth.default_account = account.address

    def __repr__(self) -> str:
        return f"Party({self.name!r}, account={self.account.address})"

    @property
    def address(self) -> str:
        return str(self.account.address)

    def contract(self, contract: Contract | str, abi: Sequence[Any] | None = None) -> Contract:
        """``contract`` (a Contract, or an address with ``abi``) bound to this party's w3."""
        if isinstance(contract, str):
            if abi is None:
                raise QuorumNetworkError("a contract given by address needs its abi")
            address = contract
        else:
            address, abi = str(contract.address), abi or contract.abi
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def send_private(
        self,
        transaction: dict[str, Any],
        parties: Sequence[str],
        privacy_flag: int = 0,
        mandatory_for: Sequence[str] = (),
        what: str = "private transaction",
    ) -> Any:
        """Sign ``transaction`` (``to``, ``data``, optional ``gas``) with this party's
        account privately for the named ``parties``, send it, and return the sender's
        receipt once every node has the block. Raises ``PrivateTransactionFailed`` on
        status 0."""
        keys = self._view.keys(parties, excluding=self.name)
        mandatory = self._view.keys(mandatory_for)
        quorum = quorum_module(self.w3)
        raw = quorum.sign_private_transaction(
            self.account,
            {**transaction, "privateFor": keys},
            self.tm_url,
            private_from=self.key,
            privacy_flag=privacy_flag,
            mandatory_for=mandatory,
        )
        tx_hash = quorum.send_raw_private_transaction(raw, keys, privacy_flag, mandatory)
        receipt = self._view.wait_everywhere(tx_hash, self.name)
        if receipt["status"] != 1:
            raise PrivateTransactionFailed(what, self.name, receipt)
        return receipt

    def transact(
        self,
        function: ContractFunction,
        parties: Sequence[str],
        privacy_flag: int = 0,
        mandatory_for: Sequence[str] = (),
    ) -> Any:
        """Call ``function`` (e.g. ``token.functions.approve(dvp, 100)``) in a private
        transaction for ``parties``; the receipt, as ``send_private``."""
        data = function._encode_transaction_data()
        return self.send_private(
            {"to": function.address, "data": data},
            parties,
            privacy_flag,
            mandatory_for,
            what=f"{function.fn_name}()",
        )


class QuorumNetwork:
    """The ``quorum_network`` fixture: one test's view of a running network. The
    network is shared (per session or module); the parties' accounts are this test's."""

    def __init__(self, network: RunningNetwork) -> None:
        self.network = network
        self._parties: dict[str, Party] = {}
        self._readers: dict[str, Web3] = {}

    @property
    def names(self) -> list[str]:
        return self.network.names

    @property
    def directory(self) -> Path:
        """Where qnet keeps the network (``network.json``, ``<name>/node.log``, ...)."""
        return self.network.directory

    def party(self, name: str) -> Party:
        """``name``'s Party, with a fresh funded account made on first use in this test."""
        if name not in self._parties:
            entry = self.network.participant(name)
            account: LocalAccount = Account.create()
            party = Party(self, entry, account)
            funding = party.w3.eth.send_transaction(
                {"from": party.dev_address, "to": account.address, "value": Wei(FUNDING_WEI)}
            )
            self.wait_everywhere(funding, name)
            self._parties[name] = party
        return self._parties[name]

    @property
    def parties(self) -> list[Party]:
        return [self.party(name) for name in self.names]

    def keys(self, names: Sequence[str], excluding: str | None = None) -> list[str]:
        """The manager public keys of ``names`` (``privateFor``), without ``excluding``."""
        keys = []
        for name in names:
            if name == excluding:
                continue
            key = self.network.participant(name).get("tm_public_key")
            if not key:
                raise QuorumNetworkError(f"{name} has no transaction manager")
            keys.append(str(key))
        return keys

    def wait_everywhere(self, tx_hash: Any, sender: str, timeout: float = RECEIPT_TIMEOUT) -> Any:
        """The sender's receipt, once every node holds the transaction's block (with Raft
        the others import it a moment after the leader), so views read next agree."""
        receipt = None
        for name in self.names:
            w3 = self._reader(name)
            found = quorum_module(w3).wait_for_private_receipt(tx_hash, timeout=timeout)
            if name == sender:
                receipt = found
        return receipt

    def _reader(self, name: str) -> Web3:
        """A w3 on ``name``'s node for reading, without making ``name`` a party of the test."""
        if name in self._parties:
            return self._parties[name].w3
        if name not in self._readers:
            url = self.network.participant(name)["rpc_url"]
            self._readers[name] = attach_quorum(Web3(Web3.HTTPProvider(url)))
        return self._readers[name]

    def deploy(
        self,
        artifact: Artifact | None = None,
        *,
        sender: str,
        parties: Sequence[str],
        args: Sequence[Any] = (),
        abi: Sequence[Any] | None = None,
        bytecode: str | None = None,
        privacy_flag: int = 0,
        mandatory_for: Sequence[str] = (),
        gas: int | None = None,
    ) -> Contract:
        """Deploy ``artifact`` (a solc artifact dict or JSON path; or ``abi`` and
        ``bytecode``) from ``sender``'s fresh account privately for ``parties`` (the
        sender is always one). Returns the contract bound to the sender's w3; raises
        ``PrivateTransactionFailed`` when the creation has status 0. Without ``gas`` the
        node estimates it, and a creation that reverts fails there (web3.py's
        ``ContractLogicError``) before anything is sent."""
        if artifact is not None:
            loaded = load_artifact(artifact)
            abi, bytecode = abi or loaded["abi"], bytecode or loaded.get("bytecode")
        if abi is None or not bytecode:
            raise QuorumNetworkError("deploy needs an artifact, or abi and bytecode")
        party = self.party(sender)
        factory = party.w3.eth.contract(abi=abi, bytecode=bytecode)
        data = factory.constructor(*args).data_in_transaction
        creation: dict[str, Any] = {"data": data}
        if gas is not None:
            creation["gas"] = gas
        receipt = party.send_private(
            creation,
            parties,
            privacy_flag,
            mandatory_for,
            what=f"deploying {_artifact_name(artifact)}",
        )
        return party.contract(str(receipt["contractAddress"]), abi)

    def transact(
        self,
        function: ContractFunction,
        *,
        sender: str,
        parties: Sequence[str],
        privacy_flag: int = 0,
        mandatory_for: Sequence[str] = (),
    ) -> Any:
        """``sender``'s ``Party.transact``: ``function`` may be bound to any party's w3."""
        return self.party(sender).transact(function, parties, privacy_flag, mandatory_for)

    def assert_views(
        self,
        contract: Contract | str,
        fn: str | Callable[[Contract], Any],
        expected: Mapping[str, Any],
        *,
        args: Sequence[Any] = (),
        abi: Sequence[Any] | None = None,
    ) -> None:
        """State what each party sees: ``fn`` is a view function's name (called with
        ``args``) or a callable given the contract bound to the party's w3;
        ``NOT_A_PARTY`` expects no code at the address on that party's node. Fails with
        a table of expected and seen values per party."""
        __tracebackhide__ = True
        rows = []
        for name, wanted in expected.items():
            seen = self._view_of(self.party(name), contract, fn, args, abi)
            rows.append((name, wanted, seen, seen == wanted))
        if not all(ok for *_, ok in rows):
            address = contract if isinstance(contract, str) else contract.address
            if isinstance(fn, str):
                what = f"{fn}({', '.join(repr(arg) for arg in args)})"
            else:
                what = getattr(fn, "__name__", repr(fn))
            raise ViewsDiffer(_views_table(f"views of {what} at {address}", rows))

    def _view_of(
        self,
        party: Party,
        contract: Contract | str,
        fn: str | Callable[[Contract], Any],
        args: Sequence[Any],
        abi: Sequence[Any] | None,
    ) -> Any:
        bound = party.contract(contract, abi)
        if len(party.w3.eth.get_code(bound.address)) == 0:
            return NOT_A_PARTY
        try:
            if isinstance(fn, str):
                return getattr(bound.functions, fn)(*args).call()
            return fn(bound)
        except Exception as exc:  # what the party's node answered is the party's view
            return _Raised(exc)


class _Raised:
    """A view that raised: shown in the table, equal to no expected value."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"raised {type(self.error).__name__}: {self.error}"[:120]


def _views_table(title: str, rows: list[tuple[str, Any, Any, bool]]) -> str:
    header = ("party", "expected", "seen", "")
    cells = [header] + [(n, repr(w), repr(s), "ok" if ok else "DIFFERS") for n, w, s, ok in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title]
    for index, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
