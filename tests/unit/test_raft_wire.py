"""``raft_wire`` and the snapshot format: Raft's bytes decode as data, never as code.

pysyncobj pickled its messages, log entries, journal metadata and snapshots. After
``install()`` each of those paths goes through msgpack; these tests check that the
seam covers every path pysyncobj has (a pysyncobj that grew another would fail here),
that a pickle that would create a file is refused everywhere, and that messages and
commands are checked against what pysyncobj sends and what this node applies.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import types
from pathlib import Path
from typing import Any

import pysyncobj
import pytest
from pysyncobj.node import TCPNode

from quorum_node.config import RAFT_FORMAT_FILE
from quorum_node.consensus import raft_wire
from quorum_node.consensus.raft_state import (
    ClusterSnapshots,
    ClusterState,
    check_raft_folder,
)
from quorum_node.consensus.raft_wire import (
    MEMBERSHIP,
    NO_OP,
    REGULAR,
    VERSION,
    RaftWireError,
    check_command,
    check_message,
    dumps,
    loads,
    replicated_signatures,
)
from quorum_node.errors import ConfigError
from tests.support.raft_peer import pickle_that_creates

raft_wire.install()

ENODE = "enode://" + "ab" * 64 + "@127.0.0.1:21000?raftport=50400"
SIGNATURES = {0: (int, bytes, bytes), 1: (str,)}


def every_pysyncobj_module() -> list[types.ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(pysyncobj.__path__, "pysyncobj.")
        if info.name not in ("pysyncobj.win_inet_pton",)
    ]


def test_no_pysyncobj_module_reaches_the_stdlib_pickle_but_through_the_seam() -> None:
    original = {pickle.loads, pickle.load, pickle.dumps, pickle.dump, pickle._loads}  # noqa: SLF001
    for module in every_pysyncobj_module():
        for name, value in vars(module).items():
            if module.__name__ == "pysyncobj.pickle" and name == "pickle":
                continue  # the seam's own import; every function using it is replaced
            assert value is not pickle, f"{module.__name__}.{name} is the pickle module"
            assert not any(value is function for function in original), f"{module.__name__}.{name}"
            function_module = getattr(value, "__module__", None)
            if isinstance(value, types.FunctionType) and function_module == "pysyncobj.pickle":
                assert name in ("to_bytes", "_load_short_binstring", "_load_binstring"), (
                    f"{module.__name__}.{name} is pysyncobj's own pickle function"
                )
    seam = importlib.import_module("pysyncobj.pickle")
    assert (seam.loads, seam.dumps) == (raft_wire.loads, raft_wire.dumps)
    journal = importlib.import_module("pysyncobj.journal")
    assert (journal.loads, journal.dumps) == (raft_wire.loads, raft_wire.dumps)


def test_a_pickle_that_would_create_a_file_is_refused_on_every_path(tmp_path: Path) -> None:
    marker = tmp_path / "created"
    payload = pickle_that_creates(marker)
    decoders = [
        importlib.import_module("pysyncobj.pickle").loads,
        importlib.import_module("pysyncobj.journal").loads,
        importlib.import_module("pysyncobj.syncobj").pickle.loads,
        importlib.import_module("pysyncobj.serializer").pickle.loads,
    ]
    for decode in decoders:
        with pytest.raises(RaftWireError):
            decode(payload)
    with pytest.raises(RaftWireError):
        importlib.import_module("pysyncobj.serializer").pickle.load(open(__file__, "rb"))  # noqa: SIM115
    with pytest.raises(RaftWireError, match="bad_command|not raft data"):
        check_command(bytes([REGULAR]) + payload, SIGNATURES)
    assert not marker.exists()


@pytest.mark.parametrize(
    "value",
    [
        {
            "type": "append_entries",
            "term": 3,
            "commit_index": 7,
            "prevLogIdx": 1,
            "prevLogTerm": 2,
            "entries": [(b"\x00\x01", 2, 3)],
        },
        (0, (5, b"\x01" * 32, b"\x02" * 32)),
        ["add", "127.0.0.1:50400", TCPNode("127.0.0.1:50400")],
        {"currentTerm": 4, "votedForNodeId": "127.0.0.1:50400"},
        {1, 2, 3},
        None,
        1.5,
    ],
)
def test_what_pysyncobj_stores_and_sends_round_trips(value: Any) -> None:
    decoded = loads(dumps(value))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\x92\x01", b"\xd4\x09\x00", b"\xc7\x03\x03bad", b"\x81\x01\x02", b"\x01\x02"],
    ids=["reserved", "short", "unknown-ext", "bad-node", "int-key", "extra"],
)
def test_bytes_that_are_not_raft_data_are_refused(data: bytes) -> None:
    with pytest.raises(RaftWireError):
        loads(data)


def test_a_value_the_codec_cannot_carry_is_not_encoded() -> None:
    with pytest.raises(TypeError):
        dumps({"callable": print})


GOOD_MESSAGES = [
    {"type": "timeout_now", "term": 1},
    {"type": "request_vote", "term": 2, "last_log_index": 5, "last_log_term": 1},
    {"type": "response_vote", "term": 2},
    {"type": "append_entries", "term": 2, "commit_index": 3},
    {
        "type": "append_entries",
        "term": 2,
        "commit_index": 3,
        "prevLogIdx": 3,
        "prevLogTerm": 2,
        "entries": [(b"\x01", 4, 2)],
    },
    {"type": "append_entries", "term": 2, "commit_index": 3, "serialized": (b"x", True, False)},
    {"type": "append_entries", "term": 2, "commit_index": 3, "serialized": None},
    {"type": "apply_command", "command": b"\x01", "request_id": 4},
    {"type": "apply_command_response", "request_id": 4, "error": 2},
    {"type": "apply_command_response", "request_id": 4, "log_idx": 9, "log_term": 2},
    {"type": "next_node_idx", "next_node_idx": 5, "reset": False, "success": True},
]


@pytest.mark.parametrize("message", GOOD_MESSAGES, ids=lambda m: m["type"])
def test_every_message_pysyncobj_sends_passes(message: dict[str, Any]) -> None:
    assert check_message(loads(dumps(message))) == message


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (["request_vote"], "must be a map"),
        ({"type": "add", "term": 1}, "unknown message type"),
        ({"type": "response_vote"}, "missing term"),
        ({"type": "response_vote", "term": "1"}, "wrong shape"),
        ({"type": "response_vote", "term": True}, "wrong shape"),
        ({"type": "response_vote", "term": -1}, "wrong shape"),
        ({"type": "response_vote", "term": 1, "extra": 0}, "unexpected field"),
        ({"type": "append_entries", "term": 1, "commit_index": 1, "prevLogIdx": 0}, "together"),
        (
            {
                "type": "append_entries",
                "term": 1,
                "commit_index": 1,
                "transmission": "start",
                "data": b"",
            },
            "unexpected field",
        ),
        (
            {"type": "append_entries", "term": 1, "commit_index": 1, "entries": [(b"", 1)]},
            "wrong shape",
        ),
        ({"type": "apply_command_response", "request_id": 1}, "names log_idx"),
    ],
)
def test_a_message_of_another_shape_is_refused(message: Any, reason: str) -> None:
    with pytest.raises(RaftWireError, match=reason) as raised:
        check_message(message)
    assert raised.value.kind == "malformed"


def call(value: Any) -> bytes:
    return bytes([REGULAR]) + dumps(value)


@pytest.mark.parametrize(
    "command",
    [
        bytes([NO_OP]),
        call((0, (1, b"\x01", b"\x02"))),
        call((1, ("127.0.0.1:50400",))),
        bytes([MEMBERSHIP]) + dumps(["add", "10.0.0.2:50400", TCPNode("10.0.0.2:50400")]),
    ],
)
def test_the_commands_this_node_applies_pass(command: bytes) -> None:
    check_command(command, SIGNATURES)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (b"", "empty"),
        (bytes([NO_OP, 0]), "no-op entry with a body"),
        (bytes([VERSION]) + dumps(1), "not accepted"),
        (bytes([9]), "not accepted"),
        (call(7), "no replicated method has id 7"),
        (call((0, (1, b"\x01"))), "wrong number"),
        (call((0, (1, b"\x01", b"\x02"), {"x": 1})), "wrong number"),
        (call((0, (True, b"\x01", b"\x02"))), "argument 0 is not int"),
        (call((1, (b"addr",))), "argument 0 is not str"),
        (call("propose"), "not \\(method id"),
        (bytes([MEMBERSHIP]) + dumps(["add", "a:1", TCPNode("b:1")]), "membership"),
        (bytes([MEMBERSHIP]) + dumps(["wipe", "a:1", TCPNode("a:1")]), "membership"),
    ],
)
def test_a_command_this_node_would_fail_to_apply_is_refused(command: bytes, reason: str) -> None:
    with pytest.raises(RaftWireError, match=reason) as raised:
        check_command(command, SIGNATURES)
    assert raised.value.kind == "bad_command"


def test_the_cluster_states_commands_are_typed_from_its_annotations() -> None:
    assert replicated_signatures(ClusterState) == {
        "propose": (int, bytes, bytes),
        "announce_leader": (str,),
        "add_member": (str,),
        "remove_member": (int,),
    }


class Listener:
    def __init__(self) -> None:
        self.accepted: list[tuple[int, bytes]] = []
        self.member_changes = 0

    def block_accepted(self, number: int, block_hash: bytes) -> None:
        self.accepted.append((number, block_hash))

    def leader_announced(self, raft_address: str) -> None:
        pass

    def members_changed(self) -> None:
        self.member_changes += 1


def cluster_state(listener: Listener) -> ClusterState:
    return ClusterState(b"\x00" * 32, ((1, ENODE),), listener)


def test_a_snapshot_restores_the_cluster_state_and_tells_the_engine(tmp_path: Path) -> None:
    source = cluster_state(Listener())
    source.tip, source.leader = (12, b"\x0c" * 32), "127.0.0.1:50400"
    path = str(tmp_path / "raft.dump")
    entries = ((b"\x01", 40, 3), (b"\x01", 39, 3))
    ClusterSnapshots(source).save(path, (*entries, {TCPNode("127.0.0.1:50400")}))

    listener = Listener()
    restored = cluster_state(listener)
    last, before, nodes = ClusterSnapshots(restored).load(path)
    assert (last, before) == entries
    assert [node.address for node in nodes] == ["127.0.0.1:50400"]
    assert (restored.tip, restored.leader, restored.members) == (
        (12, b"\x0c" * 32),
        "127.0.0.1:50400",
        ((1, ENODE),),
    )
    assert listener.accepted == [(12, b"\x0c" * 32)] and listener.member_changes == 1


@pytest.mark.parametrize(
    "document",
    [
        {"format": 2},
        {
            "format": 1,
            "tip": ["12", b""],
            "leader": None,
            "members": [],
            "entries": [],
            "nodes": [],
        },
        {
            "format": 1,
            "tip": [1, b""],
            "leader": "nowhere",
            "members": [],
            "entries": [],
            "nodes": [],
        },
        {
            "format": 1,
            "tip": [1, b""],
            "leader": None,
            "members": [[1, "enode://x"]],
            "entries": [],
            "nodes": [],
        },
        {
            "format": 1,
            "tip": [1, b""],
            "leader": None,
            "members": [],
            "entries": [[b"", 1, 1]],
            "nodes": [],
        },
    ],
)
def test_a_snapshot_that_does_not_check_out_restores_nothing(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "raft.dump"
    path.write_bytes(dumps(document))
    listener = Listener()
    state = cluster_state(listener)
    with pytest.raises(RaftWireError):
        ClusterSnapshots(state).load(str(path))
    assert state.tip == (0, b"\x00" * 32) and listener.member_changes == 0


def test_a_pickled_snapshot_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "created"
    path = tmp_path / "raft.dump"
    path.write_bytes(pickle_that_creates(marker))
    with pytest.raises(RaftWireError):
        ClusterSnapshots(cluster_state(Listener())).load(str(path))
    assert not marker.exists()


def test_an_odd_member_entry_applies_as_nothing_instead_of_failing() -> None:
    state = cluster_state(Listener())
    apply = ClusterState.add_member.__wrapped__  # what the log applies on every node
    assert apply(state, "not an enode") == 0
    assert apply(state, "enode://" + "cd" * 64 + "@127.0.0.1:21001") == 0  # no raft port
    assert state.members == ((1, ENODE),)


def test_a_new_raft_folder_is_marked_and_an_earlier_versions_refused(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    check_raft_folder(fresh)
    assert (fresh / RAFT_FORMAT_FILE).exists()
    check_raft_folder(fresh)  # marked: accepted again

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "raft.journal").write_bytes(b"pickled entries")
    with pytest.raises(ConfigError, match="earlier quorum-py") as raised:
        check_raft_folder(earlier)
    assert "\n" not in str(raised.value)

    (fresh / RAFT_FORMAT_FILE).write_text("something else\n")
    with pytest.raises(ConfigError, match="unknown format"):
        check_raft_folder(fresh)
