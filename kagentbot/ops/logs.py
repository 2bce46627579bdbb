"""Log lines for machines: with `log.format = "json"` each record is one JSON object a line,
carrying the id and platform of the turn it belongs to (from a context variable the turn watch
sets, so that a tool's or the store's lines inside a turn carry them too) and the turn's timing.

`JsonFormatter` is a plain `logging.Formatter`: it formats what reaches the handler after the
handler's filters ran (a redacting filter sees every record first), and it writes only the
message, the exception and a fixed list of extra fields, never arbitrary record attributes."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

# (turn id, platform) of the turn under way in this task, or None outside a turn
_turn: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("kagentbot_turn", default=None)

# extra fields a record may carry (`log.info(..., extra={...})`) that a JSON line shows
FIELDS = ("outcome", "turn_ms", "first_step_ms", "steps", "tool", "error_id")


def enter_turn(turn_id: str, platform: str) -> contextvars.Token:
    return _turn.set((turn_id, platform))


def leave_turn(token: contextvars.Token) -> None:
    _turn.reset(token)


def current_turn() -> tuple[str, str] | None:
    return _turn.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        turn = _turn.get()
        if turn is not None:
            line["turn_id"], line["platform"] = turn
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _timestamp(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def use_format(log_format: str, logger: logging.Logger | None = None) -> None:
    """Give every handler of `logger` (default: the root logger) the chosen format; their
    filters stay as they are."""
    if log_format != "json":
        return
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())
