"""The three scoped memories in embedded LanceDB: knowledge chunks, conversation turns and task
records. Every row carries its scope, and every read filters by the asker's readable scopes inside
the query (prefilter), so nobody's top-k is ever computed over someone else's rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagentbot.memory.document_lock import DocumentLock, local_document_lock
from kagentbot.memory.embedders import Embedder, Progress, build_embedder, settings_for
from kagentbot.memory.ingest import Document, chunk_document
from kagentbot.memory.types import PRIVATE_IN, Audience, Passage, Recall, TaskRecord, Turn

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings, Settings

SCHEMA_VERSION = 1
META = "meta"
CONVERSATION = "conversation"
# Migrations from an older schema version: version -> blocking function(db, meta) -> meta.
MIGRATIONS: dict[int, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
TASKS_PER_RECALL = 3
TASKS_HELD = 1000  # task records of one scope held in memory; a scope with more is searched in LanceDB
TASK_ROWS_HELD = 20_000  # in all (~2 KB each)
_PASSAGE_COLUMNS = ["id", "text", "title", "source", "scope"]
_DAY_MS = 86_400_000
_TURNS_CACHED = 32  # per conversation: more than any history_turns a prompt takes

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot do what was asked; the message says what to do."""


META_CHECK_INTERVAL = 1.0  # seconds between looks for a reindex done by another process


class EmbedderMismatch(StoreError):
    pass


class NotFound(StoreError):
    pass


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    title: str
    source: str
    scope: str
    chunks: int
    added_at: str  # ISO timestamp


@dataclass(frozen=True)
class AddResult:
    document: DocumentInfo
    duplicate: bool  # the same content was already in this scope; nothing new was stored


def scope_filter(scopes: Sequence[str]) -> str:
    quoted = ", ".join("'" + scope.replace("'", "''") + "'" for scope in scopes)
    return f"scope IN ({quoted})"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


# ---------- schemas ----------


def _knowledge_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("doc_id", pa.string()), ("scope", pa.string()),
        ("title", pa.string()), ("source", pa.string()), ("chunk_no", pa.int32()),
        ("chunks", pa.int32()), ("doc_hash", pa.string()), ("added_ms", pa.int64()),
        ("text", pa.string()), ("vector", pa.list_(pa.float32(), dim)),
    ])


def _tasks_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("scope", pa.string()), ("question", pa.string()),
        ("task_name", pa.string()), ("command", pa.string()), ("result", pa.string()),
        ("at_ms", pa.int64()), ("vector", pa.list_(pa.float32(), dim)),
    ])


def _conversation_schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("scope", pa.string()), ("user_scope", pa.string()),
        ("question", pa.string()), ("answer", pa.string()), ("at_ms", pa.int64()),
    ])


def _meta_row(embedder_id: str, dim: int, generation: int) -> list[dict[str, Any]]:
    return [{"schema_version": SCHEMA_VERSION, "embedder": embedder_id, "dim": dim, "generation": generation}]


# ---------- blocking table setup ----------


def _import_lancedb() -> Any:
    # lance's Rust core logs routine events (e.g. "No existing dataset ... will be created") as
    # warnings on stderr; only real errors should reach a user's terminal unless they ask for more.
    os.environ.setdefault("LANCEDB_LOG", "error")
    from kagentbot.memory.lazy_client import defer_package_init

    defer_package_init()
    import lancedb

    return lancedb


def start_import(settings: Settings) -> None:
    """Begin importing LanceDB (~1 s, most of a cold start) in a daemon thread when the store
    exists on disk, so that a command about to open it overlaps the import with its own start-up
    (settings, tools, personas). Python's import lock makes the later `import` wait for this one."""
    from kagentbot.memory.deferred import store_absent

    if store_absent(settings):
        return  # nothing to open yet: `ask` then plans its first turn without LanceDB
    # Not a daemon: a command that ends first (`chat` quit at once) waits for it, since the
    # interpreter shutting down under a native import aborts the process (exit 134).
    threading.Thread(target=_import_lancedb, name="lancedb-import").start()


def _connect(uri: str, options: dict[str, Any]) -> Any:
    lancedb = _import_lancedb()

    # Another process (the CLI) may write while the bot runs: re-check the table version this often.
    storage = {key: value.get_secret_value() for key, value in options.items()} or None
    return lancedb.connect(uri, read_consistency_interval=timedelta(seconds=2), storage_options=storage)


_OBJECT_STORE_ERRORS = (  # what the object store's nested Rust error means, by a marker in it
    (("<Code>NoSuchBucket</Code>",), "the bucket does not exist"),
    (("<Code>AccessDenied</Code>", "<Code>InvalidAccessKeyId</Code>", "<Code>SignatureDoesNotMatch</Code>",
      "status: 403"), "access denied: check the credentials in memory.storage_options or the AWS environment"),
    (("kind: Connect", "ConnectError", "dns error"), "the endpoint cannot be reached: check memory.storage_options.aws_endpoint"),
    (("kind: Timeout", "timed out"), "the endpoint did not answer in time"),
)


def _open_error(uri: str, exc: BaseException) -> str:
    """Object store errors carry a page of nested Rust debug output: say what it means."""
    text = str(exc)
    if "://" in uri:
        for markers, meaning in _OBJECT_STORE_ERRORS:
            if any(marker in text for marker in markers):
                return f"cannot open the memory store at {uri}: {meaning} (memory.uri, memory.storage_options)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot open the memory store at {uri}: {first if len(first) <= 300 else first[:300] + '…'}"


def _holds_vectors(uri: str) -> bool:
    """Whether a local store has had knowledge or task rows (files in those tables' data folders):
    a look at the disk, before LanceDB (~1 s to import) is loaded."""
    if "://" in uri:
        return False
    try:
        return any(any(folder.iterdir()) for folder in Path(uri).glob("*_g*.lance/data"))
    except OSError:
        return False


def _table_names(db: Any) -> set[str]:
    response = db.list_tables()
    return set(getattr(response, "tables", response))


def _create_knowledge(db: Any, name: str, dim: int, tokenizer: str) -> Any:
    from lancedb.index import Bitmap, BTree

    table = db.create_table(name, schema=_knowledge_schema(dim), exist_ok=True)
    table.create_index("text", config=_fts_config(tokenizer), replace=True)
    table.create_index("scope", config=Bitmap(), replace=True)
    table.create_index("doc_id", config=BTree(), replace=True)
    return table


def _fts_config(tokenizer: str) -> Any:
    """Chinese has no spaces, so the default whitespace tokenizer would see a paragraph as one
    word: ICU segments words (dictionary-based for CJK); n-grams match any 2-3 character run."""
    from lancedb.index import FTS

    if tokenizer == "ngram":
        return FTS(base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3, stem=False,
                   remove_stop_words=False, ascii_folding=False)
    return FTS(base_tokenizer="icu", stem=True, remove_stop_words=True)


def _ensure_fts(table: Any, tokenizer: str) -> None:
    """Rebuild the full-text index when `memory.fts_tokenizer` changed since it was built."""
    for index in table.list_indices():
        if index.index_type == "FTS" and index.columns == ["text"]:
            if (index.index_details or {}).get("base_tokenizer") == tokenizer:
                return
    table.create_index("text", config=_fts_config(tokenizer), replace=True)


def _create_tasks(db: Any, name: str, dim: int) -> Any:
    from lancedb.index import Bitmap

    table = db.create_table(name, schema=_tasks_schema(dim), exist_ok=True)
    table.create_index("scope", config=Bitmap(), replace=True)
    return table


def _create_conversation(db: Any) -> Any:
    from lancedb.index import Bitmap

    table = db.create_table(CONVERSATION, schema=_conversation_schema(), exist_ok=True)
    table.create_index("scope", config=Bitmap(), replace=True)
    return table


def _read_meta(db: Any) -> dict[str, Any] | None:
    if META not in _table_names(db):
        return None
    rows = db.open_table(META).to_arrow().to_pylist()
    return rows[0] if rows else None


def _write_meta(db: Any, embedder_id: str, dim: int, generation: int) -> None:
    # Overwrite is one atomic commit: readers see the old or the new row, never neither.
    db.create_table(META, data=_meta_row(embedder_id, dim, generation), mode="overwrite")


def _initialise(db: Any, embedder_id: str, dim: int, tokenizer: str) -> dict[str, Any]:
    _create_knowledge(db, "knowledge_g1", dim, tokenizer)
    _create_tasks(db, "tasks_g1", dim)
    _create_conversation(db)
    _write_meta(db, embedder_id, dim, 1)  # last: a store without meta is not yet initialised
    return _meta_row(embedder_id, dim, 1)[0]


def _migrate(db: Any, meta: dict[str, Any], uri: str) -> dict[str, Any]:
    version = int(meta["schema_version"])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the memory store at {uri} has schema version {version}, written by a newer kagentbot "
            f"(this one reads version {SCHEMA_VERSION}): upgrade kagentbot"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StoreError(
                f"the memory store at {uri} has schema version {version} and there is no migration "
                f"from it to version {SCHEMA_VERSION}: move it aside and re-add your documents"
            )
        meta = step(db, meta)
        version = int(meta["schema_version"])
    return meta


# ---------- the store ----------


class MemoryStore:
    """Open with `await MemoryStore.open(settings)`. Implements the agent's `MemoryView`."""

    def __init__(self, db: Any, embedder: Embedder, settings: Settings, meta: dict[str, Any], uri: str,
                 document_lock: DocumentLock | None = None):
        self._db = db
        # Makes "already stored?" and the add one step across processes (see _other_processes).
        self._document_lock = document_lock or local_document_lock(uri)
        self._embedder = embedder
        self.settings = settings  # the commands read limits and fetch settings from here
        self._settings: MemorySettings = settings.memory
        self._uri = uri
        # Task records held in memory per scope (see _scopes_tasks), the most recently used last.
        self._tasks_held: OrderedDict[str, _HeldTasks] = OrderedDict()
        self._tasks_lock = threading.Lock()
        self._set_generation(meta)
        self._meta_table = db.open_table(META)
        self._meta_version = self._meta_table.version
        self._meta_checked = time.monotonic()
        self._conversation = db.open_table(CONVERSATION)
        self._write_lock = asyncio.Lock()  # dedup check + add of one document must not interleave
        self._legs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-search")
        self._rrf = _rrf()
        # Scopes seen holding knowledge or task rows. Only positives are cached: rows can appear
        # from another process at any time, and a stale positive merely costs one embedding.
        self._searchable: set[frozenset[str]] = set()
        # Whether scopes hold knowledge, keyed by the knowledge table version it was counted at:
        # any commit (ours or another process's) changes the version and so voids the answer.
        self._has_knowledge: dict[frozenset[str], tuple[int, bool]] = {}
        # The last turns of each conversation read or written here, with the conversation table
        # version they are exact for (see _last_turns and _add_turn).
        self._turns: dict[str, _CachedTurns] = {}
        self._turns_lock = threading.Lock()  # a read and our own commit must not interleave
        self._writes: dict[str, set[asyncio.Future[None]]] = {}  # write-behind, by conversation key
        self._queue: list[_PendingTurn] = []  # turns waiting for the next batch
        # Every turn handed to remember_soon and not yet committed, by conversation key: recalls
        # read them from here, so no recall ever waits for a commit, a compaction or index upkeep.
        self._unwritten: dict[str, list[_PendingTurn]] = {}
        # Held by every commit of turns and tasks and by compaction (threads): they go one at a
        # time, so the turn cache sees each of our commits land right after the one before.
        self._commit_lock = threading.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._last_batch = float("-inf")  # loop time the last background batch began
        self._hurry = asyncio.Event()  # set while a flush waits: write what is queued now
        self._flushes = 0
        self._embedding: set[asyncio.Task[None]] = set()  # task records of unwritten turns being embedded
        self._written = 0  # batches written in the background since the tables were last compacted
        self._compacting = asyncio.Lock()
        if self._knowledge.count_rows() or self._tasks.count_rows():
            embedder.preload()  # a query will need the model: load it while start-up goes on

    def _set_generation(self, meta: dict[str, Any]) -> None:
        self._meta = meta
        generation = int(meta["generation"])
        self._knowledge = self._db.open_table(f"knowledge_g{generation}")
        _ensure_fts(self._knowledge, self._settings.fts_tokenizer)
        self._tasks = self._db.open_table(f"tasks_g{generation}")
        with self._tasks_lock:
            self._tasks_held.clear()  # they were another table's

    async def _current(self) -> None:
        """`kagentbot kb reindex` in another process moves the store to a new generation of tables
        and drops the old one: follow it, checking at most once a second (one version read), so a
        running bot needs no restart."""
        if time.monotonic() >= self._meta_checked + META_CHECK_INTERVAL:
            self._meta_checked = time.monotonic()
            await asyncio.to_thread(self._follow_generation)

    def _follow_generation(self) -> None:
        version = self._meta_table.version
        if version == self._meta_version:
            return
        meta = _read_meta(self._db)
        if meta is None or int(meta["generation"]) == int(self._meta["generation"]):
            self._meta_version = version
            return
        if meta["embedder"] != self._embedder.id:
            raise EmbedderMismatch(
                f"the memory store was rebuilt with the embedder {meta['embedder']!r}, but this process runs "
                f"{self._embedder.id!r}: restart it with {settings_for(meta['embedder'])}"
            )
        self._set_generation(meta)
        self._meta_version = version
        self._searchable.clear()
        self._has_knowledge.clear()
        log.info("memory: following the store to table generation %s", meta["generation"])

    @classmethod
    async def open(
        cls, settings: Settings, *, embedder: Embedder | None = None, reindexing: bool = False,
        document_lock: DocumentLock | None = None,
    ) -> MemoryStore:
        """Open (creating if new) the store at `settings.memory_uri`. Raises EmbedderMismatch when
        the tables were built by another embedder, unless `reindexing` (then call `reindex`).
        `document_lock`: shared by every process adding documents (default: a file lock for a
        local store, none for an object store)."""
        embedder = embedder or build_embedder(settings)
        uri = settings.memory_uri
        if _holds_vectors(uri):
            embedder.preload()  # the first recall will embed: load the model while LanceDB imports
        try:
            db = await asyncio.to_thread(_connect, uri, settings.memory.storage_options)
            meta = await asyncio.to_thread(_read_meta, db)
            if meta is None:
                dim = await embedder.dimension()
                meta = await asyncio.to_thread(_initialise, db, embedder.id, dim, settings.memory.fts_tokenizer)
        except (OSError, ValueError, RuntimeError) as exc:
            raise StoreError(_open_error(uri, exc)) from None
        meta = await asyncio.to_thread(_migrate, db, meta, uri)
        if meta["embedder"] != embedder.id and not reindexing:
            raise EmbedderMismatch(
                f"the memory store at {uri} was built with the embedder {meta['embedder']!r}, but "
                f"{embedder.id!r} is configured. Run `kagentbot kb reindex` to rebuild it with the "
                f"configured embedder, or go back to {settings_for(meta['embedder'])}."
            )
        return await asyncio.to_thread(cls, db, embedder, settings, meta, uri, document_lock)

    @property
    def embedder_id(self) -> str:
        return str(self._meta["embedder"])

    def for_audience(self, audience: Audience) -> KnowledgeView:
        return KnowledgeView(self, audience)

    # ----- knowledge base -----

    async def add_document(
        self, document: Document, scope: str, progress: Progress | None = None
    ) -> AddResult:
        """Chunk, embed and store one document in `scope`, all or nothing."""
        await self._current()
        chunks = await asyncio.to_thread(chunk_document, document, self._settings)
        doc_hash = document.content_hash
        async with self._write_lock, self._other_processes(f"{scope}\n{doc_hash}"):
            existing = await self._find_by_hash(scope, doc_hash)
            if existing:
                return AddResult(existing, duplicate=True)
            vectors = await self._embedder.embed(chunks, progress)
            info, rows = self._chunk_rows(document, scope, doc_hash, chunks, vectors)
            # One add = one commit: a crash before it leaves nothing, after it the whole document.
            await asyncio.to_thread(self._knowledge.add, rows)
        return AddResult(info, duplicate=False)

    @contextlib.asynccontextmanager
    async def _other_processes(self, document: str) -> AsyncIterator[None]:
        """Hold the document lock and read the newest table version, so that the CLI and a
        running bot (or several replicas) adding the same document at once store it once."""
        async with self._document_lock.hold(document):
            await asyncio.to_thread(self._knowledge.checkout_latest)  # what another process just added
            yield

    def _chunk_rows(self, document: Document, scope: str, doc_hash: str, chunks: list[str], vectors: Any):
        import pyarrow as pa

        doc_id = uuid.uuid4().hex[:10]
        added = _now_ms()
        n = len(chunks)
        data = {
            "id": [f"{doc_id}-{i}" for i in range(n)], "doc_id": [doc_id] * n, "scope": [scope] * n,
            "title": [document.title] * n, "source": [document.source] * n,
            "chunk_no": list(range(n)), "chunks": [n] * n, "doc_hash": [doc_hash] * n,
            "added_ms": [added] * n, "text": chunks, "vector": self._vector_array(vectors),
        }
        info = DocumentInfo(doc_id, document.title, document.source, scope, n, _iso(added))
        return info, pa.table(data, schema=self._knowledge.schema)

    def _vector_array(self, vectors: Any, dim: int | None = None) -> Any:
        import numpy as np
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        return pa.FixedSizeListArray.from_arrays(flat, dim or int(self._meta["dim"]))

    async def _find_by_hash(self, scope: str, doc_hash: str) -> DocumentInfo | None:
        where = f"scope = {_quote(scope)} AND doc_hash = {_quote(doc_hash)} AND chunk_no = 0"
        found = await self._documents(where)
        return found[0] if found else None

    async def list_documents(self, scopes: Sequence[str]) -> list[DocumentInfo]:
        """Documents in `scopes`, newest first."""
        await self._current()
        documents = await self._documents(f"{scope_filter(scopes)} AND chunk_no = 0")
        return sorted(documents, key=lambda d: d.added_at, reverse=True)

    async def _documents(self, where: str) -> list[DocumentInfo]:
        columns = ["doc_id", "title", "source", "scope", "chunks", "added_ms"]
        query = self._knowledge.search().where(where).select(columns).limit(None)
        rows = (await asyncio.to_thread(query.to_arrow)).to_pylist()
        return [
            DocumentInfo(r["doc_id"], r["title"], r["source"], r["scope"], r["chunks"], _iso(r["added_ms"]))
            for r in rows
        ]

    async def remove_document(self, audience: Audience, doc_id: str, *, may_remove_global: bool) -> DocumentInfo:
        """Remove a document the audience can read. Anything else is "not found", whether it
        exists in another scope or not, so ids reveal nothing."""
        if not doc_id.isalnum():
            raise NotFound(f"no document with id {doc_id!r} in your knowledge base")
        await self._current()
        found = await self._documents(f"doc_id = {_quote(doc_id)} AND chunk_no = 0 AND {scope_filter(audience.readable)}")
        if not found:
            raise NotFound(f"no document with id {doc_id!r} in your knowledge base")
        info = found[0]
        if info.scope == "global" and not may_remove_global:
            raise StoreError("only an admin can remove documents from the global knowledge base")
        where = f"doc_id = {_quote(doc_id)} AND scope = {_quote(info.scope)}"
        await asyncio.to_thread(self._knowledge.delete, where)
        return info

    async def move_scope(self, old: str, new: str) -> int:
        """Give every row of scope `old` the scope `new` (a chat that the platform moved to a new
        id: Telegram upgrading a group to a supergroup). Returns how many rows moved."""
        await self._current()
        await self._settled([old, *(key for key in self._writes if key.endswith(PRIVATE_IN + old))])
        renames = [(old, new), *await asyncio.to_thread(self._private_in, old, new)]
        async with self._write_lock:
            moved = 0
            for before, after in renames:
                for table in (self._knowledge, self._tasks, self._conversation):
                    result = await asyncio.to_thread(table.update, where=f"scope = {_quote(before)}", values={"scope": after})
                    moved += int(getattr(result, "rows_updated", 0) or 0)
        self._searchable.clear()
        return moved

    def _private_in(self, old: str, new: str) -> list[tuple[str, str]]:
        """The askers' private scopes in chat `old` (see Audience.private_here), renamed for `new`."""
        like = "%" + PRIVATE_IN + old.replace("%", "").replace("_", "\\_")
        found: set[str] = set()
        for table in (self._tasks, self._conversation):
            rows = table.search().where(f"scope LIKE {_quote(like)}").select(["scope"]).limit(None).to_arrow()
            found.update(s for s in rows.column("scope").to_pylist() if s.endswith(PRIVATE_IN + old))
        return [(scope, scope.removesuffix(old) + new) for scope in sorted(found)]

    async def private_matches(self, user_scope: str, query: str) -> bool:
        """Whether documents in `user_scope` share words with `query` (the full-text leg alone:
        a vector search always finds something). For telling someone in a shared chat that their
        private notes were left out."""
        if not query.strip():
            return False
        await self._current()
        where = scope_filter([user_scope])
        if not await asyncio.to_thread(self._knowledge_in, [user_scope]):
            return False
        hits = await asyncio.to_thread(self._text_leg, query, where, 1)
        return hits.num_rows > 0

    async def search(self, audience: Audience, query: str, limit: int) -> list[Passage]:
        """Hybrid (vector + n-gram full text, fused by RRF) top-`limit` over readable scopes."""
        if not query.strip():
            return []
        await self._current()
        vector = (await self._embedder.embed([query]))[0]
        return await asyncio.to_thread(self._hybrid, vector, query, audience.readable, limit)

    def _hybrid(self, vector: Any, query: str, scopes: Sequence[str], limit: int) -> list[Passage]:
        """Both legs filter by scope inside the query (prefilter) and read only the columns shown;
        they run side by side, then LanceDB's RRF fuses the two rankings."""
        vectors, texts = _both_legs(self._knowledge, vector, query, scope_filter(scopes), limit)
        fused = self._rrf.rerank_hybrid(query, vectors, texts)
        return [
            Passage(r["id"], r["text"], r["source"] or r["title"], r["scope"], float(r["_relevance_score"]))
            for r in fused.slice(0, limit).to_pylist()
        ]

    def _vector_leg(self, vector: Any, where: str, limit: int) -> Any:
        return (
            self._knowledge.search(vector, query_type="vector", vector_column_name="vector")
            .distance_type("cosine").where(where, prefilter=True)
            .select([*_PASSAGE_COLUMNS, "_distance"]).with_row_id(True).limit(limit).to_arrow()
        )

    def _text_leg(self, query: str, where: str, limit: int) -> Any:
        return (
            self._knowledge.search(query, query_type="fts", fts_columns="text")
            .where(where, prefilter=True)
            .select([*_PASSAGE_COLUMNS, "_score"]).with_row_id(True).limit(limit).to_arrow()
        )

    # ----- MemoryView -----

    async def totals(self) -> tuple[int, int]:
        """(documents, chunks) in the knowledge base, every scope: for /metrics, and a read that
        proves the store is open and reachable (for /readyz)."""
        table = self._knowledge

        def count() -> tuple[int, int]:
            return table.count_rows("chunk_no = 0"), table.count_rows()

        return await asyncio.to_thread(count)

    def warm(self) -> None:
        """Load the embedding model in the background now (a long-running bot), rather than on
        the first recall that needs it, which would stall that message by the model load."""
        preload = getattr(self._embedder, "preload", None)
        if preload is not None:
            preload()

    def close(self) -> None:
        """Stop the full-text worker threads (the bot calls it on shutdown, after `flush`)."""
        if self._writes:
            log.warning("memory store closed with %d conversation write(s) pending: call flush() first",
                        sum(map(len, self._writes.values())))
        self._legs.shutdown(wait=False, cancel_futures=True)

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall:
        """What the audience may read: committed rows (scope-filtered inside each query) and the
        turns of its readable conversations still being written in the background (filtered by
        the same scopes here). Waits for no commit; at most for the embedding of a pending turn's
        tasks, which its own query embedding would wait for anyway."""
        await self._current()
        pending = await self._pending_for(audience)
        embed_now = getattr(self._embedder, "embed_now", None)
        if embed_now is not None:
            # The model runs in this process: the whole recall is one thread hop (each hop costs
            # ~1 ms of wake-up latency on a busy machine, and a recall used to take five).
            return await asyncio.to_thread(self._recall_now, audience, query, turns, limit, embed_now, pending)
        unranked = await asyncio.to_thread(self._recall_unranked, audience, turns, pending)
        if unranked is not None:
            return unranked
        vector = (await self._embedder.embed([query or " "]))[0]
        return await asyncio.to_thread(self._ranked, audience, query, turns, limit, vector, pending)

    async def _pending_for(self, audience: Audience) -> tuple[_PendingTurn, ...]:
        """The unwritten turns of every conversation the audience may read, with their task
        vectors ready. A snapshot taken before the committed rows are read: a turn committed
        meanwhile is then seen twice (and counted once, by id), never missed."""
        pending = tuple(p for scope in audience.readable for p in self._unwritten.get(scope, ()))
        embedding = [p.embedded for p in pending if p.embedded is not None and not p.embedded.done()]
        if embedding:
            await asyncio.gather(*embedding, return_exceptions=True)
        return pending

    def _recall_now(self, audience: Audience, query: str, turns: int, limit: int,
                    embed_now: Callable[[list[str]], Any], pending: tuple[_PendingTurn, ...]) -> Recall:
        unranked = self._recall_unranked(audience, turns, pending)
        if unranked is not None:
            return unranked
        return self._ranked(audience, query, turns, limit, embed_now([query or " "])[0], pending)

    def _ranked(self, audience: Audience, query: str, turns: int, limit: int, vector: Any,
                pending: tuple[_PendingTurn, ...]) -> Recall:
        """Task records, last turns and knowledge at once: the task search runs on a search
        thread (a leaf: it submits nothing, so the pool cannot deadlock) beside the other two."""
        scopes = audience.readable
        tasks = self._legs.submit(self._related_tasks, vector, scopes, pending)
        conversation = self._conversation_of(audience, turns, pending)
        knowledge = self._hybrid(vector, query, scopes, limit) if query.strip() and self._knowledge_in(scopes) else []
        return Recall(knowledge=tuple(knowledge), conversation=tuple(conversation), tasks=tuple(tasks.result()))

    def _conversation_of(self, audience: Audience, turns: int, pending: tuple[_PendingTurn, ...]) -> list[Turn]:
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

    def _knowledge_in(self, scopes: Sequence[str]) -> bool:
        """Whether any of `scopes` holds knowledge chunks; a hybrid search of none finds nothing.
        Recounted only after the knowledge table changed (a version read costs ~0.2 ms, the
        search it spares ~4 ms)."""
        key = frozenset(scopes)
        version = self._knowledge.version
        cached = self._has_knowledge.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        found = self._knowledge.count_rows(scope_filter(scopes)) > 0
        self._has_knowledge[key] = (version, found)
        return found

    def _recall_unranked(self, audience: Audience, turns: int, pending: tuple[_PendingTurn, ...]) -> Recall | None:
        """When the readable scopes hold no knowledge or tasks there is nothing to rank: the
        recall is the last turns alone, and the query embedding (a model load on a cold start)
        is skipped. None: rank as usual."""
        if any(p.tasks for p in pending) or self._has_searchable(audience.readable):
            return None
        return Recall(conversation=tuple(self._conversation_of(audience, turns, pending)))

    def _has_searchable(self, scopes: Sequence[str]) -> bool:
        """Whether any of `scopes` holds knowledge chunks or task records (scope bitmap counts)."""
        key = frozenset(scopes)
        if key in self._searchable:
            return True
        where = scope_filter(scopes)
        found = any(table.count_rows(where) for table in (self._knowledge, self._tasks))
        if found:
            self._searchable.add(key)
        return found

    def _last_turns(self, key: str, turns: int) -> list[tuple[str, Turn]]:
        """The last `turns` turns of a conversation. Served from memory while the conversation
        table is at the version they were read (or written by us) at; any other commit, from this
        process or another, changes the version and the turns are read again. No lock is held
        while reading the table: hundreds of conversations recall at once."""
        if turns <= 0:
            return []
        version = self._conversation.version
        with self._turns_lock:
            cached = self._turns.get(key)
        if cached is None or cached.version != version or not cached.covers(turns):
            cached = self._read_turns(key, version, max(turns, _TURNS_CACHED))
            if self._conversation.version == version:  # else a commit landed meanwhile: don't keep it
                with self._turns_lock:
                    current = self._turns.get(key)
                    if current is None or current.version <= version:
                        self._turns[key] = cached
        return list(cached.turns[-turns:])

    def _read_turns(self, key: str, version: int, depth: int) -> _CachedTurns:
        columns = ["id", "scope", "user_scope", "question", "answer", "at_ms"]
        query = self._conversation.search().where(f"scope = {_quote(key)}").select(columns).limit(None)
        rows = sorted(query.to_arrow().to_pylist(), key=lambda r: r["at_ms"])
        kept = tuple((r["id"], _turn(r)) for r in rows[-depth:])
        return _CachedTurns(version, kept, depth, complete=len(rows) <= depth)

    def _add_turns(self, rows: list[dict[str, Any]]) -> None:
        """Commit turns in one commit. When it lands right after the version we last saw, nothing
        but it changed: the cached turns stay exact, moved to the new version, with ours appended.
        The lock guards the cache only, not the commit, so recalls go on meanwhile."""
        before = self._conversation.version
        after = getattr(self._conversation.add(rows), "version", None)
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
                        cached = cached.appended(after, (row["id"], _turn(row)))
                self._turns[key] = replace(cached, version=after)

    def _related_tasks(self, vector: Any, scopes: Sequence[str], pending: tuple[_PendingTurn, ...] = ()) -> list[TaskRecord]:
        """The task records nearest the query among the readable scopes' committed ones and those
        of unwritten turns (already limited to readable conversations), by one cosine ranking."""
        held = self._scopes_tasks(scopes, self._tasks.version)
        if any(h.vectors is None for h in held):
            found = self._searched_tasks(vector, scopes)  # a scope too big to hold in memory
        else:
            found = {task_id: (distance, record) for task_id, distance, record in _nearest_held(vector, held)}
        for task_id, distance, record in _pending_tasks(vector, pending):
            found.setdefault(task_id, (distance, record))
        max_distance = 1.0 - self._settings.task_min_similarity
        nearest = sorted(found.values(), key=lambda item: item[0])[:TASKS_PER_RECALL]
        return [record for distance, record in nearest if distance <= max_distance]

    def _searched_tasks(self, vector: Any, scopes: Sequence[str]) -> dict[str, tuple[float, TaskRecord]]:
        query = (
            self._tasks.search(vector).distance_type("cosine").where(scope_filter(scopes), prefilter=True)
            .select(["id", "task_name", "command", "result", "scope", "_distance"]).limit(TASKS_PER_RECALL)
        )
        return {
            r["id"]: (r["_distance"], TaskRecord(r["task_name"], json.loads(r["command"] or "{}"), r["result"], r["scope"]))
            for r in query.to_arrow().to_pylist()
        }

    def _scopes_tasks(self, scopes: Sequence[str], version: int) -> list[_HeldTasks]:
        """Each scope's task records and unit vectors, held in memory while the task table is at
        the version they were read (or written by us) at, like the last turns: a LanceDB vector
        search costs ~5 ms of CPU however few the rows, a product over a scope's rows a few µs."""
        held: dict[str, _HeldTasks] = {}
        with self._tasks_lock:
            for scope in scopes:
                current = self._tasks_held.get(scope)
                if current is not None and current.version == version:
                    self._tasks_held.move_to_end(scope)
                    held[scope] = current
        missing = [scope for scope in scopes if scope not in held]
        if missing:
            read = self._read_tasks(missing, version)
            held.update(read)
            if self._tasks.version == version:  # else a commit landed meanwhile: don't keep them
                self._hold_tasks(read, version)
        return [held[scope] for scope in scopes]

    def _hold_tasks(self, read: dict[str, _HeldTasks], version: int) -> None:
        with self._tasks_lock:
            for scope, tasks in read.items():
                current = self._tasks_held.get(scope)
                if current is None or current.version <= version:
                    self._tasks_held[scope] = tasks
                    self._tasks_held.move_to_end(scope)
            self._trim_tasks()

    def _read_tasks(self, scopes: Sequence[str], version: int) -> dict[str, _HeldTasks]:
        """The task records of `scopes`, in one read unless it comes back cut short by the limit
        (then scope by scope); a scope with more than TASKS_HELD rows is marked too big to hold."""
        cap = TASKS_HELD * len(scopes) + 1
        columns = ["id", "scope", "task_name", "command", "result", "vector"]
        rows = self._tasks.search().where(scope_filter(scopes)).select(columns).limit(cap).to_arrow()
        if rows.num_rows >= cap and len(scopes) > 1:
            return {scope: tasks for one in scopes for scope, tasks in self._read_tasks([one], version).items()}
        import pyarrow as pa

        owners = rows.column("scope").to_pylist()
        read = {}
        for scope in scopes:
            mine = rows.take(pa.array([n for n, owner in enumerate(owners) if owner == scope], type=pa.int64()))
            read[scope] = _held_of(mine, version) if mine.num_rows <= TASKS_HELD else _HeldTasks(version, (), (), None)
        return read

    def _trim_tasks(self) -> None:
        """Hold at most TASK_ROWS_HELD rows in all (~2 KB each), the scopes used longest ago go first."""
        while sum(len(h.ids) for h in self._tasks_held.values()) > TASK_ROWS_HELD and len(self._tasks_held) > 1:
            self._tasks_held.popitem(last=False)

    def _tasks_committed(self, before: int, after: int | None, embedded: list[tuple[_PendingTurn, Any]]) -> None:
        """Our task commit landed right after the version we last saw: the held scopes stay exact,
        moved to the new version with our rows appended. Otherwise read them afresh."""
        with self._tasks_lock:
            if after != before + 1:
                self._tasks_held.clear()
                return
            for scope, held in list(self._tasks_held.items()):
                if held.version == after:
                    continue
                if held.version != before:
                    del self._tasks_held[scope]
                    continue
                ours = [(p, n, v) for p, vectors in embedded if p.scope == scope
                        for n, v in enumerate(vectors)]
                self._tasks_held[scope] = held.appended(after, ours)

    async def remember(self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *,
                       scope: str = "") -> None:
        """Store a finished turn under `scope` (default: the audience's conversation); returns once
        it is committed."""
        loop = asyncio.get_running_loop()
        pending = _PendingTurn(audience, scope or audience.conversation_key, question, answer, tuple(tasks),
                               _now_ms(), None, loop.create_future() if tasks else None)
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
        pending = _PendingTurn(audience, key, question, answer, tuple(tasks), _now_ms(), done,
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
            if self._written >= self._settings.compact_every and not self._compacting.locked():
                self._written = 0
                # Its own task, under no conversation's key: flush waits for it, recalls do not.
                task = asyncio.get_running_loop().create_task(self._compact_soon())
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

    def _settle(self, batch: Sequence[_PendingTurn]) -> None:
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

    async def _commit(self, batch: Sequence[_PendingTurn]) -> None:
        """Commit the batch's turns and task records in one thread hop: one commit per table.
        Turns are committed even when their tasks could not be embedded (that is then raised)."""
        tasks = [(p, await p.embedded) for p in batch if p.embedded is not None]
        embedded = [(p, vectors) for p, vectors in tasks if vectors is not None]
        if embedded:
            await self._current()  # the tasks go to the current generation of tables
        await asyncio.to_thread(self._write, batch, embedded)
        if len(embedded) < len(tasks):
            raise StoreError(f"the task records of {len(tasks) - len(embedded)} turn(s) could not be embedded")

    def _embed_soon(self, pending: _PendingTurn) -> None:
        """Embed a finished turn's task records now, apart from its batch: a recall that reads the
        turn before it is committed ranks them without waiting for the batch to gather."""
        task = asyncio.get_running_loop().create_task(self._embed_tasks(pending))
        self._embedding.add(task)
        task.add_done_callback(self._embedding.discard)

    async def _embed_tasks(self, pending: _PendingTurn) -> None:
        vectors = None
        try:
            vectors = await self._embedder.embed([_task_text(pending.question, t.task_name, t.result) for t in pending.tasks])
        except Exception:
            log.exception("could not embed %d task record(s) of %s", len(pending.tasks), pending.scope)
        finally:
            if pending.embedded is not None and not pending.embedded.done():
                pending.embedded.set_result(vectors)

    def _write(self, batch: Sequence[_PendingTurn], embedded: list[tuple[_PendingTurn, Any]]) -> None:
        with self._commit_lock:
            self._add_turns([p.row() for p in batch])
            if embedded:
                before = self._tasks.version
                result = self._tasks.add(self._task_rows(embedded))
                self._tasks_committed(before, getattr(result, "version", None), embedded)

    async def _compact_soon(self) -> None:
        async with self._compacting:
            await asyncio.to_thread(self._compact)

    def _compact(self) -> None:
        """Each commit adds a small file, and every read opens each file: reads slow down as turns
        pile up (a task search goes from 2.5 ms at 1 file to 17 ms at 100). Fold them into one.
        Each commit also leaves a version, and compaction reads every version it keeps (~0.15 ms
        each: a day of busy commits made one compaction cost seconds): keep only recent ones."""
        keep = timedelta(minutes=self._settings.keep_versions_minutes)
        try:
            with self._commit_lock:  # the writer waits, recalls do not (they read unwritten turns)
                self._tasks.optimize(cleanup_older_than=keep)
                self._conversation.optimize(cleanup_older_than=keep)
        except Exception:  # a failed compaction loses nothing; upkeep tries again later
            log.exception("could not compact the memory tables")

    def _write_done(self, key: str, write: asyncio.Future[None]) -> None:
        """Forget a finished background write: a turn's batch future, or the compaction task."""
        pending = self._writes.get(key)
        if pending is not None:
            pending.discard(write)
            if not pending:
                del self._writes[key]

    async def _settled(self, scopes: Sequence[str]) -> None:
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

    def _task_rows(self, embedded: list[tuple[_PendingTurn, Any]]) -> Any:
        import numpy as np
        import pyarrow as pa

        rows = [(p, n, t) for p, _ in embedded for n, t in enumerate(p.tasks)]
        vectors = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in embedded])
        data = {
            "id": [p.task_id(n) for p, n, _ in rows], "scope": [p.scope for p, _, _ in rows],
            "question": [p.question for p, _, _ in rows], "task_name": [t.task_name for _, _, t in rows],
            "command": [json.dumps(t.command, ensure_ascii=False, default=str) for _, _, t in rows],
            "result": [t.result for _, _, t in rows], "at_ms": [p.at for p, _, _ in rows],
            "vector": self._vector_array(vectors),
        }
        return pa.table(data, schema=self._tasks.schema)

    # ----- upkeep (called by the scheduler) -----

    async def optimize(self) -> dict[str, int]:
        """Compact small files, fold new rows into the indexes, and build the vector ANN index
        once the knowledge table is big enough. Returns what it did."""
        return await asyncio.to_thread(self._optimize)

    def _optimize(self) -> dict[str, int]:
        report = {"tables_optimized": 0, "ann_index_built": 0}
        for table in (self._knowledge, self._tasks, self._conversation):
            table.optimize(cleanup_older_than=timedelta(days=1))
            report["tables_optimized"] += 1
        rows = self._knowledge.count_rows()
        report["knowledge_rows"] = rows
        if rows >= self._settings.ann_min_rows and not self._has_vector_index():
            build_ann_index(self._knowledge, rows)
            report["ann_index_built"] = 1
        return report

    def _has_vector_index(self) -> bool:
        return any("vector" in index.columns for index in self._knowledge.list_indices())

    async def prune_conversation(self, older_than_days: int) -> int:
        # A delete commits a new table version, so no cached turn outlives it.
        return await asyncio.to_thread(self._prune, self._conversation, older_than_days)

    async def prune_tasks(self, older_than_days: int) -> int:
        return await asyncio.to_thread(self._prune, self._tasks, older_than_days)

    @staticmethod
    def _prune(table: Any, days: int) -> int:
        where = f"at_ms < {_now_ms() - days * _DAY_MS}"
        count = table.count_rows(where)
        if count:
            table.delete(where)
        return count

    # ----- reindex -----

    async def reindex(self, progress: Progress | None = None) -> dict[str, int]:
        """Re-embed every chunk and task with the configured embedder into a new generation of
        tables, switch the meta row to it in one commit, then drop the old generation."""
        dim = await self._embedder.dimension()
        generation = int(self._meta["generation"]) + 1
        await asyncio.to_thread(self._drop_generation, generation)  # leftovers of a crashed reindex
        knowledge = await asyncio.to_thread(
            _create_knowledge, self._db, f"knowledge_g{generation}", dim, self._settings.fts_tokenizer
        )
        tasks = await asyncio.to_thread(_create_tasks, self._db, f"tasks_g{generation}", dim)
        chunks = await self._copy_reembedded(self._knowledge, knowledge, "text", dim, progress)
        task_rows = await self._copy_reembedded(self._tasks, tasks, None, dim, None)
        old = int(self._meta["generation"])
        await asyncio.to_thread(_write_meta, self._db, self._embedder.id, dim, generation)
        await asyncio.to_thread(self._set_generation, _meta_row(self._embedder.id, dim, generation)[0])
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
            texts = [_task_text(q, n, r) for q, n, r in zip(*columns)]
        vectors = await self._embedder.embed(texts, progress)
        table = rows.append_column("vector", self._vector_array(vectors, dim)).select(target.schema.names)
        await asyncio.to_thread(target.add, table.cast(target.schema))
        return rows.num_rows

    def _drop_generation(self, generation: int) -> None:
        names = _table_names(self._db)
        for name in (f"knowledge_g{generation}", f"tasks_g{generation}"):
            if name in names:
                self._db.drop_table(name)


def build_ann_index(table: Any, rows: int) -> None:
    """IVF-PQ over cosine; partitions ~ sqrt(rows) keeps each probe small."""
    from lancedb.index import IvfPq

    partitions = max(16, int(rows**0.5))
    table.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=partitions), replace=True)


def _both_legs(table: Any, vector: Any, query: str, where: str, limit: int) -> tuple[Any, Any]:
    """The vector and full-text legs of a hybrid query (the same as `_vector_leg` and `_text_leg`),
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


def _turn(row: dict[str, Any]) -> Turn:
    at = datetime.fromtimestamp(row["at_ms"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return Turn(row["question"], row["answer"], at, row["user_scope"], row["scope"])


def _task_text(question: str, task_name: str, result: str) -> str:
    """What a task record is found by: the question it served and what it returned."""
    return f"{question}\n{task_name}: {result[:1000]}"


def _pending_tasks(vector: Any, pending: Sequence[_PendingTurn]) -> Iterator[tuple[str, float, TaskRecord]]:
    """(row id, cosine distance to `vector`, record) of each embedded task of unwritten turns."""
    import numpy as np

    query = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(query))
    for turn in pending:
        vectors = turn.task_vectors()
        if vectors is None:
            continue
        vectors = np.asarray(vectors, dtype=np.float32)
        cosine = vectors @ query / np.maximum(np.linalg.norm(vectors, axis=1) * norm, 1e-12)
        for n, similarity in enumerate(cosine):
            yield turn.task_id(n), 1.0 - float(similarity), turn.task(n)


@dataclass(frozen=True)
class _PendingTurn:
    audience: Audience
    scope: str  # kept under this scope: the most private of what went into the turn
    question: str
    answer: str
    tasks: tuple[TaskRecord, ...]
    at: int  # ms since the epoch, when the turn finished
    done: asyncio.Future[None] | None = None  # resolved once its batch is committed (or failed)
    embedded: asyncio.Future[Any] | None = None  # its tasks' vectors once embedded (None: could not be)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # the turn's row id; its tasks' derive from it

    @property
    def turn(self) -> Turn:
        return _turn(self.row())

    def task(self, n: int) -> TaskRecord:
        """Its n-th task record, marked with the scope it is kept under."""
        return replace(self.tasks[n], scope=self.scope)

    def task_id(self, n: int) -> str:
        return f"{self.id}-{n}"

    def task_vectors(self) -> Any:
        embedded = self.embedded
        if embedded is None or not embedded.done() or embedded.cancelled() or embedded.exception() is not None:
            return None
        return embedded.result()

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "scope": self.scope, "user_scope": self.audience.user_scope,
                "question": self.question, "answer": self.answer, "at_ms": self.at}


def _unit_rows(vectors: Any) -> Any:
    """A column or array of vectors as float32 rows of length 1 (zero rows stay zero)."""
    import numpy as np

    if hasattr(vectors, "combine_chunks"):
        column = vectors.combine_chunks()
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(len(column), -1) if len(column) else np.empty((0, 0))
    rows = np.asarray(vectors, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12) if rows.size else rows


def _held_of(rows: Any, version: int) -> _HeldTasks:
    records = tuple(TaskRecord(r["task_name"], json.loads(r["command"] or "{}"), r["result"], r["scope"])
                    for r in rows.select(["task_name", "command", "result", "scope"]).to_pylist())
    return _HeldTasks(version, tuple(rows.column("id").to_pylist()), records, _unit_rows(rows.column("vector")))


def _nearest_held(vector: Any, held: Sequence[_HeldTasks]) -> Iterator[tuple[str, float, TaskRecord]]:
    """(row id, cosine distance, record) of the TASKS_PER_RECALL nearest held task records."""
    import numpy as np

    held = [h for h in held if h.ids]
    if not held:
        return
    query = np.asarray(vector, dtype=np.float32)
    similarity = np.concatenate([h.vectors for h in held]) @ (query / max(float(np.linalg.norm(query)), 1e-12))
    ids = [i for h in held for i in h.ids]
    records = [r for h in held for r in h.records]
    for n in np.argsort(-similarity, kind="stable")[:TASKS_PER_RECALL]:
        yield ids[n], 1.0 - float(similarity[n]), records[n]


@dataclass(frozen=True)
class _HeldTasks:
    version: int  # the task table version these rows are exact for
    ids: tuple[str, ...]
    records: tuple[TaskRecord, ...]
    vectors: Any  # unit rows, one per record; None: the scope has more than TASKS_HELD rows

    def appended(self, version: int, ours: list[tuple[_PendingTurn, int, Any]]) -> _HeldTasks:
        import numpy as np

        if self.vectors is None or len(self.ids) + len(ours) > TASKS_HELD:
            return _HeldTasks(version, (), (), None)
        if not ours:
            return replace(self, version=version)
        vectors = _unit_rows(np.stack([v for _, _, v in ours]))
        return _HeldTasks(version, self.ids + tuple(p.task_id(n) for p, n, _ in ours),
                          self.records + tuple(p.task(n) for p, n, _ in ours),
                          np.concatenate([self.vectors, vectors]) if len(self.ids) else vectors)


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


class KnowledgeView:
    """The knowledge base as one audience sees it: what the tools' `KnowledgeSearcher` needs."""

    def __init__(self, store: MemoryStore, audience: Audience) -> None:
        self._store = store
        self.audience = audience

    async def search_knowledge(self, query: str, limit: int) -> list[Passage]:
        return await self._store.search(self.audience, query, limit)
