"""What the search box accepts, and the message for what it does not."""

from __future__ import annotations

import pytest

from quorum_node.explorer.search import BadSearch, parse_search

HASH = "0x" + "Ab" * 32
ADDRESS = "0x" + "cD" * 20


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("42", "/block/42"),
        (" 0x2a ", "/block/42"),
        ("0", "/block/0"),
        (HASH, "/tx/" + HASH.lower()),
        (ADDRESS, "/address/" + ADDRESS.lower()),
    ],
)
def test_accepted(text: str, path: str) -> None:
    assert parse_search(text).path == path


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("", "Empty search"),
        ("   ", "Empty search"),
        ("hello", "Cannot search for 'hello'"),
        ("0x", "0 hex digits"),
        ("0x" + "1" * 30, "30 hex digits"),
        ("0xzz", "Cannot search"),
        ("-1", "Cannot search"),
        ("9" * 30, "too large"),
        ("<script>", "Cannot search"),
    ],
)
def test_refused_with_a_message(text: str, fault: str) -> None:
    with pytest.raises(BadSearch, match=fault.replace("(", r"\(")):
        parse_search(text)
