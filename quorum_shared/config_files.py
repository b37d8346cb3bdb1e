"""Config files of the node and the manager: TOML (``node.toml``, ``tm.toml``, as ``qnet
init`` writes them), or JSON for a file named ``*.json`` (as earlier versions wrote).

Reading is ``tomllib``'s or ``json``'s; writing TOML is this module's, for the plain
documents a config is (tables, arrays of tables, strings, numbers, booleans, arrays of
those). TOML has no null: a ``None`` value is left out, so the reader's default applies.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigFileError(ValueError):
    """A config file that cannot be read or parsed; the message names the file."""


def is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def read_document(path: Path) -> dict[str, Any]:
    """The file's top-level table: JSON when named ``*.json``, TOML otherwise."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"cannot read config {path}: {exc.strerror}") from None
    kind = "JSON" if is_json(path) else "TOML"
    try:
        document: Any = json.loads(text) if is_json(path) else tomllib.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigFileError(f"config {path} is not valid {kind}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigFileError(f"config {path}: expected a {kind} object at the top level")
    return document


def write_document(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as JSON when ``path`` is ``*.json``, else as TOML."""
    text = json.dumps(document, indent=2) + "\n" if is_json(path) else dumps_toml(document)
    path.write_text(text)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps_toml(document: Mapping[str, Any]) -> str:
    """``document`` as TOML text that ``tomllib.loads`` reads back equal (``None``
    values left out). Raises TypeError for a value TOML cannot hold."""
    lines: list[str] = []
    _table(lines, (), document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(lines: list[str], prefix: tuple[str, ...], table: Mapping[str, Any]) -> None:
    """Plain values first (a value after a header belongs to that header's table), then
    sub-tables, then arrays of tables."""
    for key, value in table.items():
        if value is not None and not isinstance(value, Mapping) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{_dotted((*prefix, key))}]"]
            _table(lines, (*prefix, key), value)
    for key, value in table.items():
        if _is_table_array(value):
            for item in value:
                lines += ["", f"[[{_dotted((*prefix, key))}]]"]
                _table(lines, (*prefix, key), item)


def _dotted(keys: tuple[str, ...]) -> str:
    return ".".join(_key(key) for key in keys)


def _key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys are strings, not {type(key).__name__}")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes (\" \\ \n \t \uXXXX for control characters) are TOML's too, once
    # non-ASCII is left as it is; DEL must be escaped in TOML and is not in JSON.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"no TOML for the float {value}")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for a value of type {type(value).__name__}")
