"""`web_search`: a maintained metasearch library (ddgs) by default, or a SearXNG instance the
deployment runs itself; both retried with backoff, both giving title / url / snippet."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kagentbot.tools.framing import as_data
from kagentbot.tools.registry import ToolContext, ToolError, ToolOutput, tool
from kagentbot.tools.webapi import api_session, get_json, output_budget, tool_settings

if TYPE_CHECKING:
    from kagentbot.config.settings import ToolsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    snippet: str


class SearchUnavailable(Exception):
    """A backend failure worth retrying (network, rate limit, engine down)."""


@tool(network=True)
async def web_search(text: str, *, context: ToolContext) -> ToolOutput:
    """Search the web; returns titles, links and snippets of the top results.

    Args:
        text: what to search for, as keywords or a short question
    """
    query = " ".join(text.split())
    if not query:
        raise ToolError("text is empty: say what to search for")
    settings = tool_settings(context)
    backend = _searxng if settings.search_backend == "searxng" else _ddgs
    try:
        async with asyncio.timeout(settings.search_timeout):  # retries included: the agent's own limit must not hit first
            hits = await _with_retries(lambda: backend(query, context), settings.search_retries, settings.search_backoff)
    except TimeoutError:
        raise ToolError(f"web search did not answer within {settings.search_timeout:g} s; try again later") from None
    return render_hits(query, hits[: settings.search_max_results], output_budget(context))


async def _with_retries(attempt: Callable[[], Awaitable[list[SearchHit]]], retries: int, backoff: float) -> list[SearchHit]:
    for n in range(retries + 1):
        try:
            return await attempt()
        except SearchUnavailable as exc:
            last = exc
            log.info("web search attempt %d failed: %s", n + 1, exc)
            if n < retries:
                await asyncio.sleep(backoff * 2**n)
    raise ToolError(f"web search is unavailable right now ({last}); try again later or use another tool")


async def _ddgs(query: str, context: ToolContext) -> list[SearchHit]:
    settings = tool_settings(context)
    region = "cn-zh" if context.language == "zh" else "us-en"
    rows = await asyncio.to_thread(_ddgs_text, query, region, settings)
    return [SearchHit(r.get("title", ""), r.get("href", ""), r.get("body", "")) for r in rows]


def _ddgs_text(query: str, region: str, settings: ToolsSettings) -> list[dict[str, Any]]:
    from ddgs import DDGS
    from ddgs.exceptions import DDGSException

    client = DDGS(proxy=settings.search_proxy or None, timeout=int(max(1, settings.http_timeout)))
    try:
        return client.text(query, region=region, max_results=settings.search_max_results)
    except DDGSException as exc:
        if "no results" in str(exc).lower():
            return []
        raise SearchUnavailable(_reason(str(exc))) from None


_UNREACHABLE = ("dns error", "name or service not known", "failed to lookup", "connecterror", "connection refused",
                "network is unreachable", "temporary failure in name resolution")


def _reason(text: str) -> str:
    """ddgs' errors carry the engines' raw transport errors (URLs, nested debug output): one short line."""
    if any(marker in text.lower() for marker in _UNREACHABLE):
        return "the search engines cannot be reached from here (network or DNS)"
    first = text.strip().splitlines()[0] if text.strip() else "no reason given"
    return first if len(first) <= 160 else first[:160] + "…"


async def _searxng(query: str, context: ToolContext) -> list[SearchHit]:
    settings = tool_settings(context)
    if not settings.searxng_url:
        raise ToolError("tools.search_backend is searxng but tools.searxng_url is empty")
    params = {"q": query, "format": "json"}
    if context.language == "zh":
        params["language"] = "zh-CN"
    async with api_session(context) as session:
        try:
            body = await get_json(session, settings.searxng_url.rstrip("/") + "/search", params=params,
                                  service="SearXNG", timeout=settings.http_timeout, user_agent=settings.user_agent)
        except ToolError as exc:
            if "HTTP 403" in str(exc):  # the instance has the JSON format switched off: retrying will not help
                raise ToolError("SearXNG refused the JSON API: add `json` to search.formats in its settings.yml") from None
            raise SearchUnavailable(str(exc)) from None
    return [SearchHit(r.get("title", ""), r.get("url", ""), r.get("content") or "") for r in body.get("results", [])]


def render_hits(query: str, hits: list[SearchHit], budget: int) -> ToolOutput:
    if not hits:
        return ToolOutput(text=f"no web results for {query!r}", display=f"🔎 no results for “{query}”")
    lines = [f"{i}. {h.title}\n   {h.url}\n   {' '.join(h.snippet.split())}" for i, h in enumerate(hits, 1)]
    display = "\n".join(f"• {h.title} — {h.url}" for h in hits[:5])
    return ToolOutput(text=as_data(f"web search for {query!r}", "\n".join(lines), budget), display=f"🔎 “{query}”\n{display}")
