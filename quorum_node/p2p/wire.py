"""What nodes send each other: transactions and blocks as RLP, status as JSON.

Blocks travel whole (header, transactions) and are verified by the receiver: the
header hash must be the one the Raft log agreed on, and re-executing the block must
reproduce its state root (``ChainService.import_block``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp

MAX_BLOCKS_PER_REQUEST = 64


class WireError(Exception):
    """A peer sent bytes that do not decode as what the endpoint expects."""


def encode_list(items: Sequence[bytes]) -> bytes:
    return bytes(rlp.encode(list(items)))


def decode_list(encoded: bytes, what: str) -> list[bytes]:
    try:
        items = rlp.decode(encoded)
    except rlp.exceptions.DecodingError as exc:
        raise WireError(f"{what}: not RLP: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(item, bytes) for item in items):
        raise WireError(f"{what}: expected a list of byte strings")
    return items


@dataclass(frozen=True)
class PeerStatus:
    version: int
    node_id: str
    chain_id: int
    genesis_hash: str
    head_number: int
    head_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "nodeId": self.node_id,
            "chainId": self.chain_id,
            "genesisHash": self.genesis_hash,
            "headNumber": self.head_number,
            "headHash": self.head_hash,
        }

    @classmethod
    def from_json(cls, raw: Any) -> PeerStatus:
        try:
            return cls(
                version=int(raw["version"]),
                node_id=str(raw["nodeId"]),
                chain_id=int(raw["chainId"]),
                genesis_hash=str(raw["genesisHash"]),
                head_number=int(raw["headNumber"]),
                head_hash=str(raw["headHash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"status: {exc}") from None
