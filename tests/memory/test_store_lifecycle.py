"""Persistence, embedder changes, schema versions, all-or-nothing writes and upkeep."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kagentbot.memory.embedders import EmbedderError, OllamaEmbedder
from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import EmbedderMismatch, MemoryStore, StoreError
from kagentbot.memory.types import Audience, TaskRecord

from .conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
ALICE = Audience("user:slack:ALICE")

WRITER = """
import asyncio, sys
from kagentbot.config.settings import load_settings
from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience, TaskRecord
async def main():
    settings = load_settings(environ={}, data_dir=sys.argv[1])
    store = await MemoryStore.open(settings)
    alice = Audience("user:slack:ALICE")
    await store.add_document(from_text("熊猫主要以竹子为食，每天要吃十几个小时。", settings.memory), alice.user_scope)
    await store.remember(alice, "大熊猫吃什么", "竹子", [TaskRecord("kb", {"name": "kb"}, "竹子")])
asyncio.run(main())
"""

READER = """
import asyncio, json, sys
from kagentbot.config.settings import load_settings
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience
async def main():
    settings = load_settings(environ={}, data_dir=sys.argv[1])
    store = await MemoryStore.open(settings)
    recall = await store.recall(Audience("user:slack:ALICE"), "熊猫的食物", turns=4, limit=3)
    print(json.dumps({"knowledge": [p.text for p in recall.knowledge],
                      "turns": [t.answer for t in recall.conversation],
                      "tasks": [t.result for t in recall.tasks]}, ensure_ascii=False))
asyncio.run(main())
"""


def _python(script: str, data_dir: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(data_dir)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_what_one_process_writes_another_reads(tmp_path):
    _python(WRITER, tmp_path)
    seen = json.loads(_python(READER, tmp_path).strip().splitlines()[-1])
    assert any("竹子" in text for text in seen["knowledge"])
    assert seen["turns"] == ["竹子"]
    assert seen["tasks"] == ["竹子"]


async def test_a_different_embedder_is_refused_until_reindex(tmp_path, embed_server, builtin):
    settings = make_settings(tmp_path)
    ollama = OllamaEmbedder(embed_server.url, "fake-embed")
    first = await MemoryStore.open(settings, embedder=ollama)
    doc = await first.add_document(from_text("Tea is grown on the hills of Yunnan.", settings.memory), ALICE.user_scope)
    await first.remember(ALICE, "where is tea grown", "Yunnan", [TaskRecord("kb", {}, "Yunnan hills")])

    with pytest.raises(EmbedderMismatch, match="kagentbot kb reindex") as refused:
        await MemoryStore.open(settings, embedder=builtin)
    assert "ollama:fake-embed" in str(refused.value)

    rebuilding = await MemoryStore.open(settings, embedder=builtin, reindexing=True)
    counts = await rebuilding.reindex()
    assert counts == {"chunks": 1, "tasks": 1}
    reopened = await MemoryStore.open(settings, embedder=builtin)
    assert reopened.embedder_id == builtin.id
    hits = await reopened.search(ALICE, "云南的茶叶 tea Yunnan", 3)
    assert [h.id.split("-")[0] for h in hits] == [doc.document.id]
    assert (await reopened.recall(ALICE, "where is tea grown", turns=2, limit=2)).tasks[0].result == "Yunnan hills"
    with pytest.raises(EmbedderMismatch):
        await MemoryStore.open(settings, embedder=ollama)


async def test_a_running_store_follows_a_reindex_done_elsewhere(tmp_path, builtin):
    """`kagentbot kb reindex` in another process drops the tables the bot had open; the bot's
    store moves to the new ones by itself instead of failing until a restart."""
    settings = make_settings(tmp_path)
    bot = await MemoryStore.open(settings, embedder=builtin)
    doc = await bot.add_document(from_text("Tea is grown on the hills of Yunnan.", settings.memory), ALICE.user_scope)
    await bot.remember(ALICE, "where is tea grown", "Yunnan", [TaskRecord("kb", {}, "Yunnan hills")])
    cli = await MemoryStore.open(settings, embedder=builtin, reindexing=True)
    await cli.reindex()
    deadline = asyncio.get_running_loop().time() + 8  # LanceDB looks for other writers every 2 s
    while True:
        try:
            hits = await bot.search(ALICE, "tea Yunnan", 3)
            recall = await bot.recall(ALICE, "where is tea grown", turns=2, limit=2)
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)
    assert [h.id.split("-")[0] for h in hits] == [doc.document.id] and recall.tasks[0].result == "Yunnan hills"
    added = await bot.add_document(from_text("Coffee grows in Pu'er.", settings.memory), ALICE.user_scope)
    fresh = await MemoryStore.open(settings, embedder=builtin)  # what a restart would see
    assert [d.id for d in await fresh.list_documents([ALICE.user_scope])] == [added.document.id, doc.document.id]


@pytest.mark.parametrize(("version", "message"), [(99, "newer kagentbot"), (0, "no migration")])
async def test_other_schema_versions_are_explained(tmp_path, builtin, version, message):
    import lancedb

    settings = make_settings(tmp_path)
    await MemoryStore.open(settings, embedder=builtin)
    db = lancedb.connect(settings.memory_uri)
    db.create_table("meta", data=[{"schema_version": version, "embedder": builtin.id, "dim": 512, "generation": 1}], mode="overwrite")
    with pytest.raises(StoreError, match=message):
        await MemoryStore.open(settings, embedder=builtin)


async def test_an_embedding_failure_mid_document_stores_nothing(tmp_path, embed_server):
    settings = make_settings(tmp_path, memory={"chunk_chars": 100, "chunk_overlap": 0})
    store = await MemoryStore.open(settings, embedder=OllamaEmbedder(embed_server.url, "fake-embed", batch_size=2))
    text = " ".join(f"Sentence {i} talks about a different topic entirely, number {i}." for i in range(12))
    embed_server.fail_after = 2  # the first batch (the dimension probe happened at open) succeeds, then 500
    with pytest.raises(EmbedderError, match="terminated"):
        await store.add_document(from_text(text, settings.memory), ALICE.user_scope)
    embed_server.fail_after = None
    assert await store.list_documents(ALICE.readable) == []
    assert await store.search(ALICE, "Sentence 1 topic", 5) == []


async def test_concurrent_adds_of_the_same_text_store_it_once(store: MemoryStore):
    document = from_text("Same text sent twice at once.", store.settings.memory)
    results = await asyncio.gather(*(store.add_document(document, ALICE.user_scope) for _ in range(3)))
    assert sorted(r.duplicate for r in results) == [False, True, True]
    assert len(await store.list_documents(ALICE.readable)) == 1


async def test_two_processes_adding_the_same_document_at_once_store_it_once(tmp_path, builtin):
    """The CLI and a running bot are two stores on one directory: each checks for the document,
    then embeds and writes it. The directory's document lock makes check-and-write one step."""
    settings = make_settings(tmp_path)
    bot, cli = [await MemoryStore.open(settings, embedder=builtin) for _ in range(2)]
    document = from_text("The office closes at six on Fridays. " * 40, settings.memory)
    results = await asyncio.gather(bot.add_document(document, ALICE.user_scope), cli.add_document(document, ALICE.user_scope))
    assert sorted(r.duplicate for r in results) == [False, True]
    fresh = await MemoryStore.open(settings, embedder=builtin)
    assert len(await fresh.list_documents([ALICE.user_scope])) == 1


async def test_an_add_waiting_for_another_process_can_be_cancelled_at_once(tmp_path, builtin):
    """Stopping the bot while the CLI holds the document lock must not wait for the CLI: no
    worker thread may be left blocked on the lock."""
    import fcntl

    settings = make_settings(tmp_path)
    store = await MemoryStore.open(settings, embedder=builtin)
    held = os.open(Path(settings.memory_uri) / ".documents.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process is adding a document
    try:
        adding = asyncio.create_task(store.add_document(from_text("Waiting.", settings.memory), ALICE.user_scope))
        await asyncio.sleep(0.3)
        assert not adding.done()
        adding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(adding, 5)
        await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 5)
    finally:
        os.close(held)


async def test_upkeep_prunes_old_rows_and_builds_the_ann_index(tmp_path, embed_server):
    settings = make_settings(tmp_path, memory={"chunk_chars": 100, "chunk_overlap": 0, "ann_min_rows": 256})
    store = await MemoryStore.open(settings, embedder=OllamaEmbedder(embed_server.url, "fake-embed", batch_size=128))
    text = "\n".join(f"Line {i}: warehouse {i % 17} holds item {i * 7919 % 1000}." for i in range(700))
    await store.add_document(from_text(text, settings.memory), "global")
    await store.add_document(from_text("Alice keeps her bicycle in warehouse 3.", settings.memory), ALICE.user_scope)
    await store.remember(ALICE, "q", "a", [TaskRecord("t", {}, "r")])

    report = await store.optimize()
    assert report["ann_index_built"] == 1 and report["knowledge_rows"] >= 256
    assert (await store.optimize())["ann_index_built"] == 0  # built once
    bob = Audience("user:slack:BOB")
    assert "user:slack:ALICE" not in {p.scope for p in await store.search(bob, "bicycle warehouse 3", 10)}
    assert any("bicycle" in p.text for p in await store.search(ALICE, "bicycle warehouse 3", 5))

    assert await store.prune_conversation(1) == 0 and await store.prune_tasks(1) == 0
    await asyncio.sleep(0.01)
    assert await store.prune_conversation(0) == 1 and await store.prune_tasks(0) == 1
    recall = await store.recall(ALICE, "q", turns=5, limit=1)
    assert recall.conversation == () and recall.tasks == ()
