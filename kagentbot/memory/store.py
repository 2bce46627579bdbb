"""The memory store: one LanceDB database holding the knowledge base (knowledge.py), the
conversation log with its write-behind queue (conversation.py) and the task history (tasks.py),
kept up by maintenance.py, over the tables of tables.py. `MemoryStore` composes them; the rest of
kagentbot sees it through the Protocols of memory.contracts. Every row carries its scope, and
every read filters by the asker's readable scopes inside the query (prefilter), so nobody's top-k
is ever computed over someone else's rows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from kagentbot.memory.conversation import LanceConversationLog
from kagentbot.memory.document_lock import DocumentLock, local_document_lock
from kagentbot.memory.embedders import Embedder, Progress, build_embedder
from kagentbot.memory.errors import EmbedderMismatch, NotFound, StoreError
from kagentbot.memory.ingest import Document
from kagentbot.memory.knowledge import LanceKnowledgeBase
from kagentbot.memory.maintenance import LanceMaintenance
from kagentbot.memory.pending import PendingTurn
from kagentbot.memory.tables import Tables, connect, holds_vectors, quote, scope_filter
from kagentbot.memory.tasks import LanceTaskHistory
from kagentbot.memory.types import (
    PRIVATE_IN, AddResult, Audience, DocumentInfo, Passage, Recall, TaskRecord,
)

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

__all__ = [
    "AddResult", "DocumentInfo", "EmbedderMismatch", "KnowledgeView", "MemoryStore", "NotFound", "StoreError",
    "scope_filter",
]

log = logging.getLogger(__name__)


class MemoryStore:
    """Open with `await MemoryStore.open(settings)`. Implements `contracts.Memory` (and so the
    agent's `MemoryView`) by handing each call to the part that holds it."""

    def __init__(self, db: Any, embedder: Embedder, settings: Settings, meta: dict[str, Any], uri: str,
                 document_lock: DocumentLock | None = None) -> None:
        self._embedder = embedder
        self.settings = settings  # the commands read limits and fetch settings from here
        memory = settings.memory
        self._tables = Tables(db, memory, meta, uri, embedder.id)
        self._legs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-search")
        self._knowledge = LanceKnowledgeBase(self._tables, embedder, memory, self._legs, document_lock or local_document_lock(uri))
        self._tasks = LanceTaskHistory(self._tables, memory)
        self._upkeep = LanceMaintenance(self._tables, embedder, memory, processes=document_lock)
        self._log = LanceConversationLog(self._tables, embedder, memory, self._tasks, self._upkeep)
        # Scopes seen holding knowledge or task rows. Only positives are cached: rows can appear
        # from another process at any time, and a stale positive merely costs one embedding.
        self._searchable: set[frozenset[str]] = set()
        self._tables.on_switch(self._searchable.clear)
        if self._tables.knowledge.count_rows() or self._tables.tasks.count_rows():
            embedder.preload()  # a query will need the model: load it while start-up goes on

    @classmethod
    async def open(
        cls, settings: Settings, *, embedder: Embedder | None = None, reindexing: bool = False,
        document_lock: DocumentLock | None = None,
    ) -> MemoryStore:
        """Open (creating if new) the store at `settings.memory_uri`. Raises EmbedderMismatch when
        the tables were built by another embedder, unless `reindexing` (then call `reindex`).
        `document_lock`: what keeps processes from adding a document twice (default: a file lock
        for a local store, none for an object store; replicas hand in one in Redis)."""
        embedder = embedder or build_embedder(settings)
        if holds_vectors(settings.memory_uri):
            embedder.preload()  # the first recall will embed: load the model while LanceDB imports
        db, meta = await connect(settings, embedder, reindexing=reindexing)
        return await asyncio.to_thread(cls, db, embedder, settings, meta, settings.memory_uri, document_lock)

    @property
    def embedder_id(self) -> str:
        return self._tables.embedder_id

    def for_audience(self, audience: Audience) -> KnowledgeView:
        return KnowledgeView(self, audience)

    # ----- knowledge base -----

    async def add_document(self, document: Document, scope: str, progress: Progress | None = None) -> AddResult:
        """Chunk, embed and store one document in `scope`, all or nothing."""
        return await self._knowledge.add_document(document, scope, progress)

    async def list_documents(self, scopes: Sequence[str]) -> list[DocumentInfo]:
        """Documents in `scopes`, newest first."""
        return await self._knowledge.list_documents(scopes)

    async def remove_document(self, audience: Audience, doc_id: str, *, may_remove_global: bool) -> DocumentInfo:
        return await self._knowledge.remove_document(audience, doc_id, may_remove_global=may_remove_global)

    async def search(self, audience: Audience, query: str, limit: int) -> list[Passage]:
        return await self._knowledge.search(audience, query, limit)

    async def private_matches(self, user_scope: str, query: str) -> bool:
        return await self._knowledge.private_matches(user_scope, query)

    async def totals(self) -> tuple[int, int]:
        return await self._knowledge.totals()

    # ----- conversation log and task history -----

    async def remember(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                       scope: str = "") -> None:
        await self._log.remember(audience, question, answer, tasks, scope=scope)

    def remember_soon(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                      scope: str = "") -> None:
        self._log.remember_soon(audience, question, answer, tasks, scope=scope)

    async def flush(self) -> None:
        """Wait until every background write is committed."""
        await self._log.flush()

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall:
        """What the audience may read: committed rows (scope-filtered inside each query) and the
        turns of its readable conversations still being written in the background (filtered by
        the same scopes here). Waits for no commit; at most for the embedding of a pending turn's
        tasks, which its own query embedding would wait for anyway."""
        await self._tables.current()
        pending = await self._log.pending_for(audience)
        embed_now = self._embedder.embed_now
        if embed_now is not None:
            # The model runs in this process: the whole recall is one thread hop (each hop costs
            # ~1 ms of wake-up latency on a busy machine, and a recall used to take five).
            return await asyncio.to_thread(self._recall_now, audience, query, turns, limit, embed_now, pending)
        unranked = await asyncio.to_thread(self._recall_unranked, audience, turns, pending)
        if unranked is not None:
            return unranked
        vector = (await self._embedder.embed([query or " "]))[0]
        return await asyncio.to_thread(self._ranked, audience, query, turns, limit, vector, pending)

    def _recall_now(self, audience: Audience, query: str, turns: int, limit: int,
                    embed_now: Callable[[Sequence[str]], Any], pending: tuple[PendingTurn, ...]) -> Recall:
        unranked = self._recall_unranked(audience, turns, pending)
        if unranked is not None:
            return unranked
        return self._ranked(audience, query, turns, limit, embed_now([query or " "])[0], pending)

    def _ranked(self, audience: Audience, query: str, turns: int, limit: int, vector: Any,
                pending: tuple[PendingTurn, ...]) -> Recall:
        """Task records, last turns and knowledge at once: the task search runs on a search
        thread (a leaf: it submits nothing, so the pool cannot deadlock) beside the other two."""
        scopes = audience.readable
        tasks = self._legs.submit(self._tasks.related, vector, scopes, pending)
        conversation = self._log.last_of(audience, turns, pending)
        knowledge = (self._knowledge.hybrid(vector, query, scopes, limit)
                     if query.strip() and self._knowledge.holds_knowledge(scopes) else [])
        return Recall(knowledge=tuple(knowledge), conversation=tuple(conversation), tasks=tuple(tasks.result()))

    def _recall_unranked(self, audience: Audience, turns: int, pending: tuple[PendingTurn, ...]) -> Recall | None:
        """When the readable scopes hold no knowledge or tasks there is nothing to rank: the
        recall is the last turns alone, and the query embedding (a model load on a cold start)
        is skipped. None: rank as usual."""
        if any(p.tasks for p in pending) or self._has_searchable(audience.readable):
            return None
        return Recall(conversation=tuple(self._log.last_of(audience, turns, pending)))

    def _has_searchable(self, scopes: Sequence[str]) -> bool:
        """Whether any of `scopes` holds knowledge chunks or task records (scope bitmap counts)."""
        key = frozenset(scopes)
        if key in self._searchable:
            return True
        where = scope_filter(scopes)
        found = any(table.count_rows(where) for table in (self._tables.knowledge, self._tables.tasks))
        if found:
            self._searchable.add(key)
        return found

    # ----- maintenance -----

    async def optimize(self) -> dict[str, int]:
        """Compact small files, fold new rows into the indexes, and build the vector ANN index
        once the knowledge table is big enough. Returns what it did."""
        return await self._upkeep.optimize()

    async def prune_conversation(self, older_than_days: int) -> int:
        return await self._upkeep.prune_conversation(older_than_days)

    async def prune_tasks(self, older_than_days: int) -> int:
        return await self._upkeep.prune_tasks(older_than_days)

    async def reindex(self, progress: Progress | None = None) -> dict[str, int]:
        """Re-embed every chunk and task with the configured embedder into a new generation of
        tables, switch the meta row to it in one commit, then drop the old generation."""
        return await self._upkeep.reindex(progress)

    async def move_scope(self, old: str, new: str) -> int:
        """Give every row of scope `old` the scope `new` (a chat that the platform moved to a new
        id: Telegram upgrading a group to a supergroup). Returns how many rows moved."""
        await self._tables.current()
        await self._log.settled([old, *(key for key in self._log.writing() if key.endswith(PRIVATE_IN + old))])
        renames = [(old, new), *await asyncio.to_thread(self._private_in, old, new)]
        async with self._knowledge.writing:
            moved = 0
            for before, after in renames:
                for table in (self._tables.knowledge, self._tables.tasks, self._tables.conversation):
                    result = await asyncio.to_thread(table.update, where=f"scope = {quote(before)}", values={"scope": after})
                    moved += int(getattr(result, "rows_updated", 0) or 0)  # older LanceDB returns None
        self._searchable.clear()
        return moved

    def _private_in(self, old: str, new: str) -> list[tuple[str, str]]:
        """The askers' private scopes in chat `old` (see Audience.private_here), renamed for `new`."""
        like = "%" + PRIVATE_IN + old.replace("%", "").replace("_", "\\_")
        found: set[str] = set()
        for table in (self._tables.tasks, self._tables.conversation):
            rows = table.search().where(f"scope LIKE {quote(like)}").select(["scope"]).limit(None).to_arrow()
            found.update(s for s in rows.column("scope").to_pylist() if s.endswith(PRIVATE_IN + old))
        return [(scope, scope.removesuffix(old) + new) for scope in sorted(found)]

    def warm(self) -> None:
        """Load the embedding model in the background now (a long-running bot), rather than on
        the first recall that needs it, which would stall that message by the model load."""
        self._embedder.preload()

    def close(self) -> None:
        """Stop the full-text worker threads (the bot calls it on shutdown, after `flush`)."""
        unfinished = self._log.unfinished()
        if unfinished:
            log.warning("memory store closed with %d conversation write(s) pending: call flush() first", unfinished)
        self._legs.shutdown(wait=False, cancel_futures=True)


class KnowledgeView:
    """The knowledge base as one audience sees it: what the tools' `KnowledgeSearcher` needs."""

    def __init__(self, store: MemoryStore, audience: Audience) -> None:
        self._store = store
        self.audience = audience

    async def search_knowledge(self, query: str, limit: int) -> list[Passage]:
        return await self._store.search(self.audience, query, limit)
