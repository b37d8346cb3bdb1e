"""The network the explorer shows: the participants ``qnet``'s ``network.json`` lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class NetworkFileError(ValueError):
    """``network.json`` is missing or does not list participants; the message says which."""


@dataclass(frozen=True)
class Participant:
    name: str
    rpc_url: str
    ws_url: str
    tm_url: str
    tm_public_key: str


def load_participants(directory: Path) -> list[Participant]:
    path = directory / "network.json"
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
        nodes = description["nodes"]
        return [
            Participant(
                name=str(node["name"]),
                rpc_url=str(node["rpc_url"]),
                ws_url=str(node.get("ws_url") or ""),
                tm_url=str(node.get("tm_url") or ""),
                tm_public_key=str(node.get("tm_public_key") or ""),
            )
            for node in nodes
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NetworkFileError(f"{path}: not a qnet network description ({exc})") from exc
