"""The store's LanceDB layout: the three scoped tables (knowledge chunks, conversation turns,
task records) and the meta row that names their generation and embedder; connecting, creating,
migrating, and following a reindex done by another process. Every row carries its scope."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagentbot.memory.embedders import Embedder, settings_for
from kagentbot.memory.errors import EmbedderMismatch, StoreError

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings, Settings

SCHEMA_VERSION = 1
META = "meta"
CONVERSATION = "conversation"
# Migrations from an older schema version: version -> blocking function(db, meta) -> meta.
MIGRATIONS: dict[int, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {}
META_CHECK_INTERVAL = 1.0  # seconds between looks for a reindex done by another process
DAY_MS = 86_400_000

log = logging.getLogger(__name__)


def scope_filter(scopes: Sequence[str]) -> str:
    quoted = ", ".join("'" + scope.replace("'", "''") + "'" for scope in scopes)
    return f"scope IN ({quoted})"


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
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


def meta_row(embedder_id: str, dim: int, generation: int) -> list[dict[str, Any]]:
    return [{"schema_version": SCHEMA_VERSION, "embedder": embedder_id, "dim": dim, "generation": generation}]


# ---------- blocking table setup ----------


def _connect(uri: str, options: dict[str, Any]) -> Any:
    from kagentbot.memory.startup.lazy_client import import_lancedb

    lancedb = import_lancedb()

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


def holds_vectors(uri: str) -> bool:
    """Whether a local store has had knowledge or task rows (files in those tables' data folders):
    a look at the disk, before LanceDB (~1 s to import) is loaded."""
    if "://" in uri:
        return False
    try:
        return any(any(folder.iterdir()) for folder in Path(uri).glob("*_g*.lance/data"))
    except OSError:
        return False


def table_names(db: Any) -> set[str]:
    response = db.list_tables()
    return set(getattr(response, "tables", response))


def create_knowledge(db: Any, name: str, dim: int, tokenizer: str) -> Any:
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


def create_tasks(db: Any, name: str, dim: int) -> Any:
    from lancedb.index import Bitmap

    table = db.create_table(name, schema=_tasks_schema(dim), exist_ok=True)
    table.create_index("scope", config=Bitmap(), replace=True)
    return table


def _create_conversation(db: Any) -> Any:
    from lancedb.index import Bitmap

    table = db.create_table(CONVERSATION, schema=_conversation_schema(), exist_ok=True)
    table.create_index("scope", config=Bitmap(), replace=True)
    return table


def read_meta(db: Any) -> dict[str, Any] | None:
    if META not in table_names(db):
        return None
    rows = db.open_table(META).to_arrow().to_pylist()
    return rows[0] if rows else None


def write_meta(db: Any, embedder_id: str, dim: int, generation: int) -> None:
    # Overwrite is one atomic commit: readers see the old or the new row, never neither.
    db.create_table(META, data=meta_row(embedder_id, dim, generation), mode="overwrite")


def _initialise(db: Any, embedder_id: str, dim: int, tokenizer: str) -> dict[str, Any]:
    create_knowledge(db, "knowledge_g1", dim, tokenizer)
    create_tasks(db, "tasks_g1", dim)
    _create_conversation(db)
    write_meta(db, embedder_id, dim, 1)  # last: a store without meta is not yet initialised
    return meta_row(embedder_id, dim, 1)[0]


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




async def connect(settings: Settings, embedder: Embedder, *, reindexing: bool) -> tuple[Any, dict[str, Any]]:
    """Connect to (creating if new) the store at `settings.memory_uri`: the connection and its
    meta row. Raises EmbedderMismatch when the tables were built by another embedder, unless
    `reindexing`."""
    uri = settings.memory_uri
    try:
        db = await asyncio.to_thread(_connect, uri, settings.memory.storage_options)
        meta = await asyncio.to_thread(read_meta, db)
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
    return db, meta


def build_ann_index(table: Any, rows: int) -> None:
    """IVF-PQ over cosine; partitions ~ sqrt(rows) keeps each probe small."""
    from lancedb.index import IvfPq

    partitions = max(16, int(rows**0.5))
    table.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=partitions), replace=True)


class Tables:
    """One store's open tables at its current generation. Blocking: build it on a worker thread.

    `kagentbot kb reindex` writes a new generation of the knowledge and task tables and switches
    the meta row to it; `current()` follows such a switch (ours or another process's), and every
    callback given to `on_switch` then drops what it had read from the old generation."""

    def __init__(self, db: Any, settings: MemorySettings, meta: dict[str, Any], uri: str, embedder_id: str) -> None:
        self.db = db
        self.uri = uri
        self._settings = settings
        self._embedder_id = embedder_id
        self._switched: list[Callable[[], None]] = []
        # Held by every commit of turns and tasks and by compaction (threads): they go one at a
        # time, so the caches see each of our commits land right after the one before.
        self.commit_lock = threading.Lock()
        self.set_generation(meta)
        self._meta_table = db.open_table(META)
        self._meta_version = self._meta_table.version
        self._meta_checked = time.monotonic()
        self.conversation = db.open_table(CONVERSATION)

    def on_switch(self, forget: Callable[[], None]) -> None:
        self._switched.append(forget)

    def set_generation(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        generation = int(meta["generation"])
        self.knowledge = self.db.open_table(f"knowledge_g{generation}")
        _ensure_fts(self.knowledge, self._settings.fts_tokenizer)
        self.tasks = self.db.open_table(f"tasks_g{generation}")
        for forget in self._switched:
            forget()  # they were another table's

    @property
    def generation(self) -> int:
        return int(self.meta["generation"])

    @property
    def embedder_id(self) -> str:
        return str(self.meta["embedder"])

    async def current(self) -> None:
        """Follow a reindex done by another process, checking at most once a second (one
        version read), so a running bot needs no restart."""
        if time.monotonic() >= self._meta_checked + META_CHECK_INTERVAL:
            self._meta_checked = time.monotonic()
            await asyncio.to_thread(self._follow_generation)

    def _follow_generation(self) -> None:
        version = self._meta_table.version
        if version == self._meta_version:
            return
        meta = read_meta(self.db)
        if meta is None or int(meta["generation"]) == self.generation:
            self._meta_version = version
            return
        if meta["embedder"] != self._embedder_id:
            raise EmbedderMismatch(
                f"the memory store was rebuilt with the embedder {meta['embedder']!r}, but this process runs "
                f"{self._embedder_id!r}: restart it with {settings_for(meta['embedder'])}"
            )
        self.set_generation(meta)
        self._meta_version = version
        log.info("memory: following the store to table generation %s", meta["generation"])

    def vector_array(self, vectors: Any, dim: int | None = None) -> Any:
        import numpy as np
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        return pa.FixedSizeListArray.from_arrays(flat, dim or int(self.meta["dim"]))
