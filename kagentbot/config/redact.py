"""Keeping secrets inside the process: the configured tokens and passwords, the userinfo of
URLs (`http://user:pass@host`) and anything shaped like a platform token are cut out of every
log line (exception text included) and of every address shown to chat users."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

MASK = "<redacted>"
MIN_SECRET = 6  # shorter configured values would mask ordinary words
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]+@")
_TOKEN_SHAPES = (
    re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}"),  # Telegram bot token
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}|\bxapp-[A-Za-z0-9-]{10,}"),  # Slack bot, user and app tokens
    re.compile(r"\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),  # Discord bot token
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),  # OpenAI-style API key
    re.compile(r"(?i)(?<=authorization: bearer )[^\s'\"]+"),
)


def redact_url(url: str) -> str:
    """The URL without its userinfo: `http://user:pass@host:1/v1` → `http://host:1/v1`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class Redactor:
    """Masks the given secret values, URL userinfo and token-shaped strings in any text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET}
        self.secrets = tuple(sorted(values, key=len, reverse=True))  # longest first: no partial masks

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _USERINFO.sub(r"\g<scheme>" + MASK + "@", text)
        for shape in _TOKEN_SHAPES:
            text = shape.sub(MASK, text)
        return text


def settings_secrets(settings: Settings) -> list[str]:
    """Every SecretStr value in the settings (tokens, signing secrets, API keys, storage keys)."""
    found: list[str] = []
    _collect(settings, found, depth=0)
    return found


def _collect(value: Any, found: list[str], depth: int) -> None:
    if depth > 6:
        return
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect(getattr(value, name), found, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found, depth + 1)


class RedactingFilter(logging.Filter):
    """On a handler: the record leaves with its message and traceback already masked. Records
    from every logger pass a root handler, which is why it sits there and not on loggers."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: mask what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
