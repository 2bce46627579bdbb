from __future__ import annotations

from datetime import datetime, timezone

from kagentbot.memory.types import Passage
from kagentbot.tools.catalog import build_registry
from kagentbot.tools.registry import ToolContext

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


class TinyKnowledge:
    """The KnowledgeSearcher protocol over a list, scored by shared words."""

    def __init__(self, docs: list[tuple[str, str]]) -> None:
        self.docs = docs
        self.calls: list[tuple[str, int]] = []

    async def search_knowledge(self, query: str, limit: int) -> list[Passage]:
        self.calls.append((query, limit))
        words = set(query.lower().split())
        scored = [Passage(src, text, src, "global", len(words & set(text.lower().split()))) for src, text in self.docs]
        return sorted((h for h in scored if h.score), key=lambda h: -h.score)[:limit]


async def test_kb_search_returns_passages_as_data(make_settings):
    kb = TinyKnowledge([("handbook.pdf", "Expense reports are due on the 5th of each month."),
                        ("faq.md", "The VPN address is vpn.corp.example.")])
    settings = make_settings(memory={"top_k": 3})
    ctx = ToolContext(now=NOW, settings=settings, knowledge=kb)
    result = await build_registry(settings).invoke("kb_search", {"query": "when are expense reports due"}, ctx)
    assert result.ok and "[1] (handbook.pdf) Expense reports are due on the 5th" in result.text
    assert "vpn" not in result.text.lower() and "untrusted data from the knowledge base" in result.text
    assert result.display == "📂 1 passages from handbook.pdf" and kb.calls == [("when are expense reports due", 3)]
    empty = await build_registry(settings).invoke("kb_search", {"query": "holiday policy"}, ctx)
    assert empty.ok and "has nothing about 'holiday policy'" in empty.text


async def test_kb_search_without_a_knowledge_base_says_so():
    result = await build_registry().invoke("kb_search", {"query": "x"}, ToolContext(now=NOW))
    assert not result.ok and "no knowledge base is attached" in result.text
