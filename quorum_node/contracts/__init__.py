"""The compiled contracts quorum-py ships, one ``<ContractName>.json`` each.

``make contracts`` compiles ``contracts/src/*.sol`` with the pinned solc and writes the
artifacts here (``contracts/compile.js`` documents their format); they are committed and
installed with the package, so the demo, and anyone who installed the wheel, reads them
from any folder: ``artifact("SimpleStorage")["abi"]``.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


class UnknownArtifact(LookupError):
    """No artifact of that name is shipped; the message lists the ones that are."""


def names() -> list[str]:
    """The names of the shipped contracts, sorted."""
    return sorted(
        entry.name.removesuffix(".json")
        for entry in files(__name__).iterdir()
        if entry.name.endswith(".json")
    )


def artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name``: ``abi``, ``bytecode``, ``deployedBytecode``,
    ``methodIdentifiers``, ``compiler``, ``sourceFile`` and ``sourceSha256``. A fresh
    dictionary on each call, so a caller may change it."""
    resource = files(__name__).joinpath(f"{name}.json")
    if not resource.is_file():
        raise UnknownArtifact(f"no contract artifact {name!r}; shipped: {', '.join(names())}")
    return dict(json.loads(resource.read_text(encoding="utf-8")))
