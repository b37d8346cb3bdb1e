"""The genesis file, in the shape geth users know (``geth init genesis.json``).

Only the fields a quorum-py chain uses are read; unknown keys (fork blocks in ``config``,
``istanbul`` or ``raft`` sections copied from a GoQuorum file) are ignored, so a user can
reuse an existing file. A chain id of 1 is refused: GoQuorum marks private transactions
with v = 37/38, which collides with EIP-155 signatures of chain 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.typing import AccountState
from eth_typing import Address
from eth_utils import decode_hex, encode_hex, is_hex_address, to_canonical_address

from quorum_node.errors import ConfigError

DEFAULT_GAS_LIMIT = 0x3B9ACA00  # 1e9: room for ~19,000 token transfers in one block
DEFAULT_CHAIN_ID = 1337


def _parse_quantity(value: Any, what: str) -> int:
    """Accept geth's forms: 0x-hex strings, decimal strings and JSON integers."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            raise ConfigError(f"{what}: {value!r} is not a number") from None
    else:
        raise ConfigError(f"{what}: expected a number, got {type(value).__name__}")
    if number < 0:
        raise ConfigError(f"{what}: must not be negative")
    return number


def _parse_bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a 0x-hex string")
    try:
        return decode_hex(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: {value!r} is not hex") from None


@dataclass(frozen=True)
class GenesisAccount:
    """One entry of ``alloc``: what an address holds before block 1."""

    balance: int = 0
    nonce: int = 0
    code: bytes = b""
    storage: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"balance": hex(self.balance)}
        if self.nonce:
            entry["nonce"] = hex(self.nonce)
        if self.code:
            entry["code"] = encode_hex(self.code)
        if self.storage:
            entry["storage"] = {
                "0x" + slot.to_bytes(32, "big").hex(): "0x" + value.to_bytes(32, "big").hex()
                for slot, value in sorted(self.storage.items())
            }
        return entry

    @classmethod
    def from_json(cls, raw: Any, what: str) -> GenesisAccount:
        if not isinstance(raw, dict):
            raise ConfigError(f"{what}: expected an object")
        storage_raw = raw.get("storage", {})
        if not isinstance(storage_raw, dict):
            raise ConfigError(f"{what}.storage: expected an object")
        return cls(
            balance=_parse_quantity(raw.get("balance", 0), f"{what}.balance"),
            nonce=_parse_quantity(raw.get("nonce", 0), f"{what}.nonce"),
            code=_parse_bytes(raw.get("code", "0x"), f"{what}.code"),
            storage={
                _parse_quantity(slot, f"{what}.storage key"): _parse_quantity(
                    value, f"{what}.storage[{slot}]"
                )
                for slot, value in storage_raw.items()
            },
        )


@dataclass(frozen=True)
class Genesis:
    """A chain's first block and initial state."""

    chain_id: int = DEFAULT_CHAIN_ID
    gas_limit: int = DEFAULT_GAS_LIMIT
    timestamp: int = 0
    extra_data: bytes = b""
    coinbase: Address = Address(b"\x00" * 20)
    alloc: dict[Address, GenesisAccount] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.chain_id == 1:
            raise ConfigError(
                "chainId 1 is not allowed: private transactions are signed with v = 37/38, "
                "which EIP-155 reads as chain 1"
            )
        if self.chain_id <= 0:
            raise ConfigError("chainId must be a positive number")
        if len(self.extra_data) > 32:
            raise ConfigError("extraData must be at most 32 bytes (web3.py refuses longer)")
        if self.gas_limit < 5000:
            raise ConfigError("gasLimit must be at least 5000")

    def to_json(self) -> dict[str, Any]:
        return {
            "config": {"chainId": self.chain_id, "quorumpy": {"fork": "prague", "freeGas": True}},
            "nonce": "0x0",
            "timestamp": hex(self.timestamp),
            "extraData": encode_hex(self.extra_data),
            "gasLimit": hex(self.gas_limit),
            "difficulty": "0x0",
            "coinbase": encode_hex(self.coinbase),
            "alloc": {
                encode_hex(address): account.to_json()
                for address, account in sorted(self.alloc.items())
            },
        }

    @classmethod
    def from_json(cls, raw: Any) -> Genesis:
        if not isinstance(raw, dict):
            raise ConfigError("genesis: expected a JSON object")
        config = raw.get("config", {})
        if not isinstance(config, dict):
            raise ConfigError("genesis.config: expected an object")
        alloc_raw = raw.get("alloc", {})
        if not isinstance(alloc_raw, dict):
            raise ConfigError("genesis.alloc: expected an object")
        alloc: dict[Address, GenesisAccount] = {}
        for address_text, account_raw in alloc_raw.items():
            prefixed = address_text if address_text.startswith("0x") else "0x" + address_text
            if not is_hex_address(prefixed):
                raise ConfigError(f"genesis.alloc: {address_text!r} is not an address")
            alloc[Address(to_canonical_address(prefixed))] = GenesisAccount.from_json(
                account_raw, f"genesis.alloc[{address_text}]"
            )
        coinbase_text = raw.get("coinbase", "0x" + "00" * 20)
        if not isinstance(coinbase_text, str) or not is_hex_address(coinbase_text):
            raise ConfigError("genesis.coinbase: expected an address")
        return cls(
            chain_id=_parse_quantity(
                config.get("chainId", DEFAULT_CHAIN_ID), "genesis.config.chainId"
            ),
            gas_limit=_parse_quantity(raw.get("gasLimit", DEFAULT_GAS_LIMIT), "genesis.gasLimit"),
            timestamp=_parse_quantity(raw.get("timestamp", 0), "genesis.timestamp"),
            extra_data=_parse_bytes(raw.get("extraData", "0x"), "genesis.extraData"),
            coinbase=Address(to_canonical_address(coinbase_text)),
            alloc=alloc,
        )

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            raw = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read genesis file {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"genesis file {path} is not valid JSON: {exc}") from None
        return cls.from_json(raw)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def header_params(self) -> dict[str, Any]:
        """The parameters py-evm's ``Chain.from_genesis`` takes for block 0."""
        return {
            "difficulty": 0,
            "gas_limit": self.gas_limit,
            "timestamp": self.timestamp,
            "extra_data": self.extra_data,
            "coinbase": self.coinbase,
            "base_fee_per_gas": 0,
            "nonce": b"\x00" * 8,
        }

    def state(self) -> AccountState:
        """The initial state in py-evm's ``AccountState`` shape."""
        return {
            address: {
                "balance": account.balance,
                "nonce": account.nonce,
                "code": account.code,
                "storage": dict(account.storage),
            }
            for address, account in self.alloc.items()
        }
