"""Turning JSON-RPC parameters into typed values, with -32602 for anything malformed.

Each parser names the parameter it was reading, so a client learns which one is wrong.
"""

from __future__ import annotations

from typing import Any

from eth_typing import Address, Hash32
from eth_utils import is_hex_address, to_canonical_address

from quorum_node.block_id import BLOCK_TAGS, BlockId
from quorum_node.rpc.errors import InvalidParams
from quorum_node.transaction_request import SignedAuthorization, TransactionRequest

MAX_UINT256 = 2**256 - 1


def expect_params(params: Any, minimum: int, maximum: int) -> list[Any]:
    if params is None:
        params = []
    if not isinstance(params, list):
        raise InvalidParams("params must be an array")
    if not minimum <= len(params) <= maximum:
        expected = str(minimum) if minimum == maximum else f"{minimum} to {maximum}"
        raise InvalidParams(f"expected {expected} params, got {len(params)}")
    return params + [None] * (maximum - len(params))


def quantity(value: Any, name: str, maximum: int = MAX_UINT256) -> int:
    """A hex quantity ("0x1a"); integers are accepted too, as geth does for some clients."""
    if isinstance(value, bool):
        raise InvalidParams(f"{name}: expected a hex quantity")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) > 2:
        try:
            number = int(value[2:], 16)
        except ValueError:
            raise InvalidParams(f"{name}: {value[:80]!r} is not a hex quantity") from None
    else:
        raise InvalidParams(f"{name}: expected a hex quantity, got {str(value)[:80]!r}")
    if not 0 <= number <= maximum:
        raise InvalidParams(f"{name}: {number} is out of range")
    return number


def data(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise InvalidParams(f"{name}: expected 0x-prefixed hex data")
    body = value[2:]
    if len(body) % 2:
        raise InvalidParams(f"{name}: hex data has an odd number of digits")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise InvalidParams(f"{name}: {value[:80]!r} is not hex data") from None


def fixed_data(value: Any, name: str, size: int) -> bytes:
    raw = data(value, name)
    if len(raw) != size:
        raise InvalidParams(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw


def block_hash(value: Any, name: str = "block hash") -> Hash32:
    return Hash32(fixed_data(value, name, 32))


def transaction_hash(value: Any, name: str = "transaction hash") -> Hash32:
    return Hash32(fixed_data(value, name, 32))


def address(value: Any, name: str) -> Address:
    if not isinstance(value, str) or not is_hex_address(value):
        raise InvalidParams(f"{name}: {str(value)[:80]!r} is not an address")
    return Address(to_canonical_address(value))


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(f"{name}: expected true or false")
    return value


def block_id(value: Any, name: str = "block", default: str = "latest") -> BlockId:
    if value is None:
        return BlockId(tag=default)
    if isinstance(value, str):
        if value in BLOCK_TAGS:
            return BlockId(tag=value)
        if len(value) == 66:
            return BlockId(hash=block_hash(value, name))
        return BlockId(number=quantity(value, name, 2**63))
    if isinstance(value, int) and not isinstance(value, bool):
        return BlockId(number=quantity(value, name, 2**63))
    if isinstance(value, dict):
        if "blockHash" in value:
            return BlockId(
                hash=block_hash(value["blockHash"], f"{name}.blockHash"),
                require_canonical=bool(value.get("requireCanonical", False)),
            )
        if "blockNumber" in value:
            return block_id(value["blockNumber"], f"{name}.blockNumber")
    raise InvalidParams(f"{name}: expected a block number, tag or hash")


def authorization_list(value: Any, name: str) -> tuple[SignedAuthorization, ...]:
    if not isinstance(value, list):
        raise InvalidParams(f"{name}: expected an array")
    entries = []
    for index, entry in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            raise InvalidParams(f"{where}: expected an object")
        y_parity = entry.get("yParity", entry.get("v"))
        entries.append(
            SignedAuthorization(
                chain_id=quantity(entry.get("chainId"), f"{where}.chainId"),
                address=address(entry.get("address"), f"{where}.address"),
                nonce=quantity(entry.get("nonce"), f"{where}.nonce", 2**64 - 1),
                y_parity=quantity(y_parity, f"{where}.yParity", 0xFF),
                r=quantity(entry.get("r"), f"{where}.r"),
                s=quantity(entry.get("s"), f"{where}.s"),
            )
        )
    return tuple(entries)


_CALL_KNOWN = {
    "from",
    "to",
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "value",
    "data",
    "input",
    "nonce",
    "accessList",
    "type",
    "chainId",
    "authorizationList",
}


def call_request(value: Any, name: str = "transaction") -> TransactionRequest:
    if not isinstance(value, dict):
        raise InvalidParams(f"{name}: expected an object")

    def optional(key: str, parse: Any, *args: Any) -> Any:
        raw = value.get(key)
        return None if raw is None else parse(raw, f"{name}.{key}", *args)

    payload_in = value.get("input")
    payload_data = value.get("data")
    if payload_in is not None and payload_data is not None and payload_in != payload_data:
        raise InvalidParams(
            f'{name}: both "data" and "input" are set and not equal. Please use "input" '
            "to pass transaction call data"
        )
    payload = payload_in if payload_in is not None else payload_data
    access_list = None
    if value.get("accessList") is not None:
        raw_list = value["accessList"]
        if not isinstance(raw_list, list):
            raise InvalidParams(f"{name}.accessList: expected an array")
        entries = []
        for index, entry in enumerate(raw_list):
            if not isinstance(entry, dict) or not isinstance(entry.get("storageKeys", []), list):
                raise InvalidParams(
                    f"{name}.accessList[{index}]: expected {{address, storageKeys}}"
                )
            entries.append(
                (
                    address(entry.get("address"), f"{name}.accessList[{index}].address"),
                    tuple(
                        int.from_bytes(
                            fixed_data(key, f"{name}.accessList[{index}].storageKeys", 32), "big"
                        )
                        for key in entry.get("storageKeys", [])
                    ),
                )
            )
        access_list = tuple(entries)
    extra = {key: item for key, item in value.items() if key not in _CALL_KNOWN}
    return TransactionRequest(
        sender=optional("from", address),
        to=optional("to", address),
        gas=optional("gas", quantity, 2**64 - 1),
        gas_price=optional("gasPrice", quantity),
        max_fee_per_gas=optional("maxFeePerGas", quantity),
        max_priority_fee_per_gas=optional("maxPriorityFeePerGas", quantity),
        value=optional("value", quantity) or 0,
        data=data(payload, f"{name}.input") if payload is not None else b"",
        nonce=optional("nonce", quantity, 2**64 - 1),
        access_list=access_list,
        transaction_type=optional("type", quantity, 0xFF),
        chain_id=optional("chainId", quantity),
        authorizations=optional("authorizationList", authorization_list),
        extra=extra or None,
    )
