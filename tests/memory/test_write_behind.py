"""Turns written in the background, the turns kept in memory, compaction, and a store that is
created only when first needed: none of it may lose a turn or show a stale one."""

from __future__ import annotations

import json

from kagentbot.bot.services import Services
from kagentbot.memory.startup.deferred import DeferredStore
from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience, TaskRecord
from tests.fakes.ollama_server import Scripted

from .conftest import make_settings

ALICE = Audience("user:slack:ALICE")
TEAM = Audience("user:slack:ALICE", "chat:slack:TEAM")


def answers(recall) -> list[str]:
    return [t.answer for t in recall.conversation]


async def test_a_background_write_is_seen_at_once_and_after_a_restart(settings, builtin):
    store = await MemoryStore.open(settings, embedder=builtin)
    store.remember_soon(ALICE, "where is tea grown", "Yunnan", [TaskRecord("kb", {"name": "kb"}, "Yunnan hills")])
    recall = await store.recall(ALICE, "where is tea grown", turns=4, limit=2)  # waits for the write of this scope
    assert answers(recall) == ["Yunnan"] and recall.tasks[0].result == "Yunnan hills"
    store.remember_soon(ALICE, "and coffee?", "Also Yunnan", [])
    await store.flush()
    store.close()
    reopened = await MemoryStore.open(settings, embedder=builtin)
    assert answers(await reopened.recall(ALICE, "tea", turns=4, limit=2)) == ["Yunnan", "Also Yunnan"]


async def test_cached_turns_follow_writes_of_another_connection(settings, builtin):
    mine = await MemoryStore.open(settings, embedder=builtin)
    other = await MemoryStore.open(settings, embedder=builtin)  # as another process would
    await mine.remember(TEAM, "q1", "a1", [])
    assert answers(await mine.recall(TEAM, "q", turns=4, limit=1)) == ["a1"]  # now cached
    await other.remember(TEAM, "q2", "a2", [])
    await mine.remember(TEAM, "q3", "a3", [])  # commits after a version it has not seen
    assert answers(await mine.recall(TEAM, "q", turns=4, limit=1)) == ["a1", "a2", "a3"]
    assert answers(await mine.recall(TEAM, "q", turns=2, limit=1)) == ["a2", "a3"]
    assert answers(await mine.recall(ALICE, "q", turns=4, limit=1)) == []  # the DM is another conversation


async def test_the_cache_holds_only_the_last_turns_and_reads_more_when_asked(settings, builtin):
    store = await MemoryStore.open(settings, embedder=builtin)
    for i in range(40):
        await store.remember(ALICE, f"q{i}", f"a{i}", [])
    assert answers(await store.recall(ALICE, "q", turns=3, limit=1)) == ["a37", "a38", "a39"]
    assert len((await store.recall(ALICE, "q", turns=40, limit=1)).conversation) == 40
    await store.remember(ALICE, "q40", "a40", [])
    assert answers(await store.recall(ALICE, "q", turns=2, limit=1)) == ["a39", "a40"]


async def test_knowledge_added_after_an_empty_recall_is_found(settings, builtin):
    store = await MemoryStore.open(settings, embedder=builtin)
    await store.remember(ALICE, "hello", "hi", [TaskRecord("t", {}, "r")])  # tasks: ranked recall
    assert (await store.recall(ALICE, "bicycle", turns=0, limit=2)).knowledge == ()
    await store.add_document(from_text("Alice keeps her bicycle in warehouse 3.", settings.memory), ALICE.user_scope)
    assert "warehouse 3" in (await store.recall(ALICE, "bicycle", turns=0, limit=2)).knowledge[0].text


async def test_background_writes_are_compacted_and_nothing_is_lost(tmp_path, builtin):
    settings = make_settings(tmp_path / "data", memory={"compact_every": 4})
    store = await MemoryStore.open(settings, embedder=builtin)
    for i in range(9):
        store.remember_soon(ALICE, f"q{i}", f"a{i}", [TaskRecord("t", {}, f"r{i}")])
        await store.flush()
    assert answers(await store.recall(ALICE, "q", turns=20, limit=1)) == [f"a{i}" for i in range(9)]
    fragments = [t.stats()["fragment_stats"]["num_fragments"] for t in (store._tables.tasks, store._tables.conversation)]
    assert all(n <= 4 for n in fragments), fragments  # 9 commits each; without compaction 9 files


async def test_ask_on_a_new_data_dir_plans_before_the_store_exists_and_keeps_the_turn(fake_ollama, tmp_path, builtin):
    fake_ollama.responder = lambda body: Scripted("Fifteen days." if body.get("stream") else
                                                  '{"task_name": "task_complete", "command": {"name": "task_complete", "args": {}}}')
    settings = make_settings(tmp_path / "data", llm={"host": fake_ollama.url})
    async with await Services.open(settings, defer_memory=True) as services:
        assert isinstance(services.memory, DeferredStore)
        assert not (tmp_path / "data" / "lancedb").exists()  # nothing opened or created yet
        from kagentbot.agent.loop import TurnRequest

        events = [e async for e in services.agent().run(TurnRequest("How much leave?", ALICE))]
        assert type(events[-1]).__name__ == "AnswerDone"
    assert "How much leave?" in json.dumps(fake_ollama.chat_requests())
    reopened = await MemoryStore.open(settings, embedder=builtin)  # closing flushed the turn
    assert answers(await reopened.recall(ALICE, "leave", turns=2, limit=1)) == ["Fifteen days."]
    async with await Services.open(settings, defer_memory=True) as services:
        assert isinstance(services.memory, MemoryStore)  # it exists now: opened as usual


async def test_turns_finished_together_are_written_in_few_commits_and_none_is_lost(settings, builtin):
    store = await MemoryStore.open(settings, embedder=builtin)
    rooms = [Audience("user:slack:ALICE", f"chat:slack:ROOM{n}") for n in range(40)]
    for room in rooms[:10]:  # cached before the writes, so the cache must follow them
        assert answers(await store.recall(room, "q", turns=4, limit=1)) == []
    before = store._tables.conversation.version
    for turn in range(2):
        for n, room in enumerate(rooms):
            store.remember_soon(room, f"q{n}-{turn}", f"a{n}-{turn}", [TaskRecord("t", {"name": "t"}, f"r{n}-{turn}")])
    await store.flush()
    commits = store._tables.conversation.version - before
    assert 1 <= commits <= 4  # 80 turns: the first alone, the rest batched (plus compaction, if any)
    for n, room in enumerate(rooms):
        assert answers(await store.recall(room, "q", turns=4, limit=1)) == [f"a{n}-0", f"a{n}-1"]
    store.close()
    reopened = await MemoryStore.open(settings, embedder=builtin)
    assert answers(await reopened.recall(rooms[7], "q", turns=4, limit=1)) == ["a7-0", "a7-1"]
    assert reopened._tables.tasks.count_rows() == 80
