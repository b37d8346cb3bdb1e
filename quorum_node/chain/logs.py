"""Finding logs: the criteria of eth_getLogs, filters and ``logs`` subscriptions.

Each block header carries a bloom filter of its logs' addresses and topics, so a block
that cannot match is skipped without reading its transactions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from eth_bloom import BloomFilter
from eth_typing import Address

from quorum_node.chain.records import LogEntry, TransactionRecord
from quorum_node.chain.service import ChainService

MAX_LOG_RESULTS = 10_000


class TooManyLogs(Exception):
    pass


@dataclass(frozen=True)
class LogCriteria:
    """Addresses (any of) and topics by position (None: any; a tuple: any of those)."""

    addresses: tuple[Address, ...] = ()
    topics: tuple[tuple[bytes, ...] | None, ...] = ()

    def matches(self, log: LogEntry) -> bool:
        if self.addresses and log.address not in self.addresses:
            return False
        if len(self.topics) > len(log.topics):
            return False
        for wanted, actual in zip(self.topics, log.topics, strict=False):
            if wanted is not None and actual not in wanted:
                return False
        return True

    def may_match_bloom(self, bloom_value: int) -> bool:
        bloom = BloomFilter(bloom_value)
        if self.addresses and not any(address in bloom for address in self.addresses):
            return False
        for wanted in self.topics:
            if wanted is not None and not any(topic in bloom for topic in wanted):
                return False
        return True


def matching_logs(
    records: Sequence[TransactionRecord], criteria: LogCriteria
) -> Iterator[tuple[TransactionRecord, int, LogEntry]]:
    for record in records:
        for position, log in enumerate(record.logs):
            if criteria.matches(log):
                yield record, position, log


def find_logs(
    chain: ChainService, first: int, last: int, criteria: LogCriteria
) -> list[tuple[TransactionRecord, int, LogEntry]]:
    """Logs of canonical blocks ``first``..``last`` (inclusive) that match; chain thread."""
    found: list[tuple[TransactionRecord, int, LogEntry]] = []
    for number in range(first, min(last, chain.head.block_number) + 1):
        header = chain.header_by_number(number)
        if header is None:
            continue
        bloom = header.bloom | chain.private_bloom(header)
        if not bloom or not criteria.may_match_bloom(bloom):
            continue
        found.extend(matching_logs(chain.records_of(chain.block_of(header)), criteria))
        if len(found) > MAX_LOG_RESULTS:
            raise TooManyLogs(f"query returned more than {MAX_LOG_RESULTS} results")
    return found
