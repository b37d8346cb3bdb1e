"""How the node and the manager write their logs: text (the default) or JSON lines.

``--log-format json`` writes one JSON object per line with the fields ``time`` (UTC,
ISO 8601), ``level``, ``logger`` and ``message``, then every extra field a call
passed (``log.info("...", extra={"block": 7})``) and ``exception`` with the
traceback when there is one. Log shippers (Loki, Elasticsearch, journald) read it
without a parsing rule.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; values JSON cannot hold become strings."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    level: str | int, log_format: str = "text", stream: TextIO | None = None
) -> None:
    """Set the root logger up for a process: ``log_format`` is ``text`` or ``json``.

    Like ``logging.basicConfig``, it leaves a root logger that already has handlers
    alone (a test runner's capture, an embedding application's own set-up).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    if isinstance(level, str):
        named = logging.getLevelName(level.upper())
        level = named if isinstance(named, int) else logging.INFO
    root.setLevel(level)
