"""The config-file reader and TOML writer: what is written reads back equal, through
``tomllib`` itself, and JSON stays JSON."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quorum_shared.config_files import (
    ConfigFileError,
    dumps_toml,
    read_document,
    write_document,
)

_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = _scalars | st.lists(_scalars, max_size=4)
_tables = st.recursive(
    st.dictionaries(st.text(), _values, max_size=4),
    lambda inner: st.dictionaries(
        st.text(), _values | inner | st.lists(inner, min_size=1, max_size=3), max_size=4
    ),
    max_leaves=12,
)


@given(_tables)
def test_what_is_written_reads_back_equal(document: dict[str, Any]) -> None:
    assert tomllib.loads(dumps_toml(document)) == document


def test_a_manager_config_reads_back_and_none_is_left_out() -> None:
    document = {
        "data_dir": "tm",
        "keys": [{"public": "tm/A.pub", "private": "tm/A.key"}],
        "peers": ["https://10.0.0.2:9001"],
        "q2t": {"host": "127.0.0.1", "port": 9101},
        "tls": {"mode": "ca", "cert": "tls/A.pem"},
        "discovery_interval": 1.0,
        "ws_port": None,
    }
    text = dumps_toml(document)
    assert "[[keys]]" in text and "[q2t]" in text and "ws_port" not in text
    del document["ws_port"]
    assert tomllib.loads(text) == document


def test_the_file_name_decides_the_format(tmp_path: Path) -> None:
    document = {"http_port": 8545, "p2p_tls": {"cert": "tls/A.pem"}}
    for name in ("node.toml", "node.json"):
        write_document(tmp_path / name, document)
        assert read_document(tmp_path / name) == document
    assert json.loads((tmp_path / "node.json").read_text()) == document


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("node.toml", "http_port = [", "not valid TOML"),
        ("node.json", "{", "not valid JSON"),
        ("node.json", "[1]", "expected a JSON object"),
    ],
)
def test_a_broken_file_is_named(tmp_path: Path, name: str, text: str, expected: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigFileError, match=expected) as caught:
        read_document(tmp_path / name)
    assert name in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read config .*missing.toml"):
        read_document(tmp_path / "missing.toml")
