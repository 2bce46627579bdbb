"""Hybrid retrieval quality on the self-made zh + en set, with the builtin embedder."""

from __future__ import annotations

from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience

from .retrieval_set import DOCUMENTS, QUERIES

ASKER = Audience("user:console:eval")


async def measure(store: MemoryStore) -> tuple[float, float]:
    ids = {}
    for key, text in DOCUMENTS.items():
        result = await store.add_document(from_text(text, store.settings.memory, title=key), "global")
        ids[result.document.id] = key
    hit1 = hit5 = 0
    for query, expected in QUERIES:
        ranked = [ids[p.id.split("-")[0]] for p in await store.search(ASKER, query, 5)]
        hit1 += ranked[:1] == [expected]
        hit5 += expected in ranked
    return hit1 / len(QUERIES), hit5 / len(QUERIES)


async def test_hybrid_retrieval_finds_known_answers(store: MemoryStore):
    hit1, hit5 = await measure(store)
    print(f"\nretrieval quality ({len(QUERIES)} zh+en queries, {len(DOCUMENTS)} documents): hit@1={hit1:.3f} hit@5={hit5:.3f}")
    assert hit5 >= 0.85
    assert hit1 >= 0.65
