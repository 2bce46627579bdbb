"""The conversation log: finished turns per conversation, written behind the answer in batches,
and the last turns of each conversation cached at the table version they are exact for.

A turn handed to `remember_soon` is held (its task records embedded at once) until its batch is
committed; recalls read it from here meanwhile, so no recall ever waits for a commit, a
compaction or index upkeep. The batch commits the turns and their task records together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kagentbot.memory.embedders import Embedder
from kagentbot.memory.errors import StoreError
from kagentbot.memory.pending import PendingTurn, task_text, turn_of
from kagentbot.memory.tables import Tables, now_ms, quote
from kagentbot.memory.tasks import Embedded, LanceTaskHistory
from kagentbot.memory.types import Audience, TaskRecord, Turn

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings
    from kagentbot.memory.maintenance import LanceMaintenance

_TURNS_CACHED = 32  # per conversation: more than any history_turns a prompt takes

log = logging.getLogger(__name__)


class LanceConversationLog:
    """The conversation table, its write-behind queue and its cache of last turns. `upkeep`
    compacts the tables every `memory.compact_every` batches."""

    def __init__(self, tables: Tables, embedder: Embedder, settings: MemorySettings, tasks: LanceTaskHistory,
                 upkeep: LanceMaintenance) -> None:
        self._tables = tables
        self._embedder = embedder
        self._settings = settings
        self._tasks = tasks
        self._upkeep = upkeep
        # The last turns of each conversation read or written here, with the conversation table
        # version they are exact for (see _last_turns and _add_turns).
        self._turns: dict[str, _CachedTurns] = {}
        self._turns_lock = threading.Lock()  # a read and our own commit must not interleave
        self._writes: dict[str, set[asyncio.Future[None]]] = {}  # write-behind, by conversation key
        self._queue: list[PendingTurn] = []  # turns waiting for the next batch
        # Every turn handed to remember_soon and not yet committed, by conversation key.
        self._unwritten: dict[str, list[PendingTurn]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._last_batch = float("-inf")  # loop time the last background batch began
        self._hurry = asyncio.Event()  # set while a flush waits: write what is queued now
        self._flushes = 0
        self._embedding: set[asyncio.Task[None]] = set()  # task records of unwritten turns being embedded
        self._written = 0  # batches written in the background since the tables were last compacted

    async def remember(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                       scope: str = "") -> None:
        """Store a finished turn under `scope` (default: the audience's conversation); returns once
        it is committed."""
        loop = asyncio.get_running_loop()
        pending = PendingTurn(audience, scope or audience.conversation_key, question, answer, tuple(tasks),
                               now_ms(), None, loop.create_future() if tasks else None)
        if tasks:
            await self._embed_tasks(pending)
        await self._commit([pending])

    def remember_soon(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                      scope: str = "") -> None:
        """`remember` in the background, so a turn ends when its answer is out. Turns finished
        while a batch is being written go into the next one: one commit per table per batch, so
        hundreds of busy conversations cost a few commits, not hundreds. Nothing reads around
        it: until its batch is committed the turn is recalled from memory (its tasks once
        embedded), and `flush` (called by Services.close) waits for every batch."""
        loop = asyncio.get_running_loop()
        key = scope or audience.conversation_key
        done: asyncio.Future[None] = loop.create_future()
        pending = PendingTurn(audience, key, question, answer, tuple(tasks), now_ms(), done,
                               loop.create_future() if tasks else None)
        if tasks:
            self._embed_soon(pending)
        self._queue.append(pending)
        self._unwritten.setdefault(key, []).append(pending)
        self._writes.setdefault(key, set()).add(done)
        done.add_done_callback(lambda write: self._write_done(key, write))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_batches())

    async def _write_batches(self) -> None:
        while self._queue:
            await self._gather()
            batch, self._queue = self._queue, []
            self._last_batch = asyncio.get_running_loop().time()
            try:
                await self._commit(batch)
            except Exception:
                # Nobody awaits these: say what was lost rather than let it vanish.
                log.exception("could not store %d turn(s) in memory (%s)", len(batch),
                              ", ".join(sorted({p.scope for p in batch})))
            finally:
                self._settle(batch)
            self._written += 1
            if self._written >= self._settings.compact_every and not self._upkeep.compacting:
                self._written = 0
                # Its own task, under no conversation's key: flush waits for it, recalls do not.
                task = asyncio.get_running_loop().create_task(self._upkeep.compact())
                self._writes.setdefault("", set()).add(task)
                task.add_done_callback(lambda done: self._write_done("", done))

    async def _gather(self) -> None:
        """Under a steady flow of turns, wait until `memory.write_interval` has passed since the
        last batch began, so that each batch carries every turn finished meanwhile: each commit
        costs a few ms and leaves a version that every later compaction reads. A lone turn after a
        quiet spell is written at once; `flush` cuts the wait short."""
        delay = self._last_batch + self._settings.write_interval - asyncio.get_running_loop().time()
        if delay > 0 and not self._hurry.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), delay)

    def _settle(self, batch: Sequence[PendingTurn]) -> None:
        """The batch is committed (or lost, and logged): recalls read it from the tables now."""
        for pending in batch:
            key = pending.scope
            unwritten = [p for p in self._unwritten.get(key, ()) if p is not pending]
            if unwritten:
                self._unwritten[key] = unwritten
            else:
                self._unwritten.pop(key, None)
            for future in (pending.embedded, pending.done):
                if future is not None and not future.done():
                    future.set_result(None)

    async def _commit(self, batch: Sequence[PendingTurn]) -> None:
        """Commit the batch's turns and task records in one thread hop: one commit per table.
        Turns are committed even when their tasks could not be embedded (that is then raised)."""
        tasks = [(p, await p.embedded) for p in batch if p.embedded is not None]
        embedded = [(p, vectors) for p, vectors in tasks if vectors is not None]
        if embedded:
            await self._tables.current()  # the tasks go to the current generation of tables
        await asyncio.to_thread(self._write, batch, embedded)
        if len(embedded) < len(tasks):
            raise StoreError(f"the task records of {len(tasks) - len(embedded)} turn(s) could not be embedded")

    def _embed_soon(self, pending: PendingTurn) -> None:
        """Embed a finished turn's task records now, apart from its batch: a recall that reads the
        turn before it is committed ranks them without waiting for the batch to gather."""
        task = asyncio.get_running_loop().create_task(self._embed_tasks(pending))
        self._embedding.add(task)
        task.add_done_callback(self._embedding.discard)

    async def _embed_tasks(self, pending: PendingTurn) -> None:
        vectors = None
        try:
            vectors = await self._embedder.embed([task_text(pending.question, t.task_name, t.result) for t in pending.tasks])
        except Exception:
            log.exception("could not embed %d task record(s) of %s", len(pending.tasks), pending.scope)
        finally:
            if pending.embedded is not None and not pending.embedded.done():
                pending.embedded.set_result(vectors)

    def _write(self, batch: Sequence[PendingTurn], embedded: Embedded) -> None:
        with self._tables.commit_lock:
            self._add_turns([p.row() for p in batch])
            if embedded:
                self._tasks.add(embedded)

    def _write_done(self, key: str, write: asyncio.Future[None]) -> None:
        """Forget a finished background write: a turn's batch future, or the compaction task."""
        pending = self._writes.get(key)
        if pending is not None:
            pending.discard(write)
            if not pending:
                del self._writes[key]

    def writing(self) -> list[str]:
        """The conversation keys with turns still being written in the background."""
        return list(self._writes)

    def unfinished(self) -> int:
        """How many background writes (batches' turns, a compaction) have not finished."""
        return sum(map(len, self._writes.values()))

    async def settled(self, scopes: Sequence[str]) -> None:
        """Wait for our background writes into any of `scopes` (a no-op when there are none)."""
        pending = [task for scope in scopes for task in self._writes.get(scope, ())]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def flush(self) -> None:
        """Wait until every background write is committed."""
        self._flushes += 1
        self._hurry.set()
        try:
            while self._writes:
                await asyncio.gather(*(t for tasks in list(self._writes.values()) for t in tasks), return_exceptions=True)
        finally:
            self._flushes -= 1
            if not self._flushes:
                self._hurry.clear()

    async def pending_for(self, audience: Audience) -> tuple[PendingTurn, ...]:
        """The unwritten turns of every conversation the audience may read, with their task
        vectors ready. A snapshot taken before the committed rows are read: a turn committed
        meanwhile is then seen twice (and counted once, by id), never missed."""
        pending = tuple(p for scope in audience.readable for p in self._unwritten.get(scope, ()))
        embedding = [p.embedded for p in pending if p.embedded is not None and not p.embedded.done()]
        if embedding:
            await asyncio.gather(*embedding, return_exceptions=True)
        return pending

    def last_of(self, audience: Audience, turns: int, pending: tuple[PendingTurn, ...]) -> list[Turn]:
        """The last turns the audience may read here, committed and unwritten, in the order they
        happened: the chat's, and with sharing on the asker's private turns in this chat."""
        if turns <= 0:
            return []
        keys = audience.conversation_keys
        committed = [item for key in keys for item in self._last_turns(key, turns)]
        seen = {turn_id for turn_id, _ in committed}
        newer = [(p.id, p.turn) for p in pending if p.scope in keys and p.id not in seen]
        merged = committed + newer
        if len(keys) > 1:
            merged.sort(key=lambda item: item[1].at)
        return [turn for _, turn in merged[-turns:]]

    def _last_turns(self, key: str, turns: int) -> list[tuple[str, Turn]]:
        """The last `turns` turns of a conversation. Served from memory while the conversation
        table is at the version they were read (or written by us) at; any other commit, from this
        process or another, changes the version and the turns are read again. No lock is held
        while reading the table: hundreds of conversations recall at once."""
        if turns <= 0:
            return []
        version = self._tables.conversation.version
        with self._turns_lock:
            cached = self._turns.get(key)
        if cached is None or cached.version != version or not cached.covers(turns):
            cached = self._read_turns(key, version, max(turns, _TURNS_CACHED))
            if self._tables.conversation.version == version:  # else a commit landed meanwhile: don't keep it
                with self._turns_lock:
                    current = self._turns.get(key)
                    if current is None or current.version <= version:
                        self._turns[key] = cached
        return list(cached.turns[-turns:])

    def _read_turns(self, key: str, version: int, depth: int) -> _CachedTurns:
        columns = ["id", "scope", "user_scope", "question", "answer", "at_ms"]
        query = self._tables.conversation.search().where(f"scope = {quote(key)}").select(columns).limit(None)
        rows = sorted(query.to_arrow().to_pylist(), key=lambda r: r["at_ms"])
        kept = tuple((r["id"], turn_of(r)) for r in rows[-depth:])
        return _CachedTurns(version, kept, depth, complete=len(rows) <= depth)

    def _add_turns(self, rows: list[dict[str, Any]]) -> None:
        """Commit turns in one commit. When it lands right after the version we last saw, nothing
        but it changed: the cached turns stay exact, moved to the new version, with ours appended.
        The lock guards the cache only, not the commit, so recalls go on meanwhile."""
        before = self._tables.conversation.version
        after = getattr(self._tables.conversation.add(rows), "version", None)
        with self._turns_lock:
            if after != before + 1:
                self._turns.clear()  # someone else committed in between: read afresh
                return
            for key, cached in list(self._turns.items()):
                if cached.version == after:
                    continue  # read after our commit: it has our turns already
                if cached.version != before:
                    del self._turns[key]
                    continue
                for row in rows:
                    if row["scope"] == key:
                        cached = cached.appended(after, (row["id"], turn_of(row)))
                self._turns[key] = replace(cached, version=after)



@dataclass(frozen=True)
class _CachedTurns:
    version: int  # the conversation table version these turns are exact for
    turns: tuple[tuple[str, Turn], ...]  # (row id, turn), oldest first, at most `depth`
    depth: int
    complete: bool  # the conversation has no older turns than these

    def covers(self, turns: int) -> bool:
        return self.complete or turns <= len(self.turns)

    def appended(self, version: int, turn: tuple[str, Turn]) -> _CachedTurns:
        kept = (*self.turns, turn)
        complete = self.complete and len(kept) <= self.depth
        return _CachedTurns(version, kept[-self.depth:], self.depth, complete)
