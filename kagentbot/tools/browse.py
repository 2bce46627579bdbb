"""`browse_website`: fetch a page through the SSRF guard, keep its main text (trafilatura, no
browser), and when a question is given return the passages that best answer it."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from kagentbot.tools.framing import as_data
from kagentbot.tools.links import host_of
from kagentbot.tools.registry import ToolContext, ToolError, ToolOutput, tool
from kagentbot.tools.webapi import output_budget, tool_settings

if TYPE_CHECKING:
    from kagentbot.net.guard import Page

MAX_PDF_PAGES = 30
_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]", re.IGNORECASE)
_SENTENCE_END = (".", "!", "?", ":", ";", "。", "！", "？", "：", "；", "…", '"', "”", ")", "）")
# question words that match everywhere and would drown the real terms
_STOPWORDS = frozenset(
    "a an the is are was were be at of to in on for by from with and or how what which who when where why "
    "much many does do did it its this that there about can could i you me my your 的 是 了 在 吗 呢 哪 什 么 几".split()
)


@tool(network=True)
async def browse_website(url: str, question: str = "", *, context: ToolContext) -> ToolOutput:
    """Read a web page (HTML, text, JSON or PDF) and return its main text, or the passages that answer a question.

    Args:
        url: the page's full http(s) address
        question: what to look for on the page; empty for the page's beginning
    """
    # the guarded fetcher needs aiohttp (~0.1 s to import): loaded on the first fetch, not with the catalogue
    from kagentbot.net.guard import FetchFailed, FetchPolicy, FetchRefused, guarded_fetch

    settings = tool_settings(context)
    check_link(url, context)
    try:
        page = await guarded_fetch(url, FetchPolicy.from_settings(settings))
    except (FetchRefused, FetchFailed) as exc:
        raise ToolError(str(exc)) from None
    title, text = await asyncio.to_thread(_read_limited, page, context)
    if not text.strip():
        raise ToolError(f"{page.url} has no readable text (it may need JavaScript)")
    passages = rank_passages(text, question, settings.browse_passages) if question.strip() else [text]
    body = f"title: {title}\nurl: {page.url}\n\n" + "\n\n".join(passages)
    shown = f"📄 {title or page.url}\n{page.url}\n{' '.join(passages[0].split())[:300]}"
    return ToolOutput(text=as_data(f"the web page {page.url}", body, output_budget(context)), display=shown)


def check_link(url: str, context: ToolContext) -> None:
    """Refuse an address nobody but the model wrote this turn (see kagentbot.tools.links)."""
    settings = tool_settings(context)
    if context.links is None or settings.browse_any_url or context.links.allows(url, settings.browse_hosts):
        return
    raise ToolError(
        f"refused: the address on {host_of(url)} did not appear in the user's message, in search results or in "
        "a document or page read in this turn, and only those can be opened (a page or document cannot choose "
        "where the bot sends requests). Open a link exactly as it was given, search for the page, or answer "
        "with what you have."
    )


def _read_limited(page: Page, context: ToolContext) -> tuple[str, str]:
    """`page_text` in a child process with the document parsing budget (a web page is as
    untrusted as an upload: a PDF bomb or pathological HTML must not stall the bot)."""
    from kagentbot.config.settings import MemorySettings
    from kagentbot.memory.sandbox import Budget, BudgetExceeded, ParseFailed, run_limited

    limits = context.settings.memory if context.settings is not None else MemorySettings()
    try:
        return run_limited(page_text, (page,), Budget(limits.parse_cpu_seconds, limits.parse_memory_mb), (ToolError,))
    except (BudgetExceeded, ParseFailed) as exc:
        raise ToolError(f"{page.url} could not be read within the limits for one page: {exc}") from None


def page_text(page: Page) -> tuple[str, str]:
    """(title, main text) of a fetched page; blocking, run it in a thread."""
    if page.content_type == "application/pdf":
        return _pdf_text(page.body)
    if page.content_type == "application/json":
        try:
            return "", json.dumps(json.loads(page.body), ensure_ascii=False, indent=1)
        except ValueError:
            return "", page.text()
    if page.content_type in ("text/plain", "text/markdown"):
        return "", page.text()
    import trafilatura

    doc = trafilatura.bare_extraction(page.text(), url=page.url, with_metadata=True, include_comments=False, favor_recall=True)
    if not doc:
        return "", ""
    # a Document unless as_dict=True; the stubs' return type names both
    return doc.title or "", doc.text or ""  # type: ignore[union-attr]


def _pdf_text(body: bytes) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(body))
        pages = [p.extract_text() or "" for p in reader.pages[:MAX_PDF_PAGES]]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError) as exc:
        raise ToolError(f"the PDF could not be read: {exc}") from None
    return title, "\n\n".join(pages)


def rank_passages(text: str, question: str, limit: int, *, window: int = 600) -> list[str]:
    """The `limit` passages of `text` most relevant to `question`, in page order (Okapi BM25).

    A line that ends no sentence (a heading) is joined to the one after it, up to `window`
    characters, so that headings travel with their text; CJK text is scored per character."""
    passages: list[str] = []
    for para in (p.strip() for p in re.split(r"\n\s*\n|\n", text)):
        heading = bool(passages) and not passages[-1].endswith(_SENTENCE_END)
        if para and heading and len(passages[-1]) + len(para) < window:
            passages[-1] += "\n" + para
        elif para:
            passages.append(para)
    docs = [Counter(w.lower() for w in _WORD.findall(p)) for p in passages]
    terms = {w.lower() for w in _WORD.findall(question)} - _STOPWORDS
    if not docs or not terms:
        return passages[:limit]
    average = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    idf = {t: math.log(1 + (len(docs) - (n := sum(t in d for d in docs)) + 0.5) / (n + 0.5)) for t in terms}

    def score(doc: Counter[str]) -> float:
        size = sum(doc.values())
        return sum(idf[t] * doc[t] * 2.2 / (doc[t] + 1.2 * (0.25 + 0.75 * size / average)) for t in terms if doc[t])

    best = sorted(range(len(docs)), key=lambda i: score(docs[i]), reverse=True)[:limit]
    return [passages[i] for i in sorted(best) if score(docs[i]) > 0] or passages[:limit]
