"""The knowledge base: documents chunked, embedded and kept per scope, found again by hybrid
search (vector + full text, fused by RRF). Both legs filter by the readable scopes inside the
query (prefilter), so nobody's top-k is ever computed over someone else's rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from kagentbot.memory.document_lock import DocumentLock
from kagentbot.memory.embedders import Embedder, Progress
from kagentbot.memory.errors import NotFound, StoreError
from kagentbot.memory.ingest import Document, chunk_document
from kagentbot.memory.tables import Tables, iso, now_ms, quote, scope_filter
from kagentbot.memory.types import AddResult, Audience, DocumentInfo, Passage

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings

_PASSAGE_COLUMNS = ["id", "text", "title", "source", "scope"]


class LanceKnowledgeBase:
    """Documents in the knowledge table of the current generation. `legs` runs the full-text leg
    of a search beside its vector leg."""

    def __init__(self, tables: Tables, embedder: Embedder, settings: MemorySettings, legs: ThreadPoolExecutor,
                 lock: DocumentLock) -> None:
        self._tables = tables
        self._embedder = embedder
        self._settings = settings
        self._legs = legs
        self._lock = lock
        self.writing = asyncio.Lock()  # dedup check + add of one document must not interleave
        self._rrf = _rrf()
        # Whether scopes hold knowledge, keyed by the knowledge table version it was counted at:
        # any commit (ours or another process's) changes the version and so voids the answer.
        self._has_knowledge: dict[frozenset[str], tuple[int, bool]] = {}
        tables.on_switch(self._has_knowledge.clear)

    async def add_document(
        self, document: Document, scope: str, progress: Progress | None = None
    ) -> AddResult:
        """Chunk, embed and store one document in `scope`, all or nothing."""
        await self._tables.current()
        chunks = await asyncio.to_thread(chunk_document, document, self._settings)
        doc_hash = document.content_hash
        async with self.writing, self._lock.hold(f"{scope}\n{doc_hash}") as exclusive:
            if exclusive:  # what another process just added
                await asyncio.to_thread(self._tables.knowledge.checkout_latest)
            existing = await self._find_by_hash(scope, doc_hash)
            if existing:
                return AddResult(existing, duplicate=True)
            vectors = await self._embedder.embed(chunks, progress)
            info, rows = self._chunk_rows(document, scope, doc_hash, chunks, vectors)
            # One add = one commit: a crash before it leaves nothing, after it the whole document.
            await asyncio.to_thread(self._tables.knowledge.add, rows)
        return AddResult(info, duplicate=False)

    def _chunk_rows(self, document: Document, scope: str, doc_hash: str, chunks: list[str],
                    vectors: Any) -> tuple[DocumentInfo, Any]:
        import pyarrow as pa

        doc_id = uuid.uuid4().hex[:10]
        added = now_ms()
        n = len(chunks)
        data = {
            "id": [f"{doc_id}-{i}" for i in range(n)], "doc_id": [doc_id] * n, "scope": [scope] * n,
            "title": [document.title] * n, "source": [document.source] * n,
            "chunk_no": list(range(n)), "chunks": [n] * n, "doc_hash": [doc_hash] * n,
            "added_ms": [added] * n, "text": chunks, "vector": self._tables.vector_array(vectors),
        }
        info = DocumentInfo(doc_id, document.title, document.source, scope, n, iso(added))
        return info, pa.table(data, schema=self._tables.knowledge.schema)

    async def _find_by_hash(self, scope: str, doc_hash: str) -> DocumentInfo | None:
        where = f"scope = {quote(scope)} AND doc_hash = {quote(doc_hash)} AND chunk_no = 0"
        found = await self._documents(where)
        return found[0] if found else None

    async def list_documents(self, scopes: Sequence[str]) -> list[DocumentInfo]:
        """Documents in `scopes`, newest first."""
        await self._tables.current()
        documents = await self._documents(f"{scope_filter(scopes)} AND chunk_no = 0")
        return sorted(documents, key=lambda d: d.added_at, reverse=True)

    async def _documents(self, where: str) -> list[DocumentInfo]:
        columns = ["doc_id", "title", "source", "scope", "chunks", "added_ms"]
        query = self._tables.knowledge.search().where(where).select(columns).limit(None)
        rows = (await asyncio.to_thread(query.to_arrow)).to_pylist()
        return [
            DocumentInfo(r["doc_id"], r["title"], r["source"], r["scope"], r["chunks"], iso(r["added_ms"]))
            for r in rows
        ]

    async def remove_document(self, audience: Audience, doc_id: str, *, may_remove_global: bool) -> DocumentInfo:
        """Remove a document the audience can read. Anything else is "not found", whether it
        exists in another scope or not, so ids reveal nothing."""
        if not doc_id.isalnum():
            raise NotFound(f"no document with id {doc_id!r} in your knowledge base")
        await self._tables.current()
        found = await self._documents(f"doc_id = {quote(doc_id)} AND chunk_no = 0 AND {scope_filter(audience.readable)}")
        if not found:
            raise NotFound(f"no document with id {doc_id!r} in your knowledge base")
        info = found[0]
        if info.scope == "global" and not may_remove_global:
            raise StoreError("only an admin can remove documents from the global knowledge base")
        where = f"doc_id = {quote(doc_id)} AND scope = {quote(info.scope)}"
        await asyncio.to_thread(self._tables.knowledge.delete, where)
        return info

    async def private_matches(self, user_scope: str, query: str) -> bool:
        """Whether documents in `user_scope` share words with `query` (the full-text leg alone:
        a vector search always finds something). For telling someone in a shared chat that their
        private notes were left out."""
        if not query.strip():
            return False
        await self._tables.current()
        where = scope_filter([user_scope])
        if not await asyncio.to_thread(self.holds_knowledge, [user_scope]):
            return False
        hits = await asyncio.to_thread(self.text_leg, query, where, 1)
        return hits.num_rows > 0

    async def search(self, audience: Audience, query: str, limit: int) -> list[Passage]:
        """Hybrid (vector + n-gram full text, fused by RRF) top-`limit` over readable scopes."""
        if not query.strip():
            return []
        await self._tables.current()
        vector = (await self._embedder.embed([query]))[0]
        return await asyncio.to_thread(self.hybrid, vector, query, audience.readable, limit)

    def hybrid(self, vector: Any, query: str, scopes: Sequence[str], limit: int) -> list[Passage]:
        """Both legs filter by scope inside the query (prefilter) and read only the columns shown;
        they run side by side, then LanceDB's RRF fuses the two rankings."""
        vectors, texts = _both_legs(self._tables.knowledge, vector, query, scope_filter(scopes), limit)
        fused = self._rrf.rerank_hybrid(query, vectors, texts)
        return [
            Passage(r["id"], r["text"], r["source"] or r["title"], r["scope"], float(r["_relevance_score"]))
            for r in fused.slice(0, limit).to_pylist()
        ]

    def vector_leg(self, vector: Any, where: str, limit: int) -> Any:
        return (
            self._tables.knowledge.search(vector, query_type="vector", vector_column_name="vector")
            .distance_type("cosine").where(where, prefilter=True)
            .select([*_PASSAGE_COLUMNS, "_distance"]).with_row_id(True).limit(limit).to_arrow()
        )

    def text_leg(self, query: str, where: str, limit: int) -> Any:
        return (
            self._tables.knowledge.search(query, query_type="fts", fts_columns="text")
            .where(where, prefilter=True)
            .select([*_PASSAGE_COLUMNS, "_score"]).with_row_id(True).limit(limit).to_arrow()
        )

    async def totals(self) -> tuple[int, int]:
        """(documents, chunks) in the knowledge base, every scope: for /metrics, and a read that
        proves the store is open and reachable (for /readyz)."""
        table = self._tables.knowledge

        def count() -> tuple[int, int]:
            return table.count_rows("chunk_no = 0"), table.count_rows()

        return await asyncio.to_thread(count)

    def holds_knowledge(self, scopes: Sequence[str]) -> bool:
        """Whether any of `scopes` holds knowledge chunks; a hybrid search of none finds nothing.
        Recounted only after the knowledge table changed (a version read costs ~0.2 ms, the
        search it spares ~4 ms)."""
        key = frozenset(scopes)
        version = self._tables.knowledge.version
        cached = self._has_knowledge.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        found = self._tables.knowledge.count_rows(scope_filter(scopes)) > 0
        self._has_knowledge[key] = (version, found)
        return found


def _both_legs(table: Any, vector: Any, query: str, where: str, limit: int) -> tuple[Any, Any]:
    """The vector and full-text legs of a hybrid query (the same as `vector_leg` and `text_leg`),
    handed to LanceDB's own event loop at once and run there side by side. Through the sync
    API each leg takes five trips to that loop (the table's schema twice, the query, two batch
    reads), each a switch of threads that a busy machine makes slow: about 3 ms a leg."""
    from lancedb.background_loop import LOOP

    inner = table._table  # the async table the sync one wraps
    vectors = (inner.query().nearest_to(vector).column("vector").distance_type("cosine").where(where)
               .select([*_PASSAGE_COLUMNS, "_distance"]).with_row_id().limit(limit))
    texts = (inner.query().nearest_to_text(query, columns="text").where(where)
             .select([*_PASSAGE_COLUMNS, "_score"]).with_row_id().limit(limit))

    async def both() -> tuple[Any, Any]:
        found = await asyncio.gather(vectors.to_arrow(), texts.to_arrow())
        return found[0], found[1]

    return LOOP.run(both())


def _rrf() -> Any:
    from lancedb.rerankers import RRFReranker

    return RRFReranker(return_score="relevance")

