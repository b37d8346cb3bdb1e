"""The permissioned-nodes list: which nodes may talk to this one.

The file is GoQuorum's ``permissioned-nodes.json``: a JSON array of enode URLs. It is
re-read whenever it changes on disk, so an operator can admit or remove a node without
a restart. A node whose id is not listed is refused, and the refusal is logged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from quorum_node.errors import ConfigError
from quorum_node.p2p.identity import Enode

logger = logging.getLogger(__name__)


class PermissionedNodes:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime: float | None = None
        self._enodes: dict[str, Enode] = {}
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        if self._path is None:
            return
        try:
            mtime = self._path.stat().st_mtime
        except OSError as exc:
            raise ConfigError(f"cannot read {self._path}: {exc.strerror}") from None
        if not force and mtime == self._mtime:
            return
        try:
            entries = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            if force:
                raise ConfigError(f"{self._path} is not a JSON list of enode URLs: {exc}") from None
            logger.error(
                "keeping the previous permissioned nodes: %s is unreadable: %s", self._path, exc
            )
            return
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ConfigError(f"{self._path} must be a JSON list of enode URLs")
        self._enodes = {enode.node_id: enode for enode in (Enode.parse(e) for e in entries)}
        self._mtime = mtime

    @property
    def enabled(self) -> bool:
        return self._path is not None

    def allows(self, node_id: str) -> bool:
        if not self.enabled:
            return True
        self.reload()
        return node_id in self._enodes

    def enodes(self) -> list[Enode]:
        self.reload()
        return list(self._enodes.values())
