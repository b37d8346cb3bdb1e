"""JSON-RPC errors. The code lives on the exception class, as in go-ethereum's rpc/errors.go.

Handlers raise these (or the node's own exceptions, mapped in ``dispatcher``); any other
exception becomes -32603 with the traceback in the log and never in the response.
"""

from __future__ import annotations

from typing import Any


class RpcError(Exception):
    code = -32603
    default_message = "internal error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcError):
    code = -32700
    default_message = "parse error"


class InvalidRequest(RpcError):
    code = -32600
    default_message = "invalid request"


class MethodNotFound(RpcError):
    code = -32601
    default_message = "method not found"


class InvalidParams(RpcError):
    code = -32602
    default_message = "invalid params"


class ResponseTooLarge(RpcError):
    """A batch whose answers add up to more than the response limit (geth's -32003)."""

    code = -32003
    default_message = "response too large"


class ServerError(RpcError):
    """geth's generic -32000: refused transactions, missing state, bad filters."""

    code = -32000


class ExecutionReverted(RpcError):
    """Code 3 with the revert data: what web3.py turns into ContractLogicError."""

    code = 3

    def __init__(self, reason: str | None, revert_data: bytes) -> None:
        message = f"execution reverted: {reason}" if reason else "execution reverted"
        super().__init__(message, "0x" + revert_data.hex())
