"""Contract ABIs: the shipped artifacts plus the user's ``--abi`` files, used to name
calls, constructor deployments, logs and view functions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_typing import ABIEvent, ABIFunction
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector

from quorum_node import contracts


@dataclass(frozen=True)
class Decoded:
    """A call, deployment or log named with an ABI: ``text`` is what the page shows."""

    contract: str
    name: str
    arguments: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        shown = ", ".join(f"{key}={value}" for key, value in self.arguments)
        return f"{self.contract}.{self.name}({shown})"


def _types(entries: list[dict[str, Any]]) -> list[str]:
    return [_canonical_type(entry) for entry in entries]


def _canonical_type(entry: dict[str, Any]) -> str:
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_types(entry.get("components", [])))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)


def _decode(contract: str, name: str, inputs: list[dict[str, Any]], data: bytes) -> Decoded | None:
    try:
        values = abi_decode(_types(inputs), data)
    except (DecodingError, ValueError, OverflowError):
        return None
    labels = [entry.get("name") or f"arg{index}" for index, entry in enumerate(inputs)]
    return Decoded(contract, name, tuple(zip(labels, map(_show, values), strict=True)))


@dataclass(frozen=True)
class ContractAbi:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes = b""
    deployed_bytecode: bytes = b""

    def functions(self) -> list[dict[str, Any]]:
        return [entry for entry in self.abi if entry.get("type") == "function"]

    def view_functions(self) -> list[dict[str, Any]]:
        """No-argument ``view``/``pure`` functions: the values a contract page shows."""
        return [
            entry
            for entry in self.functions()
            if entry.get("stateMutability") in ("view", "pure") and not entry.get("inputs")
        ]

    def constructor_inputs(self) -> list[dict[str, Any]]:
        for entry in self.abi:
            if entry.get("type") == "constructor":
                return list(entry.get("inputs", []))
        return []


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def selector(function: dict[str, Any]) -> bytes:
    return bytes(function_abi_to_4byte_selector(cast(ABIFunction, function)))


@dataclass
class AbiRegistry:
    """Every known ABI, searchable by selector, event topic and bytecode."""

    contracts: list[ContractAbi] = field(default_factory=list)

    @classmethod
    def load(cls, abi_files: list[Path] | None = None) -> AbiRegistry:
        """The shipped artifacts, then each ``--abi`` file: a JSON ABI list, or an artifact
        object with ``abi`` (and optionally ``bytecode``, ``deployedBytecode``)."""
        registry = cls()
        for name in contracts.names():
            build = contracts.artifact(name)
            registry.add(
                ContractAbi(
                    name,
                    build["abi"],
                    _hex_bytes(build.get("bytecode", "")),
                    _hex_bytes(build.get("deployedBytecode", "")),
                )
            )
        for path in abi_files or []:
            registry.add(load_abi_file(path))
        return registry

    def add(self, contract: ContractAbi) -> None:
        self.contracts.append(contract)

    def decode_call(self, data: bytes) -> Decoded | None:
        """A call's input named with the first ABI whose selector and types fit."""
        if len(data) < 4:
            return None
        for contract in self.contracts:
            for function in contract.functions():
                if selector(function) == data[:4]:
                    decoded = _decode(
                        contract.name, function["name"], function.get("inputs", []), data[4:]
                    )
                    if decoded is not None:
                        return decoded
        return None

    def decode_creation(self, data: bytes) -> Decoded | None:
        """A deployment's init code: an artifact's bytecode followed by its encoded
        constructor arguments."""
        for contract in self.contracts:
            code = contract.bytecode
            if code and data.startswith(code):
                decoded = _decode(
                    contract.name, "constructor", contract.constructor_inputs(), data[len(code) :]
                )
                if decoded is not None:
                    return Decoded(contract.name, "new", decoded.arguments)
        return None

    def decode_log(self, topics: list[bytes], data: bytes) -> Decoded | None:
        if not topics:
            return None
        for contract in self.contracts:
            for event in contract.abi:
                if event.get("type") != "event" or event.get("anonymous"):
                    continue
                if bytes(event_abi_to_log_topic(cast(ABIEvent, event))) != topics[0]:
                    continue
                decoded = _decode_event(contract.name, event, topics[1:], data)
                if decoded is not None:
                    return decoded
        return None

    def match_code(self, code: bytes) -> ContractAbi | None:
        """The ABI of deployed ``code``: an artifact whose deployedBytecode it is, else the
        ABI with the most functions whose every selector appears in the code."""
        if not code:
            return None
        for contract in self.contracts:
            if contract.deployed_bytecode and contract.deployed_bytecode == code:
                return contract
        best: ContractAbi | None = None
        for contract in self.contracts:
            functions = contract.functions()
            if functions and all(b"\x63" + selector(f) in code for f in functions):
                if best is None or len(functions) > len(best.functions()):
                    best = contract
        return best


def _decode_event(
    contract: str, event: dict[str, Any], topics: list[bytes], data: bytes
) -> Decoded | None:
    inputs = event.get("inputs", [])
    indexed = [entry for entry in inputs if entry.get("indexed")]
    plain = [entry for entry in inputs if not entry.get("indexed")]
    if len(indexed) != len(topics):
        return None
    try:
        plain_values = list(abi_decode(_types(plain), data))
        indexed_values = [
            abi_decode([_canonical_type(entry)], topic)[0] if _is_static(entry) else topic
            for entry, topic in zip(indexed, topics, strict=True)
        ]
    except (DecodingError, ValueError, OverflowError):
        return None
    arguments = []
    for index, entry in enumerate(inputs):
        value = indexed_values.pop(0) if entry.get("indexed") else plain_values.pop(0)
        arguments.append((entry.get("name") or f"arg{index}", _show(value)))
    return Decoded(contract, event["name"], tuple(arguments))


def _is_static(entry: dict[str, Any]) -> bool:
    kind = str(entry["type"])
    return not (kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("tuple"))


class AbiFileError(ValueError):
    """An ``--abi`` file that is not an ABI: the message names the file and the fault."""


def load_abi_file(path: Path) -> ContractAbi:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AbiFileError(f"--abi {path}: {exc}") from exc
    if isinstance(content, dict) and isinstance(content.get("abi"), list):
        return ContractAbi(
            str(content.get("contractName") or path.stem),
            content["abi"],
            _hex_bytes(str(content.get("bytecode", ""))),
            _hex_bytes(str(content.get("deployedBytecode", ""))),
        )
    if isinstance(content, list) and all(isinstance(entry, dict) for entry in content):
        return ContractAbi(path.stem, content)
    raise AbiFileError(f"--abi {path}: expected a JSON ABI list or an object with 'abi'")


def decode_outputs(function: dict[str, Any], data: bytes) -> str:
    """A view function's return value as shown on the page."""
    outputs = function.get("outputs", [])
    try:
        values = abi_decode(_types(outputs), data)
    except (DecodingError, ValueError, OverflowError):
        return f"undecodable 0x{data.hex()}"
    return ", ".join(_show(value) for value in values)
