"""Who holds which public key at which P2P URL: the manager's routing table.

A pure, in-memory registry (no I/O). Claims learnt from gossip are not trusted
until ``Discovery`` has made the claimed URL prove it holds the private key;
only then does ``accept`` route the key there (this closes Tessera issue #649,
where anyone could redirect a key's traffic by advertising it).
"""

from __future__ import annotations

from collections.abc import Iterable

from tx_manager.messages import PartyInfo


class PartyRegistry:
    def __init__(self, local_keys: Iterable[bytes], configured_peers: Iterable[str]) -> None:
        self._local_keys = tuple(local_keys)
        self.self_url = ""
        self._peers: dict[str, None] = {}
        self._key_urls: dict[bytes, str] = {}
        for url in configured_peers:
            self.add_peer(url)

    def set_self_url(self, url: str) -> None:
        self.self_url = url.rstrip("/")
        self._peers.pop(self.self_url, None)

    def add_peer(self, url: str) -> bool:
        """Remember a peer URL; True if it was new."""
        url = url.rstrip("/")
        if url == self.self_url or url in self._peers:
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

    def accept(self, key: bytes, url: str) -> None:
        """Route ``key`` to ``url``; call only after the URL proved it holds the key."""
        self._key_urls[key] = url
        self.add_peer(url)

    def snapshot(self) -> PartyInfo:
        keys = [(key, self.self_url) for key in self._local_keys]
        keys.extend(self._key_urls.items())
        return PartyInfo(url=self.self_url, peers=self.peers, keys=tuple(keys))
