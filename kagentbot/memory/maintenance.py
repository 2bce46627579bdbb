"""Upkeep of the store's tables: compaction and version keeping, pruning old turns and task
records, the vector index, and reindexing into a new generation of tables."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kagentbot.memory.document_lock import DocumentLock, NoDocumentLock
from kagentbot.memory.embedders import Embedder, Progress
from kagentbot.memory.errors import StoreError
from kagentbot.memory.pending import task_text
from kagentbot.memory.tables import (
    DAY_MS, Tables, build_ann_index, create_knowledge, create_tasks, meta_row, now_ms, table_names, write_meta,
)

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings

log = logging.getLogger(__name__)
COMPACTION = "\0memory tables: compaction"  # a name no document of any scope has


class LanceMaintenance:
    """Blocking work runs on worker threads; compaction takes the tables' commit lock.
    `processes`: what keeps other processes sharing the store (replicas) from compacting at the
    same time (none: this process is the store's only writer)."""

    def __init__(self, tables: Tables, embedder: Embedder, settings: MemorySettings,
                 processes: DocumentLock | None = None) -> None:
        self._tables = tables
        self._embedder = embedder
        self._settings = settings
        self._compacting = asyncio.Lock()
        self._processes = processes or NoDocumentLock()

    @property
    def compacting(self) -> bool:
        return self._compacting.locked()

    async def compact(self) -> None:
        """Compact the turn and task tables now (the write-behind queue calls it every
        `memory.compact_every` batches). Replicas writing one shared store compact one at a
        time: two compactions at once rewrite the same files, and one of them fails its commit."""
        async with self._compacting:
            try:
                async with self._processes.hold(COMPACTION):
                    await asyncio.to_thread(self._compact)
            except StoreError as exc:  # the lock's store (Redis) is away: the next batches try again
                log.warning("memory compaction skipped: %s", exc)

    def _compact(self) -> None:
        """Each commit adds a small file, and every read opens each file: reads slow down as turns
        pile up (a task search goes from 2.5 ms at 1 file to 17 ms at 100). Fold them into one.
        Each commit also leaves a version, and compaction reads every version it keeps (~0.15 ms
        each: a day of busy commits made one compaction cost seconds): keep only recent ones."""
        keep = timedelta(minutes=self._settings.keep_versions_minutes)
        try:
            with self._tables.commit_lock:  # the writer waits, recalls do not (they read unwritten turns)
                self._tables.tasks.optimize(cleanup_older_than=keep)
                self._tables.conversation.optimize(cleanup_older_than=keep)
        except Exception:  # a failed compaction loses nothing; upkeep tries again later
            log.exception("could not compact the memory tables")

    # ----- upkeep (called by the scheduler) -----

    async def optimize(self) -> dict[str, int]:
        """Compact small files, fold new rows into the indexes, and build the vector ANN index
        once the knowledge table is big enough. Returns what it did."""
        return await asyncio.to_thread(self._optimize)

    def _optimize(self) -> dict[str, int]:
        report = {"tables_optimized": 0, "ann_index_built": 0}
        for table in (self._tables.knowledge, self._tables.tasks, self._tables.conversation):
            table.optimize(cleanup_older_than=timedelta(days=1))
            report["tables_optimized"] += 1
        rows = self._tables.knowledge.count_rows()
        report["knowledge_rows"] = rows
        if rows >= self._settings.ann_min_rows and not self._has_vector_index():
            build_ann_index(self._tables.knowledge, rows)
            report["ann_index_built"] = 1
        return report

    def _has_vector_index(self) -> bool:
        return any("vector" in index.columns for index in self._tables.knowledge.list_indices())

    async def prune_conversation(self, older_than_days: int) -> int:
        # A delete commits a new table version, so no cached turn outlives it.
        return await asyncio.to_thread(self._prune, self._tables.conversation, older_than_days)

    async def prune_tasks(self, older_than_days: int) -> int:
        return await asyncio.to_thread(self._prune, self._tables.tasks, older_than_days)

    @staticmethod
    def _prune(table: Any, days: int) -> int:
        where = f"at_ms < {now_ms() - days * DAY_MS}"
        count = table.count_rows(where)
        if count:
            table.delete(where)
        return count

    # ----- reindex -----

    async def reindex(self, progress: Progress | None = None) -> dict[str, int]:
        """Re-embed every chunk and task with the configured embedder into a new generation of
        tables, switch the meta row to it in one commit, then drop the old generation."""
        dim = await self._embedder.dimension()
        generation = self._tables.generation + 1
        await asyncio.to_thread(self._drop_generation, generation)  # leftovers of a crashed reindex
        knowledge = await asyncio.to_thread(
            create_knowledge, self._tables.db, f"knowledge_g{generation}", dim, self._settings.fts_tokenizer
        )
        tasks = await asyncio.to_thread(create_tasks, self._tables.db, f"tasks_g{generation}", dim)
        chunks = await self._copy_reembedded(self._tables.knowledge, knowledge, "text", dim, progress)
        task_rows = await self._copy_reembedded(self._tables.tasks, tasks, None, dim, None)
        old = self._tables.generation
        await asyncio.to_thread(write_meta, self._tables.db, self._embedder.id, dim, generation)
        await asyncio.to_thread(self._tables.set_generation, meta_row(self._embedder.id, dim, generation)[0])
        await asyncio.to_thread(self._drop_generation, old)
        return {"chunks": chunks, "tasks": task_rows}

    async def _copy_reembedded(self, source: Any, target: Any, text_column: str | None, dim: int, progress: Progress | None) -> int:
        import pyarrow as pa

        rows = await asyncio.to_thread(lambda: source.to_arrow().drop_columns(["vector"]))
        if rows.num_rows == 0:
            return 0
        if text_column:
            texts = rows.column(text_column).to_pylist()
        else:
            columns = (rows.column(c).to_pylist() for c in ("question", "task_name", "result"))
            texts = [task_text(q, n, r) for q, n, r in zip(*columns)]
        vectors = await self._embedder.embed(texts, progress)
        table = rows.append_column("vector", self._tables.vector_array(vectors, dim)).select(target.schema.names)
        await asyncio.to_thread(target.add, table.cast(target.schema))
        return rows.num_rows

    def _drop_generation(self, generation: int) -> None:
        names = table_names(self._tables.db)
        for name in (f"knowledge_g{generation}", f"tasks_g{generation}"):
            if name in names:
                self._tables.db.drop_table(name)

