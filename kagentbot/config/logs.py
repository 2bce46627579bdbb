"""The process's logging: one stderr handler on the root logger, with every line (and every
traceback) passed through the redactor first, so secrets never reach a log."""

from __future__ import annotations

import logging
import sys
from typing import IO, TYPE_CHECKING

from kagentbot.config.redact import RedactingFilter, Redactor, settings_secrets

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Handler(logging.StreamHandler):
    """Ours, so that configuring again replaces it rather than doubling every line."""


def configure_logging(level: str, settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Install the redacting handler on the root logger; returns it (tests remove it again)."""
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter(Redactor(settings_secrets(settings))))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":  # pypdf logs each flaw of a damaged PDF; the user gets one clear error instead
        logging.getLogger("pypdf").setLevel(logging.ERROR)
        # httpx logs every request at INFO: Telegram's long polls alone would fill a service's log
        logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler
