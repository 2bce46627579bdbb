"""Imported by the parsing forkserver only (kagentbot.memory.sandbox.PRELOAD): runs each parser
once on a tiny document, so that their lazy imports and first-call set-up (about a second for
trafilatura) happen once in the server instead of again in every child forked from it."""

from __future__ import annotations

import io
import logging

log = logging.getLogger(__name__)


def _warm() -> None:
    import docx
    import trafilatura

    from kagentbot.memory.ingest import _docx_text, _html_text

    page = "<html><head><title>t</title></head><body><article><p>A short paragraph to read.</p></article></body></html>"
    _html_text(page)
    trafilatura.bare_extraction(page, url="http://example.org/", with_metadata=True, include_comments=False, favor_recall=True)
    buffer = io.BytesIO()
    docx.Document().save(buffer)
    _docx_text(buffer.getvalue())


try:
    _warm()
except Exception as exc:  # noqa: BLE001 - a cold child is slower, not wrong
    log.debug("parsers not warmed up: %s", exc)
