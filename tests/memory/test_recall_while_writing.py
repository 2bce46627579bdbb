"""Recalls never wait for the background writer: a commit, a compaction or index upkeep in
progress (here: the writer held at its commit lock, as a long one would hold it) leaves recalls
reading the unwritten turns from memory, with the same scope rules as the tables."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience, TaskRecord

from .conftest import make_settings

ALICE = Audience("user:slack:ALICE")
BOB = Audience("user:slack:BOB")
ALICE_IN_TEAM = Audience("user:slack:ALICE", "chat:slack:TEAM")
BOB_IN_TEAM = Audience("user:slack:BOB", "chat:slack:TEAM")
TEA = TaskRecord("kb_search", {"name": "kb_search", "args": {"query": "tea"}}, "Tea is grown in the Yunnan hills")


def answers(recall) -> list[str]:
    return [t.answer for t in recall.conversation]


def found(tasks) -> tuple[TaskRecord, ...]:
    """The records as stored (a recalled record also says which scope it was kept under)."""
    return tuple(replace(t, scope="") for t in tasks)


@contextlib.contextmanager
def writer_held(store: MemoryStore):
    store._tables.commit_lock.acquire()
    try:
        yield
    finally:
        store._tables.commit_lock.release()


async def test_a_recall_does_not_wait_while_the_writer_is_busy(settings, builtin):
    store = await MemoryStore.open(settings, embedder=builtin)
    with writer_held(store):
        store.remember_soon(ALICE, "where is tea grown", "Yunnan", [TEA])
        recall = await asyncio.wait_for(store.recall(ALICE, "where is tea grown", turns=4, limit=2), 20)
        assert answers(recall) == ["Yunnan"] and found(recall.tasks) == (TEA,)
        assert store._tables.conversation.count_rows() == 0  # truly not committed yet
        store.remember_soon(ALICE, "and coffee?", "Also Yunnan", [])
        recall = await asyncio.wait_for(store.recall(ALICE, "tea", turns=4, limit=2), 20)
        assert answers(recall) == ["Yunnan", "Also Yunnan"]
    await store.flush()
    assert answers(await store.recall(ALICE, "tea", turns=4, limit=2)) == ["Yunnan", "Also Yunnan"]  # once each
    assert found((await store.recall(ALICE, "where is tea grown", turns=0, limit=2)).tasks) == (TEA,)
    store.close()
    reopened = await MemoryStore.open(settings, embedder=builtin)
    assert answers(await reopened.recall(ALICE, "tea", turns=4, limit=2)) == ["Yunnan", "Also Yunnan"]


async def test_unwritten_turns_are_read_only_by_who_may_read_them(settings, builtin):
    store = await MemoryStore.open(settings, embedder=builtin)
    secret = TaskRecord("kb_search", {"name": "kb_search"}, "Alice's tea order: 3 kg of pu-erh")
    with writer_held(store):
        store.remember_soon(ALICE, "my tea order?", "3 kg of pu-erh", [secret])  # Alice's DM
        store.remember_soon(ALICE_IN_TEAM, "where is tea grown", "Yunnan", [TEA])  # the shared channel
        in_team = await asyncio.wait_for(store.recall(BOB_IN_TEAM, "tea order", turns=4, limit=2), 20)
        assert answers(in_team) == ["Yunnan"] and found(in_team.tasks) == (TEA,)
        bob_alone = await asyncio.wait_for(store.recall(BOB, "tea order", turns=4, limit=2), 20)
        assert answers(bob_alone) == [] and bob_alone.tasks == ()
        alice_alone = await asyncio.wait_for(store.recall(ALICE, "tea order", turns=4, limit=2), 20)
        assert answers(alice_alone) == ["3 kg of pu-erh"] and secret in found(alice_alone.tasks)
    await store.flush()


async def test_turns_of_a_steady_flow_are_gathered_into_one_commit_and_flush_writes_them_at_once(tmp_path, builtin):
    settings = make_settings(tmp_path / "data", memory={"write_interval": 60})
    store = await MemoryStore.open(settings, embedder=builtin)
    store.remember_soon(ALICE, "q0", "a0", [])  # a lone turn after a quiet spell: written at once
    await store._log.settled([ALICE.user_scope])
    assert store._tables.conversation.count_rows() == 1
    before = store._tables.conversation.version
    for n in range(1, 6):
        store.remember_soon(ALICE, f"q{n}", f"a{n}", [TEA])
        assert answers(await store.recall(ALICE, "q", turns=10, limit=1)) == [f"a{i}" for i in range(n + 1)]
    assert store._tables.conversation.count_rows() == 1  # gathering until the interval has passed
    await asyncio.wait_for(store.flush(), 20)  # not the 60 s
    assert store._tables.conversation.count_rows() == 6 and store._tables.tasks.count_rows() == 5
    assert store._tables.conversation.version == before + 1  # the five turns: one commit


async def test_compaction_removes_old_table_versions(tmp_path, builtin):
    settings = make_settings(tmp_path / "data", memory={"compact_every": 4, "keep_versions_minutes": 1e-4})
    store = await MemoryStore.open(settings, embedder=builtin)
    for n in range(8):
        store.remember_soon(ALICE, f"q{n}", f"a{n}", [TEA])
        await store.flush()
    # 8 commits each, then compaction's own: without the cleanup every one would be kept
    assert len(store._tables.conversation.list_versions()) <= 4
    assert len(store._tables.tasks.list_versions()) <= 4
    assert answers(await store.recall(ALICE, "q", turns=10, limit=1)) == [f"a{n}" for n in range(8)]


PU_ERH = TaskRecord("kb_search", {"name": "kb_search"}, "Pu-erh tea comes from Yunnan")
BIKE = TaskRecord("kb_search", {"name": "kb_search"}, "The bicycle shed is behind building 3")


async def test_task_records_held_in_memory_follow_commits_of_another_connection(settings, builtin):
    mine = await MemoryStore.open(settings, embedder=builtin)
    other = await MemoryStore.open(settings, embedder=builtin)  # as another process would
    await mine.remember(ALICE, "where is tea grown", "Yunnan", [TEA])
    assert found((await mine.recall(ALICE, "where is tea grown", turns=0, limit=1)).tasks) == (TEA,)  # now held
    await other.remember(ALICE, "which tea is from Yunnan", "pu-erh", [PU_ERH])
    await mine.remember(ALICE, "where is the bicycle shed", "building 3", [BIKE])  # after a version it has not seen
    tea = [t.result for t in (await mine.recall(ALICE, "tea grown in Yunnan", turns=0, limit=1)).tasks]
    assert tea[:2] in ([TEA.result, PU_ERH.result], [PU_ERH.result, TEA.result])  # the other's, too
    assert found((await mine.recall(ALICE, "bicycle shed", turns=0, limit=1)).tasks)[0] == BIKE
    assert (await mine.recall(BOB, "tea grown in Yunnan", turns=0, limit=1)).tasks == ()


async def test_a_scope_with_more_task_records_than_are_held_is_searched_in_the_table(settings, builtin, monkeypatch):
    held = await MemoryStore.open(settings, embedder=builtin)
    await held.remember(ALICE, "tea and bikes", "noted", [TEA, PU_ERH, BIKE])
    expected = (await held.recall(ALICE, "bicycle shed", turns=0, limit=1)).tasks
    import kagentbot.memory.tasks as tasks_module

    monkeypatch.setattr(tasks_module, "TASKS_HELD", 2)
    searched = await MemoryStore.open(settings, embedder=builtin)
    assert (await searched.recall(ALICE, "bicycle shed", turns=0, limit=1)).tasks == expected
    assert searched._tasks._held[ALICE.user_scope].vectors is None  # too many: not held
    assert found(expected)[0] == BIKE


async def test_scopes_read_together_and_cut_short_are_read_one_by_one(settings, builtin, monkeypatch):
    import kagentbot.memory.tasks as tasks_module

    sharing = Audience(ALICE.user_scope, "chat:slack:TEAM", share_private=True)  # reads 4 scopes
    many = [TaskRecord("kb_search", {"name": "kb_search"}, f"note {n} about tea") for n in range(9)]
    writer = await MemoryStore.open(settings, embedder=builtin)
    await writer.remember(ALICE, "tea notes", "noted", many)
    await writer.remember(sharing, "where is the bicycle shed", "building 3", [BIKE])
    expected = (await writer.recall(sharing, "bicycle shed", turns=0, limit=1)).tasks
    monkeypatch.setattr(tasks_module, "TASKS_HELD", 2)  # 4 scopes: one read of at most 9 rows
    reader = await MemoryStore.open(settings, embedder=builtin)
    assert (await reader.recall(sharing, "bicycle shed", turns=0, limit=1)).tasks == expected
    assert found(expected)[0] == BIKE
    assert reader._tasks._held[ALICE.user_scope].vectors is None
    assert reader._tasks._held[sharing.chat_scope].ids and reader._tasks._held["global"].ids == ()
