"""Checks of ``eth_signTypedData`` parameters that eth-account does not make."""

from __future__ import annotations

import re
from typing import Any

from quorum_node.rpc.errors import InvalidParams

_ARRAY_SUFFIX = re.compile(r"^(?P<element>.+)\[(?P<length>\d*)\]$")


def check_typed_data_arrays(typed_data: dict[str, Any]) -> None:
    """Refuse EIP-712 data whose fixed-size arrays hold the wrong number of items.

    eth-account hashes ``Person[2]`` with one item without complaint, which would sign a
    message no verifier can reproduce; the message is web3.py's own wording for it.
    """
    types = typed_data.get("types")
    if not isinstance(types, dict):
        raise InvalidParams('typed data: "types" must be an object')

    def check(type_name: str, value: Any) -> None:
        array = _ARRAY_SUFFIX.match(type_name)
        if array is not None:
            if not isinstance(value, list):
                raise InvalidParams(f"typed data: expected an array for type {type_name}")
            if array["length"] and len(value) != int(array["length"]):
                raise InvalidParams(
                    f"Expected {array['length']} items for array type {type_name}, "
                    f"got {len(value)} items"
                )
            for item in value:
                check(array["element"], item)
            return
        fields = types.get(type_name)
        if isinstance(fields, list) and isinstance(value, dict):
            for field in fields:
                if isinstance(field, dict) and field.get("name") in value:
                    check(str(field.get("type")), value[field["name"]])

    check("EIP712Domain", typed_data.get("domain"))
    check(str(typed_data.get("primaryType")), typed_data.get("message"))
