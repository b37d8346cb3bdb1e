"""Certificates for TLS tests, made with the openssl command line (EC P-256, 2 days).

``make_cert`` signs for 127.0.0.1 with both server and client key usage, so one
certificate serves a manager's listening side and its connecting side.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA: ``name.pem`` and ``name.key`` in ``directory``."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(directory / f"{name}.key"),
        "-out",
        str(directory / f"{name}.pem"),
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
    )
    return directory / f"{name}.pem"


def make_cert(directory: Path, name: str, ca: str) -> tuple[Path, Path, str]:
    """A certificate signed by CA ``ca``: (pem, key, SHA-256 fingerprint of its DER)."""
    key, csr, pem = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(directory / f"{ca}.pem"),
        "-CAkey",
        str(directory / f"{ca}.key"),
        "-CAcreateserial",
        "-out",
        str(pem),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    der = ssl.PEM_cert_to_DER_cert(pem.read_text())
    return pem, key, hashlib.sha256(der).hexdigest()
