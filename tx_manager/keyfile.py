"""Key files: ``NAME.pub`` (one base64 line) and ``NAME.key`` (JSON, unlocked or locked).

Locked form: Argon2id (argon2-cffi) stretches the password into a 32-byte key
that seals the private key with XChaCha20-Poly1305; the KDF parameters and salt
are stored beside it so they can be raised later without breaking old files.

    {"type": "unlocked", "data": {"bytes": "<b64 private key>"}}
    {"type": "argon2id+xchacha20poly1305", "data": {"salt": b64, "nonce": b64,
     "sealed": b64, "iterations": 3, "memoryKiB": 65536, "parallelism": 1}}
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from quorum_shared.secret_files import secret_directory, write_secret
from tx_manager.enclave import KeyPair, generate_keypair, keypair_from_private, seal, unseal
from tx_manager.errors import DecryptionFailed, KeyFileError, WrongPassword
from tx_manager.payload import KEY_SIZE, NONCE_SIZE

UNLOCKED = "unlocked"
LOCKED = "argon2id+xchacha20poly1305"


@dataclass(frozen=True)
class Argon2Params:
    """Defaults follow RFC 9106's second recommended option (64 MiB, 3 passes)."""

    iterations: int = 3
    memory_kib: int = 65536
    parallelism: int = 1


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: object, what: str, path: Path) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise KeyFileError(f"{path}: {what} is not base64") from exc


def _stretch(password: bytes, salt: bytes, params: Argon2Params) -> bytes:
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.iterations,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def encode_private_key(
    private: bytes, password: bytes | None, params: Argon2Params = Argon2Params()
) -> dict[str, Any]:
    if password is None:
        return {"type": UNLOCKED, "data": {"bytes": _b64(private)}}
    salt = os.urandom(16)
    nonce = os.urandom(NONCE_SIZE)
    sealed = seal(_stretch(password, salt, params), nonce, private)
    return {
        "type": LOCKED,
        "data": {
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "sealed": _b64(sealed),
            "iterations": params.iterations,
            "memoryKiB": params.memory_kib,
            "parallelism": params.parallelism,
        },
    }


def decode_private_key(document: object, password: bytes | None, path: Path) -> bytes:
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise KeyFileError(f"{path}: not a key file (expected {{type, data}})")
    data = document["data"]
    kind = document.get("type")
    if kind == UNLOCKED:
        private = _unb64(data.get("bytes"), "data.bytes", path)
    elif kind == LOCKED:
        if password is None:
            raise KeyFileError(f"{path}: the key is locked and no password was configured")
        try:
            params = Argon2Params(
                int(data["iterations"]), int(data["memoryKiB"]), int(data["parallelism"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"{path}: KDF parameters are missing or not integers") from exc
        key = _stretch(password, _unb64(data.get("salt"), "data.salt", path), params)
        try:
            private = unseal(
                key,
                _unb64(data.get("nonce"), "data.nonce", path),
                _unb64(data.get("sealed"), "data.sealed", path),
            )
        except DecryptionFailed as exc:
            raise WrongPassword(f"{path}: wrong password for the locked key") from exc
    else:
        raise KeyFileError(f"{path}: unknown key type {kind!r}")
    if len(private) != KEY_SIZE:
        raise KeyFileError(f"{path}: private key is not {KEY_SIZE} bytes")
    return private


def write_keypair(
    directory: Path, name: str, password: bytes | None, params: Argon2Params = Argon2Params()
) -> tuple[Path, Path]:
    """Generate a key pair and write NAME.pub and NAME.key (mode 0600, atomically, in a
    folder created 0700); refuses to overwrite."""
    secret_directory(directory)
    pub_path, key_path = directory / f"{name}.pub", directory / f"{name}.key"
    for path in (pub_path, key_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    keypair = generate_keypair()
    document = encode_private_key(keypair.private, password, params)
    try:
        write_secret(key_path, json.dumps(document, indent=2) + "\n", replace=False)
    except FileExistsError:
        raise KeyFileError(f"{key_path} already exists; refusing to overwrite a key") from None
    pub_path.write_text(_b64(keypair.public) + "\n")
    return pub_path, key_path


def read_public_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read public key file {path}: {exc.strerror}") from exc
    public = _unb64(text, "public key", path)
    if len(public) != KEY_SIZE:
        raise KeyFileError(f"{path}: public key is not {KEY_SIZE} bytes")
    return public


def read_keypair(pub_path: Path, key_path: Path, password: bytes | None) -> KeyPair:
    """Load and cross-check a key pair: the private key must yield the public one."""
    public = read_public_key(pub_path)
    try:
        document = json.loads(key_path.read_text())
    except OSError as exc:
        raise KeyFileError(f"cannot read private key file {key_path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyFileError(f"{key_path}: not valid JSON") from exc
    keypair = keypair_from_private(decode_private_key(document, password, key_path))
    if keypair.public != public:
        raise KeyFileError(f"{key_path} does not match the public key in {pub_path}")
    return keypair
