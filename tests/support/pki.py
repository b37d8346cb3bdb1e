"""Certificates for TLS tests, from the same code ``qnet init`` uses
(``quorum_shared.pki``: EC P-256, 2 days here).

``make_cert`` signs for 127.0.0.1 with both server and client key usage, so one
certificate serves a manager's listening side and its connecting side.
"""

from __future__ import annotations

from pathlib import Path

from quorum_shared import pki

DAYS = 2


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA: ``name.pem`` and ``name.key`` in ``directory``."""
    ca = pki.make_ca(name, days=DAYS)
    (directory / f"{name}.key").write_bytes(ca.private_key)
    (directory / f"{name}.pem").write_bytes(ca.certificate)
    return directory / f"{name}.pem"


def make_cert(
    directory: Path, name: str, ca: str, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[Path, Path, str]:
    """A certificate signed by CA ``ca``: (pem, key, SHA-256 fingerprint of its DER)."""
    authority = pki.PemPair(
        (directory / f"{ca}.pem").read_bytes(), (directory / f"{ca}.key").read_bytes()
    )
    made = pki.issue_certificate(authority, name, list(hosts), days=DAYS)
    pem, key = directory / f"{name}.pem", directory / f"{name}.key"
    key.write_bytes(made.private_key)
    pem.write_bytes(made.certificate)
    return pem, key, made.fingerprint
