"""What Raft messages, log entries and snapshots are made of, decoded without pickle.

pysyncobj pickles everything it stores or sends: its messages, every log entry (a
replicated call is a pickled ``(method id, args)``), membership changes, its journal's
metadata and its snapshots. Unpickling a peer's bytes, or a journal a peer's entries
filled, runs whatever code the bytes name. Here every one of those goes through
msgpack instead, a format with no way to name a callable:

* ``install()`` replaces pysyncobj's own pickle module functions (``pysyncobj.pickle``
  and the two names ``pysyncobj.journal`` imported from it), the one seam through which
  pysyncobj encodes and decodes. ``tests/unit/test_raft_wire.py`` checks that no other
  path to the stdlib pickle remains in pysyncobj.
* The transport (``raft_transport``) decodes each frame with ``loads`` and then checks
  it against the message shapes pysyncobj sends (``check_message``), and every log
  entry it carries against the commands this node's replicated state accepts
  (``check_command``), so a member's malformed message or entry is refused at the link
  and named, instead of failing later inside pysyncobj's thread on every node.

Only the data types pysyncobj uses decode: None, booleans, integers, floats, strings,
bytes, lists, dicts with string keys, and three extension types of ours (tuple, set,
and pysyncobj's ``TCPNode``, carried as its address).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping
from typing import Any

import msgpack
from pysyncobj.node import TCPNode

_TUPLE = 1
_SET = 2
_NODE = 3

#: A Raft frame (after decryption) is at most this big: an append of pysyncobj's
#: 64 KiB entry batch, or a snapshot chunk of 64 KiB, with room to spare.
MAX_MESSAGE_BYTES = 1024 * 1024
#: pysyncobj's command types (``syncobj._COMMAND_TYPE``): the first byte of an entry.
REGULAR, NO_OP, MEMBERSHIP, VERSION = 0, 1, 2, 3
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}:([0-9]{1,5})$")
_MAX_INT = 2**63


class RaftWireError(Exception):
    """Bytes or a message that is not what a member may send; ``kind`` names the check
    for logs and metrics (``undecodable``, ``malformed``, ``bad_command``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


# --- the codec ---------------------------------------------------------------------


def _encode_extension(value: Any) -> msgpack.ExtType:
    if isinstance(value, tuple):
        return msgpack.ExtType(_TUPLE, dumps(list(value)))
    if isinstance(value, set | frozenset):
        return msgpack.ExtType(_SET, dumps(list(value)))
    if isinstance(value, TCPNode):
        return msgpack.ExtType(_NODE, value.address.encode())
    raise TypeError(f"raft data cannot hold a {type(value).__name__}")


def _decode_extension(code: int, payload: bytes) -> Any:
    if code == _TUPLE:
        return tuple(_decoded_list(payload))
    if code == _SET:
        return set(_decoded_list(payload))
    if code == _NODE:
        return TCPNode(check_address(payload.decode()))
    raise ValueError(f"unknown extension type {code}")


def _decoded_list(payload: bytes) -> list[Any]:
    items = loads(payload)
    if not isinstance(items, list):
        raise ValueError("an extension holds something other than a list")
    return items


def check_address(address: str) -> str:
    """``host:port`` as pysyncobj names a node; ``ValueError`` otherwise."""
    match = _ADDRESS.match(address)
    if match is None or not 0 < int(match.group(1)) < 65536:
        raise ValueError(f"not a host:port address: {address[:80]!r}")
    return address


def dumps(value: Any, protocol: int | None = None) -> bytes:
    """pysyncobj's ``pickle.dumps``, in msgpack (``protocol`` is ignored)."""
    return bytes(
        msgpack.packb(value, default=_encode_extension, use_bin_type=True, strict_types=True)
    )


def loads(data: bytes | str) -> Any:
    """pysyncobj's ``pickle.loads``, in msgpack: data only; ``RaftWireError`` otherwise."""
    if isinstance(data, str):
        data = data.encode()
    try:
        return msgpack.unpackb(
            data, ext_hook=_decode_extension, raw=False, strict_map_key=True, use_list=True
        )
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError, msgpack.ExtraData) as exc:
        raise RaftWireError("undecodable", f"not raft data: {exc}") from None


def _refuse_file(*_args: Any, **_kwargs: Any) -> Any:
    """pysyncobj pickles files only for snapshots, which ``raft_state`` writes itself
    (``SyncObjConf.serializer``); nothing may reach this."""
    raise RaftWireError("undecodable", "pysyncobj's pickled snapshots are not used")


_installed = False


def install() -> None:
    """Replace pysyncobj's pickle functions with this codec, once per process."""
    global _installed
    if _installed:
        return
    import pysyncobj.journal as journal
    import pysyncobj.pickle as pysyncobj_pickle

    pysyncobj_pickle.dumps = dumps
    pysyncobj_pickle.loads = loads
    pysyncobj_pickle.dump = _refuse_file
    pysyncobj_pickle.load = _refuse_file
    journal.dumps = dumps
    journal.loads = loads
    _installed = True


# --- message shapes ----------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return type(value) is int and 0 <= value < _MAX_INT


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_bytes(value: Any) -> bool:
    return type(value) is bytes


def _is_entry(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 3
        and _is_bytes(value[0])
        and _is_int(value[1])
        and _is_int(value[2])
    )


def _is_entries(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(_is_entry(entry) for entry in value)


def _is_chunk(value: Any) -> bool:
    """A snapshot chunk: ``(bytes, is_first, is_last)``, or None (none ready yet)."""
    return value is None or (
        isinstance(value, tuple | list)
        and len(value) == 3
        and _is_bytes(value[0])
        and _is_bool(value[1])
        and _is_bool(value[2])
    )


#: Each message type pysyncobj sends: its fields, each with a check, and which fields
#: may be absent. ``append_entries`` in pysyncobj's "transmission" form (one entry of
#: 64 KiB or more, in pieces) is not accepted: this node's entries are under 1 KiB.
_MESSAGES: dict[str, tuple[dict[str, Any], frozenset[str]]] = {
    "timeout_now": ({"term": _is_int}, frozenset()),
    "request_vote": (
        {"term": _is_int, "last_log_index": _is_int, "last_log_term": _is_int},
        frozenset(),
    ),
    "response_vote": ({"term": _is_int}, frozenset()),
    "append_entries": (
        {
            "term": _is_int,
            "commit_index": _is_int,
            "prevLogIdx": _is_int,
            "prevLogTerm": _is_int,
            "entries": _is_entries,
            "serialized": _is_chunk,
        },
        frozenset({"prevLogIdx", "prevLogTerm", "entries", "serialized"}),
    ),
    "apply_command": ({"command": _is_bytes, "request_id": _is_int}, frozenset({"request_id"})),
    "apply_command_response": (
        {"request_id": _is_int, "error": _is_int, "log_idx": _is_int, "log_term": _is_int},
        frozenset({"error", "log_idx", "log_term"}),
    ),
    "next_node_idx": (
        {"next_node_idx": _is_int, "reset": _is_bool, "success": _is_bool},
        frozenset(),
    ),
}


def check_message(message: Any) -> dict[str, Any]:
    """``message`` if it has the shape of a message pysyncobj sends; ``RaftWireError``
    (``malformed``) naming the first field that does not fit otherwise."""
    if not isinstance(message, dict):
        raise RaftWireError("malformed", f"a message must be a map, not {type(message).__name__}")
    kind = message.get("type")
    shape = _MESSAGES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        raise RaftWireError("malformed", f"unknown message type {str(kind)[:40]!r}")
    fields, optional = shape
    for name, value in message.items():
        if name == "type":
            continue
        check = fields.get(name)
        if check is None:
            raise RaftWireError("malformed", f"{kind}: unexpected field {str(name)[:40]!r}")
        if not check(value):
            raise RaftWireError("malformed", f"{kind}: field {name} has the wrong shape")
    missing = set(fields) - optional - set(message)
    if missing:
        raise RaftWireError("malformed", f"{kind}: missing {', '.join(sorted(missing))}")
    if ("prevLogIdx" in message) != ("prevLogTerm" in message):
        raise RaftWireError("malformed", f"{kind}: prevLogIdx and prevLogTerm go together")
    if kind == "apply_command_response" and "error" not in message:
        if "log_idx" not in message or "log_term" not in message:
            raise RaftWireError("malformed", f"{kind}: a success names log_idx and log_term")
    return message


def entries_of(message: dict[str, Any]) -> list[bytes]:
    """The log entries (commands) a checked message carries for the log."""
    if message["type"] == "apply_command":
        return [message["command"]]
    if message["type"] == "append_entries":
        return [entry[0] for entry in message.get("entries", ())]
    return []


def check_command(command: bytes, signatures: Mapping[int, tuple[type, ...]]) -> None:
    """Refuse (``RaftWireError``, ``bad_command``) a log entry this node would fail to
    apply: an undecodable one, a call of a method it does not replicate or with the
    wrong arguments, a code-version switch, or a membership change that is not one.

    ``signatures`` maps each replicated method's id to its argument types; applying an
    entry that does not fit would raise on every node, at every restart, forever.
    """
    if not command:
        raise RaftWireError("bad_command", "an empty log entry")
    kind, body = command[0], command[1:]
    if kind == NO_OP:
        if body:
            raise RaftWireError("bad_command", "a no-op entry with a body")
        return
    if kind not in (REGULAR, MEMBERSHIP):
        raise RaftWireError("bad_command", f"log entry of type {kind} is not accepted")
    try:
        value = loads(body)
    except RaftWireError as exc:
        raise RaftWireError("bad_command", str(exc)) from None
    if kind == MEMBERSHIP:
        _check_membership(value)
    else:
        _check_call(value, signatures)


def _check_membership(value: Any) -> None:
    if not (
        isinstance(value, list | tuple)
        and len(value) == 3
        and value[0] in ("add", "rem")
        and isinstance(value[1], str)
        and isinstance(value[2], TCPNode)
        and value[2].address == value[1]
    ):
        raise RaftWireError("bad_command", "a membership entry is not [add|rem, address, node]")


def _check_call(value: Any, signatures: Mapping[int, tuple[type, ...]]) -> None:
    method_id: Any
    args: Any
    kwargs: Any
    if _is_int(value):
        method_id, args, kwargs = value, (), {}
    elif isinstance(value, tuple) and len(value) in (2, 3):
        method_id, args = value[0], value[1]
        kwargs = value[2] if len(value) == 3 else {}
    else:
        raise RaftWireError("bad_command", "a call entry is not (method id, arguments)")
    expected = signatures.get(method_id) if _is_int(method_id) else None
    if expected is None:
        raise RaftWireError("bad_command", f"no replicated method has id {str(method_id)[:20]}")
    if kwargs or not isinstance(args, tuple) or len(args) != len(expected):
        raise RaftWireError("bad_command", f"method {method_id}: wrong number of arguments")
    for position, kind in enumerate(expected):
        argument = args[position]
        if type(argument) is not kind:
            raise RaftWireError(
                "bad_command", f"method {method_id}: argument {position} is not {kind.__name__}"
            )


def replicated_signatures(consumer_class: type) -> dict[str, tuple[type, ...]]:
    """The argument types of each ``@replicated`` method of ``consumer_class``, by name,
    from its annotations: the rules ``check_command`` applies to log entries. Every
    argument must be annotated with a plain type (int, bytes, str)."""
    signatures: dict[str, tuple[type, ...]] = {}
    for name, member in vars(consumer_class).items():
        wrapped = getattr(member, "__wrapped__", None)
        if not getattr(member, "replicated", False) or wrapped is None:
            continue
        if name != getattr(member, "origName", name):
            continue  # pysyncobj's versioned copy (``propose_v0``) of the same method
        hints = typing.get_type_hints(wrapped)
        parameters = list(inspect.signature(wrapped).parameters.values())[1:]
        kinds = tuple(hints.get(parameter.name) for parameter in parameters)
        if not all(isinstance(kind, type) for kind in kinds):
            raise TypeError(f"{consumer_class.__name__}.{name}: annotate every argument")
        signatures[name] = kinds  # type: ignore[assignment]
    return signatures
