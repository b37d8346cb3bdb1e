"""Who holds which public key at which P2P URL: the manager's routing table.

A pure, in-memory registry (no I/O). Claims learnt from gossip are not trusted
until ``Discovery`` has made the claimed URL prove it holds the private key;
only then does ``accept`` route the key there (this closes Tessera issue #649,
where anyone could redirect a key's traffic by advertising it).

Both tables are bounded: gossip may come from anyone, so at most ``max_peers``
peer URLs and ``max_key_routes`` key routes are kept. What does not fit is
ignored (and counted, so the caller can log it once); configured peers are
always kept, and a known key may always move to a newly proven URL.
"""

from __future__ import annotations

from collections.abc import Iterable

from tx_manager.messages import PartyInfo

DEFAULT_MAX_PEERS = 1024
DEFAULT_MAX_KEY_ROUTES = 4096


class PartyRegistry:
    def __init__(
        self,
        local_keys: Iterable[bytes],
        configured_peers: Iterable[str],
        max_peers: int = DEFAULT_MAX_PEERS,
        max_key_routes: int = DEFAULT_MAX_KEY_ROUTES,
    ) -> None:
        self._local_keys = tuple(local_keys)
        self.self_url = ""
        self._peers: dict[str, None] = {}
        self._key_urls: dict[bytes, str] = {}
        self.max_peers = max_peers
        self.max_key_routes = max_key_routes
        self.ignored_peers = 0
        self.ignored_keys = 0
        for url in configured_peers:
            self._peers[url.rstrip("/")] = None

    def set_self_url(self, url: str) -> None:
        self.self_url = url.rstrip("/")
        self._peers.pop(self.self_url, None)

    def add_peer(self, url: str) -> bool:
        """Remember a peer URL; True if it was new (False too when the table is full)."""
        url = url.rstrip("/")
        if url == self.self_url or url in self._peers:
            return False
        if len(self._peers) >= self.max_peers:
            self.ignored_peers += 1
            return False
        self._peers[url] = None
        return True

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(self._peers)

    def url_for(self, key: bytes) -> str | None:
        return self._key_urls.get(key)

    def unverified_claims(self, info: PartyInfo) -> list[tuple[bytes, str]]:
        """Claims in ``info`` that would change routing: new keys or keys at a new URL."""
        return [
            (key, url)
            for key, url in info.keys
            if key not in self._local_keys
            and url != self.self_url
            and self._key_urls.get(key) != url
        ]

    @property
    def key_room(self) -> int:
        """How many more keys can be routed."""
        return max(0, self.max_key_routes - len(self._key_urls))

    def accept(self, key: bytes, url: str) -> bool:
        """Route ``key`` to ``url``; call only after the URL proved it holds the key.

        False if the key is new and the table is full (nothing changes then).
        """
        if key not in self._key_urls and len(self._key_urls) >= self.max_key_routes:
            self.ignored_keys += 1
            return False
        self._key_urls[key] = url
        self.add_peer(url)
        return True

    def snapshot(self) -> PartyInfo:
        keys = [(key, self.self_url) for key in self._local_keys]
        keys.extend(self._key_urls.items())
        return PartyInfo(url=self.self_url, peers=self.peers, keys=tuple(keys))
