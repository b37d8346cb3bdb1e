"""The committed contract artifacts: fresh, reproducible, and working on py-evm's PragueVM.

Three layers, from cheapest to most thorough:

* without node: every ``quorum_node/contracts/*.json`` names a source whose sha256 is
  still the one it was built from, so editing a ``.sol`` without running
  ``make contracts`` fails here;
* with node and ``contracts/node_modules/solc``: recompiling into a temporary
  folder gives byte-identical artifacts;
* on a bare in-memory py-evm chain (no node code involved): each contract is
  deployed and exercised, which also proves that solc's default EVM version
  (recorded in the artifacts) emits nothing PragueVM lacks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from eth.abc import ComputationAPI, SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.consensus.noproof import NoProofConsensus
from eth.db.atomic import AtomicDB
from eth.typing import AccountDetails
from eth.vm.forks.prague import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_keys.datatypes import PrivateKey
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector, keccak, to_canonical_address, to_wei

from quorum_node import contracts

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
#: Where compile.js writes the artifacts: the package folder that ships them.
ARTIFACT_DIR = ROOT / "quorum_node" / "contracts"
SOURCE_DIR = CONTRACTS_DIR / "src"

EXPECTED_CONTRACTS = {"Counter", "CounterCaller", "DvP", "Opcodes", "SimpleStorage", "Token"}
ARTIFACT_KEYS = {
    "abi",
    "bytecode",
    "compiler",
    "contractName",
    "deployedBytecode",
    "methodIdentifiers",
    "sourceFile",
    "sourceSha256",
}

CHAIN_ID = 1337
GAS_PRICE = 10**10
ERROR_SELECTOR = function_signature_to_4byte_selector("Error(string)")
PANIC_SELECTOR = function_signature_to_4byte_selector("Panic(uint256)")


def load_artifacts(artifact_dir: Path = ARTIFACT_DIR) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(artifact_dir.glob("*.json"))}


# --- Artifacts on disk -------------------------------------------------------


def test_artifacts_cover_every_contract_and_have_the_documented_format() -> None:
    artifacts = load_artifacts()
    assert set(artifacts) == EXPECTED_CONTRACTS
    for name, artifact in artifacts.items():
        assert set(artifact) == ARTIFACT_KEYS, name
        assert artifact["contractName"] == name
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2
        assert artifact["deployedBytecode"].startswith("0x")
        assert artifact["compiler"]["optimizer"] == {"enabled": True, "runs": 200}
        assert artifact["compiler"]["version"].startswith("0.8.37+commit.")
        # Stable formatting: what compile.js writes is exactly this re-dump.
        text = (ARTIFACT_DIR / f"{name}.json").read_text()
        assert text == json.dumps(artifact, indent=2, sort_keys=True) + "\n", name


def test_artifacts_were_built_from_the_current_sources() -> None:
    """Runs without node: a source edited after the last `make contracts` fails here."""
    artifacts = load_artifacts()
    built_from = {artifact["sourceFile"] for artifact in artifacts.values()}
    on_disk = {f"src/{path.name}" for path in SOURCE_DIR.glob("*.sol")}
    assert on_disk <= built_from, f"sources with no artifact: {sorted(on_disk - built_from)}"
    for name, artifact in artifacts.items():
        source = CONTRACTS_DIR / artifact["sourceFile"]
        assert source.is_file(), f"{name}: {artifact['sourceFile']} is gone"
        actual = hashlib.sha256(source.read_bytes()).hexdigest()
        assert artifact["sourceSha256"] == actual, (
            f"{artifact['sourceFile']} changed since {name}.json was built; run `make contracts`"
        )


def code_opcodes(code: bytes) -> Iterator[int]:
    """The opcodes of runtime code, skipping PUSH data and solc's CBOR metadata trailer."""
    # solc appends CBOR metadata whose length is the code's last two bytes.
    metadata_length = int.from_bytes(code[-2:], "big") + 2
    body = code[:-metadata_length]
    pc = 0
    while pc < len(body):
        opcode = body[pc]
        yield opcode
        pc += 1 + (opcode - 0x5F if 0x60 <= opcode <= 0x7F else 0)


def test_no_artifact_uses_an_opcode_newer_than_prague() -> None:
    """solc's default target is osaka; its only new opcode, CLZ (0x1e), must not appear."""
    clz = 0x1E
    for name, artifact in load_artifacts().items():
        code = bytes.fromhex(artifact["deployedBytecode"][2:])
        assert clz not in set(code_opcodes(code)), f"{name} uses CLZ: compile for prague"


def test_opcodes_contract_contains_the_cancun_opcodes() -> None:
    push0, mcopy, tstore, tload = 0x5F, 0x5E, 0x5D, 0x5C
    code = bytes.fromhex(load_artifacts()["Opcodes"]["deployedBytecode"][2:])
    assert {push0, mcopy, tstore, tload} <= set(code_opcodes(code))


def test_the_package_reads_the_same_artifacts() -> None:
    """What the demo and an installed wheel read (``importlib.resources``) is this folder."""
    assert contracts.names() == sorted(EXPECTED_CONTRACTS)
    for name, artifact in load_artifacts().items():
        assert contracts.artifact(name) == artifact
    with pytest.raises(contracts.UnknownArtifact, match="shipped: Counter"):
        contracts.artifact("NoSuchContract")


# --- Reproducible compilation ------------------------------------------------


def test_recompiling_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the sourceSha256 check still ran")
    if not (CONTRACTS_DIR / "node_modules" / "solc").is_dir():
        pytest.skip("contracts/node_modules/solc is missing; run `make contracts` (npm ci)")
    subprocess.run(
        [node, "compile.js", str(tmp_path)],
        cwd=CONTRACTS_DIR,
        check=True,
        capture_output=True,
        timeout=60,
    )
    committed = sorted(path.name for path in ARTIFACT_DIR.glob("*.json"))
    rebuilt = sorted(path.name for path in tmp_path.glob("*.json"))
    assert rebuilt == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (ARTIFACT_DIR / name).read_bytes(), name


# --- Running on PragueVM -----------------------------------------------------


class TxFailed(Exception):
    """A transaction or call reverted; `output` holds the revert data."""

    def __init__(self, what: str, output: bytes) -> None:
        super().__init__(f"{what} reverted with 0x{output.hex()}")
        self.output = output


@dataclass
class Account:
    key: PrivateKey

    @property
    def address(self) -> Address:
        return Address(self.key.public_key.to_canonical_address())


class Contract:
    """An artifact's ABI bound to an address on a BareChain."""

    def __init__(self, chain: BareChain, artifact: dict[str, Any], address: Address) -> None:
        self.chain = chain
        self.address = address
        self._functions = {
            entry["name"]: entry for entry in artifact["abi"] if entry["type"] == "function"
        }

    def _encode(self, name: str, args: Sequence[Any]) -> tuple[bytes, list[str]]:
        entry = self._functions[name]
        input_types = [param["type"] for param in entry["inputs"]]
        selector = function_signature_to_4byte_selector(f"{name}({','.join(input_types)})")
        output_types = [param["type"] for param in entry["outputs"]]
        return selector + abi_encode(input_types, list(args)), output_types

    def call(self, name: str, *args: Any, sender: Account | None = None) -> Any:
        data, output_types = self._encode(name, args)
        output = self.chain.call(sender or self.chain.accounts[0], self.address, data)
        return _single(abi_decode(output_types, output))

    def send(self, sender: Account, name: str, *args: Any) -> ComputationAPI:
        data, _ = self._encode(name, args)
        return self.chain.send(sender, self.address, data)

    def transact(self, sender: Account, name: str, *args: Any) -> Any:
        """Sends a transaction and decodes what the function returned."""
        _, output_types = self._encode(name, args)
        computation = self.send(sender, name, *args)
        return _single(abi_decode(output_types, computation.output))


def _single(values: tuple[Any, ...]) -> Any:
    if len(values) == 0:
        return None
    return values[0] if len(values) == 1 else values


class BareChain:
    """A bare py-evm chain: PragueVM, no proof of work, three funded accounts."""

    def __init__(self) -> None:
        self.accounts = [Account(PrivateKey(bytes([i]) * 32)) for i in (1, 2, 3)]
        chain_class = MiningChain.configure(
            __name__="ContractsBareChain",
            vm_configuration=((0, PragueVM.configure(consensus_class=NoProofConsensus)),),
            chain_id=CHAIN_ID,
        )
        genesis_state: dict[Address, AccountDetails] = {
            account.address: {
                "balance": to_wei(1000, "ether"),
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for account in self.accounts
        }
        self.chain = cast(
            MiningChain,
            chain_class.from_genesis(
                AtomicDB(),
                {"difficulty": 0, "gas_limit": 30_000_000, "timestamp": 1},
                genesis_state,
            ),
        )
        self.artifacts = load_artifacts()

    def _nonce(self, account: Account) -> int:
        return self.chain.get_vm().state.get_nonce(account.address)

    def send(self, sender: Account, to: Address, data: bytes) -> ComputationAPI:
        vm = self.chain.get_vm()
        transaction = vm.create_unsigned_transaction(
            nonce=self._nonce(sender),
            gas_price=GAS_PRICE,
            gas=3_000_000,
            to=to,
            value=0,
            data=data,
        ).as_signed_transaction(sender.key, chain_id=CHAIN_ID)
        _, _, computation = self.chain.apply_transaction(transaction)
        if computation.is_error:
            raise TxFailed("transaction", computation.output)
        return computation

    def call(self, sender: Account, to: Address, data: bytes) -> bytes:
        vm = self.chain.get_vm()
        transaction = vm.create_unsigned_transaction(
            nonce=self._nonce(sender),
            gas_price=GAS_PRICE,
            gas=3_000_000,
            to=to,
            value=0,
            data=data,
        )
        with vm.in_costless_state() as state:
            computation = state.costless_execute_transaction(
                cast(SignedTransactionAPI, SpoofTransaction(transaction, from_=sender.address))
            )
        if computation.is_error:
            raise TxFailed("call", computation.output)
        return computation.output

    def deploy(self, deployer: Account, name: str, *constructor_args: Any) -> Contract:
        artifact = self.artifacts[name]
        constructor = [entry for entry in artifact["abi"] if entry["type"] == "constructor"]
        arg_types = [param["type"] for param in constructor[0]["inputs"]] if constructor else []
        init_code = bytes.fromhex(artifact["bytecode"][2:]) + abi_encode(
            arg_types, list(constructor_args)
        )
        computation = self.send(deployer, Address(b""), init_code)
        address = computation.msg.storage_address
        deployed = self.chain.get_vm().state.get_code(address)
        # Same length, not same bytes: immutables are filled in at deployment.
        assert len(deployed) == len(artifact["deployedBytecode"]) // 2 - 1, name
        return Contract(self, artifact, address)


def revert_reason(output: bytes) -> str:
    assert output[:4] == ERROR_SELECTOR, f"not Error(string): 0x{output.hex()}"
    (reason,) = abi_decode(["string"], output[4:])
    return str(reason)


@pytest.fixture
def chain() -> BareChain:
    return BareChain()


def test_simple_storage_holds_the_constructor_value_then_the_set_one(chain: BareChain) -> None:
    owner = chain.accounts[0]
    storage = chain.deploy(owner, "SimpleStorage", 42)
    assert storage.call("get") == 42
    assert storage.call("storedData") == 42

    computation = storage.send(owner, "set", 7)
    assert storage.call("get") == 7
    (log,) = computation.get_log_entries()
    log_address, topics, data = log
    assert log_address == storage.address
    assert topics[0] == int.from_bytes(keccak(text="Stored(address,uint256)"), "big")
    assert topics[1] == int.from_bytes(owner.address, "big")
    assert abi_decode(["uint256"], data) == (7,)


def test_token_transfer_moves_balances_and_reverts_with_a_reason(chain: BareChain) -> None:
    alice, bob, _ = chain.accounts
    token = chain.deploy(alice, "Token", "Bond 2030", "BND30", 1_000)
    assert token.call("name") == "Bond 2030"
    assert token.call("symbol") == "BND30"
    assert token.call("decimals") == 18
    assert token.call("totalSupply") == 1_000
    assert token.call("balanceOf", alice.address) == 1_000

    assert token.transact(alice, "transfer", bob.address, 300) is True
    assert token.call("balanceOf", alice.address) == 700
    assert token.call("balanceOf", bob.address) == 300

    with pytest.raises(TxFailed) as failure:
        token.transact(bob, "transfer", alice.address, 301)
    assert revert_reason(failure.value.output) == "Token: insufficient balance"
    assert token.call("balanceOf", bob.address) == 300


def test_token_transfer_from_spends_the_allowance(chain: BareChain) -> None:
    alice, bob, carol = chain.accounts
    token = chain.deploy(alice, "Token", "Cash", "EURC", 500)
    token.transact(alice, "approve", bob.address, 200)
    assert token.call("allowance", alice.address, bob.address) == 200

    token.transact(bob, "transferFrom", alice.address, carol.address, 150)
    assert token.call("balanceOf", carol.address) == 150
    assert token.call("allowance", alice.address, bob.address) == 50
    with pytest.raises(TxFailed) as failure:
        token.transact(bob, "transferFrom", alice.address, carol.address, 51)
    assert revert_reason(failure.value.output) == "Token: insufficient allowance"


def test_dvp_settles_both_legs_or_neither(chain: BareChain) -> None:
    seller, buyer, venue = chain.accounts
    security = chain.deploy(seller, "Token", "Bond 2030", "BND30", 100)
    cash = chain.deploy(buyer, "Token", "Cash", "EURC", 10_000)
    dvp = chain.deploy(venue, "DvP")
    security.transact(seller, "approve", dvp.address, 100)
    cash.transact(buyer, "approve", dvp.address, 2**256 - 1)

    dvp.transact(
        venue, "settle", security.address, cash.address, seller.address, buyer.address, 10, 9_000
    )
    assert security.call("balanceOf", seller.address) == 90
    assert security.call("balanceOf", buyer.address) == 10
    assert cash.call("balanceOf", buyer.address) == 1_000
    assert cash.call("balanceOf", seller.address) == 9_000

    # The security leg would succeed, the cash leg cannot: nothing moves.
    with pytest.raises(TxFailed) as failure:
        dvp.transact(
            venue,
            "settle",
            security.address,
            cash.address,
            seller.address,
            buyer.address,
            10,
            1_001,
        )
    assert revert_reason(failure.value.output) == "Token: insufficient balance"
    assert security.call("balanceOf", seller.address) == 90
    assert security.call("balanceOf", buyer.address) == 10
    assert cash.call("balanceOf", buyer.address) == 1_000
    assert cash.call("balanceOf", seller.address) == 9_000
    assert security.call("allowance", seller.address, dvp.address) == 90


def test_counter_caller_reads_and_writes_its_target(chain: BareChain) -> None:
    """On one public chain both work; the privacy tests forbid the write across states."""
    user = chain.accounts[0]
    counter = chain.deploy(user, "Counter")
    caller = chain.deploy(user, "CounterCaller", counter.address)
    assert to_canonical_address(caller.call("target")) == counter.address
    counter.transact(user, "increment")
    assert caller.call("readTarget") == 1
    caller.transact(user, "writeTarget")
    assert counter.call("count") == 2


def test_opcodes_run_transient_storage_and_mcopy(chain: BareChain) -> None:
    user = chain.accounts[0]
    opcodes = chain.deploy(user, "Opcodes")
    assert opcodes.transact(user, "transientRoundTrip", 41) == 42
    assert opcodes.transact(user, "transientVariable", 7) == 7
    # Transient storage is gone once the transaction that wrote it ends.
    assert opcodes.call("readTransientVariable") == 0

    payload = bytes(range(256)) * 3 + b"tail"
    assert opcodes.call("copyBytes", payload) == payload
    assert opcodes.call("copyBytes", b"") == b""
    assert opcodes.call("concat", b"delivery-", b"versus-payment") == b"delivery-versus-payment"


def test_opcodes_reverts_in_each_of_soliditys_three_ways(chain: BareChain) -> None:
    user = chain.accounts[0]
    opcodes = chain.deploy(user, "Opcodes")

    with pytest.raises(TxFailed) as failure:
        opcodes.call("failWithReason")
    assert revert_reason(failure.value.output) == "Opcodes: reason string"

    with pytest.raises(TxFailed) as failure:
        opcodes.call("failWithCustomError", sender=user)
    selector = function_signature_to_4byte_selector("Unauthorized(address,uint256)")
    assert failure.value.output[:4] == selector
    caller, code = abi_decode(["address", "uint256"], failure.value.output[4:])
    assert (to_canonical_address(caller), code) == (user.address, 42)

    with pytest.raises(TxFailed) as failure:
        opcodes.call("failWithPanic")
    assert failure.value.output[:4] == PANIC_SELECTOR
    assert abi_decode(["uint256"], failure.value.output[4:]) == (1,)
