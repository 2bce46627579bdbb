"""`encyclopedia`: Wikipedia's public APIs, no key. Search for the best article, read its
summary, and pull key facts (birth and death dates) out of the lead in ISO form, ready for
`time_delta`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from kagentbot.tools.framing import as_data
from kagentbot.tools.registry import ToolContext, ToolError, ToolOutput, tool
from kagentbot.tools.webapi import api_session, get_json, output_budget, tool_settings

if TYPE_CHECKING:
    import aiohttp  # annotations only

_LANG = re.compile(r"^[a-z]{2,3}(-[a-z]+)?$")
_EN_DATE = r"(\d{1,2} [A-Z][a-z]+ \d{3,4}|[A-Z][a-z]+ \d{1,2}, \d{3,4})"
_EN_BORN = re.compile(r"\bborn\s+(?:on\s+)?" + _EN_DATE)
_EN_SPAN = re.compile(_EN_DATE + r"\s*[–—-]\s*" + _EN_DATE + r"\s*\)")
_ZH_DATE = r"(\d{3,4})年(\d{1,2})月(\d{1,2})日"
_ZH_BORN = re.compile(_ZH_DATE + r"\s*[—–\-－~～]")
_ZH_DIED = re.compile(r"[—–\-－~～]\s*" + _ZH_DATE)


@dataclass(frozen=True)
class Article:
    title: str
    description: str
    extract: str
    url: str
    facts: tuple[str, ...]


@tool(network=True)
async def encyclopedia(query: str, lang: str = "", *, context: ToolContext) -> ToolOutput:
    """Look a person, place, organisation or concept up in Wikipedia: summary and key facts such as birth dates.

    Args:
        query: the name or subject, e.g. "Lionel Messi" or "梅西"
        lang: Wikipedia language, "en" or "zh" (default: the question's language)
    """
    lang = (lang or context.language or "en").strip().lower()
    if not _LANG.match(lang):
        raise ToolError(f"lang must be a Wikipedia language code such as en or zh, got {lang!r}")
    if not query.strip():
        raise ToolError("query is empty: name what to look up")
    settings = tool_settings(context)
    base = settings.wikipedia_url.replace("{lang}", lang).rstrip("/")
    headers = {"User-Agent": settings.user_agent}
    if lang == "zh":
        headers["Accept-Language"] = "zh-CN"  # simplified script, not a mix
    async with api_session(context) as session:
        titles = await _search(session, base, query, headers, settings.http_timeout)
        if not titles:
            return ToolOutput(text=f"no Wikipedia ({lang}) article matches {query!r}", display=f"📚 nothing found for “{query}”")
        article = await _article(session, base, titles[0], headers, settings.http_timeout)
    return _render(article, titles[1:], lang, output_budget(context))


async def _search(session: aiohttp.ClientSession, base: str, query: str, headers: dict | None, timeout: float) -> list[str]:
    params = {"action": "query", "list": "search", "srsearch": query, "srlimit": "4", "format": "json", "utf8": "1"}
    body = await get_json(session, f"{base}/w/api.php", params=params, headers=headers, service="Wikipedia search", timeout=timeout)
    return [hit["title"] for hit in body.get("query", {}).get("search", [])]


async def _article(session: aiohttp.ClientSession, base: str, title: str, headers: dict | None, timeout: float) -> Article:
    path = quote(title.replace(" ", "_"), safe="")
    summary = await get_json(session, f"{base}/api/rest_v1/page/summary/{path}", headers=headers, service="Wikipedia", timeout=timeout)
    lead = await _lead(session, base, title, headers, timeout)
    return Article(
        title=summary.get("title", title),
        description=summary.get("description", ""),
        extract=summary.get("extract", ""),
        url=summary.get("content_urls", {}).get("desktop", {}).get("page", ""),
        facts=key_facts(lead or summary.get("extract", "")) + ((f"disambiguation page",) if summary.get("type") == "disambiguation" else ()),
    )


async def _lead(session: aiohttp.ClientSession, base: str, title: str, headers: dict | None, timeout: float) -> str:
    """The plain-text lead section: unlike the summary it keeps the parenthesis with the dates."""
    params = {"action": "query", "prop": "extracts", "exintro": "1", "explaintext": "1", "redirects": "1",
              "titles": title, "format": "json"}
    try:
        body = await get_json(session, f"{base}/w/api.php", params=params, headers=headers, service="Wikipedia", timeout=timeout)
    except ToolError:
        return ""  # the summary alone still answers most questions
    pages = body.get("query", {}).get("pages", {})
    return next((p.get("extract", "") for p in pages.values() if p.get("extract")), "")


def key_facts(lead: str) -> tuple[str, ...]:
    """Birth and death dates written in an article's opening, as ISO dates."""
    first = lead[:600]
    facts: list[str] = []
    if span := _EN_SPAN.search(first):
        facts += [f"born: {_iso_en(span[1])}", f"died: {_iso_en(span[2])}"]
    elif born := _EN_BORN.search(first):
        facts.append(f"born: {_iso_en(born[1])}")
    if not facts and (born := _ZH_BORN.search(first)):
        facts.append(f"born: {_iso_zh(born)}")
        if died := _ZH_DIED.match(first, born.end() - 1):
            facts.append(f"died: {_iso_zh(died)}")
    return tuple(facts)


def _iso_en(text: str) -> str:
    for pattern in ("%d %B %Y", "%B %d, %Y"):
        try:
            return datetime.strptime(text, pattern).date().isoformat()
        except ValueError:
            continue
    return text


def _iso_zh(match: re.Match[str]) -> str:
    year, month, day = (int(g) for g in match.groups())
    return f"{year:04d}-{month:02d}-{day:02d}"


def _render(article: Article, others: list[str], lang: str, budget: int) -> ToolOutput:
    lines = [f"title: {article.title}"]
    if article.description:
        lines.append(f"description: {article.description}")
    lines += list(article.facts)
    lines += [f"summary: {article.extract}", f"source: {article.url or 'Wikipedia (' + lang + ')'}"]
    if others:
        lines.append("other matching articles: " + "; ".join(others))
    facts = (" · " + ", ".join(article.facts)) if article.facts else ""
    display = f"📚 {article.title}{facts}\n{article.extract[:280]}"
    return ToolOutput(text=as_data(f"Wikipedia ({lang})", "\n".join(lines), budget), display=display)
