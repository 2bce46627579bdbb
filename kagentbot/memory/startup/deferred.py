"""The memory of a data directory that has no store yet, for `kagentbot ask` and `chat`.

Importing LanceDB costs about a second, most of a cold start. When the store does not exist on
disk there is nothing to recall, so the first turn is planned without it: the store is opened in
the background from the first recall on, and everything that writes or lists waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kagentbot.memory.types import AddResult, Audience, DocumentInfo, Passage, Recall, TaskRecord

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings
    from kagentbot.memory.embedders import Progress
    from kagentbot.memory.ingest import Document
    from kagentbot.memory.store import MemoryStore


def store_absent(settings: Settings) -> bool:
    """Whether the configured store is local and not created yet (no meta table on disk)."""
    uri = settings.memory_uri
    return "://" not in uri and not (Path(uri) / "meta.lance").exists()


class DeferredStore:
    """Stands in for a `MemoryStore` that is opened (created) on first use: implements the same
    `contracts.Memory`. Recalls find nothing until the store is open or a turn was written."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opening: asyncio.Task[MemoryStore] | None = None
        self._written = False  # a turn went to the store: recalls must see it from then on
        self._handovers: set[asyncio.Task[None]] = set()  # turns waiting for the store to open

    def start(self) -> asyncio.Task[MemoryStore]:
        if self._opening is None:
            from kagentbot.memory.store import MemoryStore

            self._opening = asyncio.get_running_loop().create_task(MemoryStore.open(self.settings))
        return self._opening

    async def store(self) -> MemoryStore:
        return await self.start()

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall:
        opening = self.start()
        if not opening.done() and not self._written:
            # The store did not exist when this process started and nothing was written since;
            # rows another process adds meanwhile are missed as if read a moment earlier.
            return Recall()
        return await (await opening).recall(audience, query, turns=turns, limit=limit)

    async def remember(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                       scope: str = "") -> None:
        self._written = True
        await (await self.store()).remember(audience, question, answer, tasks, scope=scope)

    def remember_soon(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                      scope: str = "") -> None:
        self._written = True
        opening = self.start()
        if opening.done() and not opening.cancelled() and opening.exception() is None:
            opening.result().remember_soon(audience, question, answer, tasks, scope=scope)
            return
        # Still opening: hand the turn over once it is open; flush() waits for the hand-over.
        handover = asyncio.get_running_loop().create_task(
            self._remember_when_open(audience, question, answer, tuple(tasks), scope))
        self._handovers.add(handover)
        handover.add_done_callback(self._handovers.discard)

    async def _remember_when_open(self, audience: Audience, question: str, answer: str,
                                  tasks: tuple[TaskRecord, ...], scope: str) -> None:
        (await self.store()).remember_soon(audience, question, answer, tasks, scope=scope)

    async def flush(self) -> None:
        if self._handovers:
            await asyncio.gather(*self._handovers)
        if self._opening is not None:
            await (await self._opening).flush()

    def close(self) -> None:
        if self._opening is None:
            return
        if self._opening.done() and not self._opening.cancelled() and self._opening.exception() is None:
            self._opening.result().close()
        else:
            self._opening.cancel()

    def for_audience(self, audience: Audience) -> DeferredKnowledge:
        return DeferredKnowledge(self, audience)

    def warm(self) -> None:
        """Nothing to load before the store exists: it opens on first use."""

    # ----- the rest opens the store first -----

    async def add_document(self, document: Document, scope: str, progress: Progress | None = None) -> AddResult:
        return await (await self.store()).add_document(document, scope, progress)

    async def list_documents(self, scopes: Sequence[str]) -> list[DocumentInfo]:
        return await (await self.store()).list_documents(scopes)

    async def remove_document(self, audience: Audience, doc_id: str, *, may_remove_global: bool) -> DocumentInfo:
        return await (await self.store()).remove_document(audience, doc_id, may_remove_global=may_remove_global)

    async def search(self, audience: Audience, query: str, limit: int) -> list[Passage]:
        return await (await self.store()).search(audience, query, limit)

    async def private_matches(self, user_scope: str, query: str) -> bool:
        return await (await self.store()).private_matches(user_scope, query)

    async def totals(self) -> tuple[int, int]:
        return await (await self.store()).totals()

    async def prune_conversation(self, older_than_days: int) -> int:
        return await (await self.store()).prune_conversation(older_than_days)

    async def prune_tasks(self, older_than_days: int) -> int:
        return await (await self.store()).prune_tasks(older_than_days)

    async def optimize(self) -> dict[str, int]:
        return await (await self.store()).optimize()

    async def reindex(self, progress: Progress | None = None) -> dict[str, int]:
        return await (await self.store()).reindex(progress)

    async def move_scope(self, old: str, new: str) -> int:
        return await (await self.store()).move_scope(old, new)


class DeferredKnowledge:
    """`KnowledgeView` over a store still to be opened."""

    def __init__(self, deferred: DeferredStore, audience: Audience) -> None:
        self._deferred = deferred
        self.audience = audience

    async def search_knowledge(self, query: str, limit: int) -> list[Passage]:
        return await self._deferred.search(self.audience, query, limit)
