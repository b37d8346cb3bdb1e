"""Accounts the node holds and signs for (``eth_accounts``, ``eth_sendTransaction``).

As with geth, keys live in password-protected keystore files (Web3 Secret Storage v3,
scrypt) under ``DATADIR/keystore`` and are unlocked once at start with a password file.
The unlocked keys stay in this process's memory only; nothing here logs or returns them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_keys.datatypes import PrivateKey
from eth_typing import Address

from quorum_node.errors import ConfigError
from quorum_shared.secret_files import secret_directory, write_secret

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldAccount:
    address: Address
    private_key: PrivateKey


class AccountStore:
    """The node's unlocked accounts, in the order ``eth_accounts`` reports them."""

    def __init__(self) -> None:
        self._accounts: dict[Address, HeldAccount] = {}

    def __contains__(self, address: object) -> bool:
        return address in self._accounts

    def addresses(self) -> list[Address]:
        return list(self._accounts)

    def get(self, address: Address) -> HeldAccount | None:
        return self._accounts.get(address)

    def add_key(self, private_key: bytes) -> HeldAccount:
        key = PrivateKey(private_key)
        account = HeldAccount(Address(key.public_key.to_canonical_address()), key)
        self._accounts.setdefault(account.address, account)
        return account

    def load_keystore(self, keystore_dir: Path, password: str) -> None:
        """Unlock every keystore file in ``keystore_dir`` with ``password``."""
        if not keystore_dir.is_dir():
            return
        for path in sorted(keystore_dir.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                keyfile = json.loads(path.read_text())
                private_key = Account.decrypt(keyfile, password)
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"cannot unlock keystore file {path.name}: {exc}") from None
            self.add_key(bytes(private_key))


def write_keystore_file(keystore_dir: Path, private_key: bytes, password: str) -> Path:
    """Encrypt ``private_key`` into a new keystore file named the way geth names them
    (mode 0600, written atomically, in a keystore folder created 0700)."""
    secret_directory(keystore_dir)
    keyfile = Account.encrypt(private_key, password)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    path = keystore_dir / f"UTC--{stamp}.000000000Z--{keyfile['address']}"
    return write_secret(path, json.dumps(keyfile), replace=False)
