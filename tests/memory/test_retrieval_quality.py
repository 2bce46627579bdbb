"""Hybrid retrieval quality on the self-made zh + en set, with the builtin embedder."""

from __future__ import annotations

import pytest

from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience

from .conftest import make_settings
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


@pytest.mark.parametrize("tokenizer", ["icu", "ngram"])
async def test_hybrid_retrieval_finds_known_answers(tmp_path, builtin, tokenizer):
    store = await MemoryStore.open(make_settings(tmp_path, memory={"fts_tokenizer": tokenizer}), embedder=builtin)
    hit1, hit5 = await measure(store)
    print(f"\nretrieval quality, {tokenizer} full text ({len(QUERIES)} zh+en queries, {len(DOCUMENTS)} documents): "
          f"hit@1={hit1:.3f} hit@5={hit5:.3f}")
    assert hit5 >= 0.85
    assert hit1 >= 0.65


async def test_switching_the_full_text_tokenizer_keeps_the_data_searchable(tmp_path, builtin):
    first = await MemoryStore.open(make_settings(tmp_path, memory={"fts_tokenizer": "icu"}), embedder=builtin)
    await first.add_document(from_text(DOCUMENTS["zh_gym"], first.settings.memory), "global")
    again = await MemoryStore.open(make_settings(tmp_path, memory={"fts_tokenizer": "ngram"}), embedder=builtin)
    passages = await again.search(ASKER, "健身房", 1)
    assert passages and "健身房" in passages[0].text
