"""Calls from this manager to other managers' P2P APIs (aiohttp client).

Every failure becomes ``PeerError`` naming the URL, so callers decide what an
unreachable peer means (a failed send, a skipped discovery round).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tx_manager.config import TlsConfig
from tx_manager.errors import PeerError, TxManagerError
from tx_manager.messages import (
    EnvelopeBatch,
    JsonMessage,
    PartyInfo,
    ResendRequest,
    ResendResponse,
    ValidationRequest,
    ValidationResponse,
)
from tx_manager.payload import EncodedPayload, b64encode
from tx_manager.tls import PinningConnector, client_context

_JSON = {"Content-Type": "application/json"}
_BINARY = {"Content-Type": "application/octet-stream"}


class PeerClient:
    def __init__(self, tls: TlsConfig, timeout: float) -> None:
        self._tls = tls
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            options: dict[str, Any] = {"limit": 256, "limit_per_host": 64}
            context = client_context(self._tls)
            if context is not None:
                options["ssl"] = context
            connector: aiohttp.TCPConnector
            if self._tls.mode == "allowlist":
                connector = PinningConnector(frozenset(self._tls.allowed_fingerprints), **options)
            else:
                connector = aiohttp.TCPConnector(**options)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, url: str, path: str, body: bytes, headers: dict[str, str], expect: int
    ) -> bytes:
        try:
            async with self._client().post(url + path, data=body, headers=headers) as response:
                content = await response.read()
                if response.status != expect:
                    reason = content[:300].decode("utf-8", "replace")
                    raise PeerError(url, f"HTTP {response.status}: {reason}", response.status)
                return content
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerError(url, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def _post_json(self, url: str, path: str, message: JsonMessage, expect: int) -> bytes:
        return await self._post(url, path, message.to_bytes(), _JSON, expect)

    async def push(self, url: str, envelope: EncodedPayload) -> None:
        headers = dict(_BINARY)
        headers["c11n-key"] = b64encode(envelope.hash)
        await self._post(url, "/push", envelope.to_bytes(), headers, 201)

    async def push_batch(self, url: str, envelopes: list[EncodedPayload]) -> None:
        await self._post(
            url, "/pushBatch", EnvelopeBatch(tuple(envelopes)).to_bytes(), _BINARY, 201
        )

    async def exchange_partyinfo(self, url: str, info: PartyInfo) -> PartyInfo:
        body = await self._post_json(url, "/partyinfo", info, 200)
        return self._decode(url, PartyInfo, body)

    async def validate(self, url: str, request: ValidationRequest) -> bytes:
        body = await self._post_json(url, "/partyinfo/validate", request, 200)
        return self._decode(url, ValidationResponse, body).value

    async def resend(self, url: str, request: ResendRequest) -> int:
        body = await self._post_json(url, "/resend", request, 200)
        return self._decode(url, ResendResponse, body).pushed

    @staticmethod
    def _decode(url: str, kind: type[Any], body: bytes) -> Any:
        try:
            return kind.from_bytes(body)
        except TxManagerError as exc:
            raise PeerError(url, f"malformed reply: {exc.message}") from exc
