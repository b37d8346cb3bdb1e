"""SSL contexts for the P2P and Q2T APIs and the certificate fingerprint allow-list.

Python's ``ssl`` module has no per-certificate verification callback, so the
handshake always verifies against ``ca`` (a CA, or a bundle of self-signed peer
certificates); in ``allowlist`` mode each side then also checks the peer's
SHA-256 DER fingerprint before any request is sent or handled.
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection

from tx_manager.config import Q2tTlsConfig, TlsConfig
from tx_manager.errors import ManagerConfigError


def fingerprint(der_certificate: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex without separators."""
    return hashlib.sha256(der_certificate).hexdigest()


def peer_fingerprint(ssl_object: Any) -> str | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return None if der is None else fingerprint(der)


def _load(context: ssl.SSLContext, tls: TlsConfig) -> ssl.SSLContext:
    try:
        if tls.cert is not None and tls.key is not None:
            context.load_cert_chain(tls.cert, tls.key)
        if tls.ca is not None:
            context.load_verify_locations(cafile=str(tls.ca))
    except (OSError, ssl.SSLError) as exc:
        raise ManagerConfigError(
            f"cannot load TLS files ({tls.cert}, {tls.key}, {tls.ca}): {exc}"
        ) from exc
    return context


def server_context(tls: TlsConfig) -> ssl.SSLContext | None:
    if not tls.enabled:
        return None
    context = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(tls: TlsConfig) -> ssl.SSLContext | None:
    if not tls.enabled:
        return None
    context = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), tls)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = tls.verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def q2t_server_context(tls: Q2tTlsConfig | None) -> ssl.SSLContext | None:
    """Mutual TLS for Q2T: every client must present a certificate that chains to ``ca``."""
    if tls is None:
        return None
    return server_context(TlsConfig(mode="ca", cert=tls.cert, key=tls.key, ca=tls.ca))


def q2t_client_context(
    cert: Path, key: Path, ca: Path, check_hostname: bool = True
) -> ssl.SSLContext:
    """What a node or an app passes to ``Q2TClient(ssl_context=...)`` for a TLS Q2T API."""
    context = client_context(
        TlsConfig(mode="ca", cert=cert, key=key, ca=ca, verify_hostname=check_hostname)
    )
    if context is None:  # mode "ca" always gives a context
        raise ManagerConfigError("no TLS context")
    return context


class PinningConnector(aiohttp.TCPConnector):
    """Refuses any TLS connection whose server certificate is not on the allow-list."""

    def __init__(self, allowed: frozenset[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._allowed = allowed

    async def connect(self, req: ClientRequest, traces: Any, timeout: Any) -> Connection:
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
        if peer_fingerprint(ssl_object) not in self._allowed:
            connection.close()
            raise aiohttp.ClientConnectionError(
                f"server certificate of {req.url.host}:{req.url.port} is not on the allow-list"
            )
        return connection
