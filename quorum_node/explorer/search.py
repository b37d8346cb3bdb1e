"""What the search box accepts: a block number, a transaction (or block) hash, an address."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX = re.compile(r"0x[0-9a-fA-F]*\Z")
MAX_BLOCK = 2**63 - 1


class BadSearch(ValueError):
    """Input that is none of the accepted forms; the message says what is accepted."""


@dataclass(frozen=True)
class SearchTarget:
    kind: str  # "block", "hash" (a transaction, else a block) or "address"
    value: str  # decimal block number, or lower-case 0x hex

    @property
    def path(self) -> str:
        if self.kind == "block":
            return f"/block/{self.value}"
        if self.kind == "hash":
            return f"/tx/{self.value}"
        return f"/address/{self.value}"


ACCEPTED = "a block number (42 or 0x2a), a 32-byte transaction hash or a 20-byte address"


def parse_search(text: str) -> SearchTarget:
    query = text.strip()
    if not query:
        raise BadSearch(f"Empty search: enter {ACCEPTED}.")
    if query.isdigit():
        number = int(query)
        if number > MAX_BLOCK:
            raise BadSearch(f"Block number {query} is too large.")
        return SearchTarget("block", str(number))
    if _HEX.match(query):
        digits = query[2:].lower()
        if len(digits) == 64:
            return SearchTarget("hash", "0x" + digits)
        if len(digits) == 40:
            return SearchTarget("address", "0x" + digits)
        if 0 < len(digits) <= 16:
            return SearchTarget("block", str(int(digits, 16)))
        raise BadSearch(
            f"{query[:80]!r} has {len(digits)} hex digits: expected up to 16 (a block "
            "number), 40 (an address) or 64 (a hash)."
        )
    raise BadSearch(f"Cannot search for {query[:80]!r}: enter {ACCEPTED}.")
