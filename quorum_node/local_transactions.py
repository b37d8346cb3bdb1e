"""Transactions this node acknowledged to its own clients, kept until they are mined.

geth keeps a journal of its local transactions (``transactions.rlp``) so that a restart
does not lose them. Here each transaction a client sent to this node
(``eth_sendTransaction``, ``eth_sendRawTransaction``, the private sends) is written to
the chain database in the same trip to the chain thread that admits it, before the
client hears its hash, one commit for every send of that trip. After a restart the node
sends each again once it has caught up with the cluster, unless it was mined or another
transaction took its nonce; only then is it forgotten. Transactions other nodes forwarded
are not kept here: the node that acknowledged them keeps them.

A mined transaction is forgotten after its block, in batches (``forget_later``), off
the path of the block itself; if the node dies first, the replay sees the receipt and
forgets it then.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Protocol

from eth.abc import AtomicWriteBatchAPI

_KEY = b"quorum-py:local-transaction:"


class JournalStore(Protocol):
    """The chain database as the journal uses it (``chain.db.OverlayAtomicDB``)."""

    def atomic_batch(self) -> AbstractContextManager[AtomicWriteBatchAPI]: ...

    def committed_items(self, prefix: bytes) -> list[tuple[bytes, bytes]]: ...


class LocalTransactions:
    """The journal; every method but ``forget_later`` runs on the chain thread, which
    the event loop's ``forget_later`` meets only under ``_lock``."""

    def __init__(self, store: JournalStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        #: Hashes journaled and not yet forgotten.
        self.kept: set[bytes] = set()
        self._to_forget: set[bytes] = set()

    def load(self) -> dict[bytes, bytes]:
        """Every kept transaction, raw, by hash (at start)."""
        kept = {key[len(_KEY) :]: value for key, value in self._store.committed_items(_KEY)}
        with self._lock:
            self.kept = set(kept)
        return kept

    def keep(self, raw_by_hash: dict[bytes, bytes]) -> None:
        """Write ``raw_by_hash`` in one durable commit (with what waits to be forgotten)."""
        with self._lock:
            forget, self._to_forget = self._to_forget - raw_by_hash.keys(), set()
        with self._store.atomic_batch() as batch:
            for transaction_hash, raw in raw_by_hash.items():
                batch[_KEY + transaction_hash] = raw
            for transaction_hash in forget:
                batch.delete(_KEY + transaction_hash)
        with self._lock:
            self.kept.update(raw_by_hash)
            self.kept.difference_update(forget)

    def forget(self, hashes: Iterable[bytes]) -> None:
        """Delete ``hashes`` (and whatever waits to be forgotten) now."""
        with self._lock:
            self._to_forget.update(hashes)
        self.keep({})

    def forget_later(self, hashes: Iterable[bytes]) -> bool:
        """Note mined transactions to delete with the next write; True if any of them
        is kept (then somebody should call ``flush`` soon)."""
        with self._lock:
            mined = self.kept.intersection(hashes)
            self._to_forget.update(mined)
        return bool(mined)

    def flush(self) -> None:
        if self._to_forget:
            self.keep({})
