"""Task history: the records of finished tasks, found again by the question they served.

Each scope's records and unit vectors are held in memory while the task table is at the version
they were read (or written by us) at, like the conversation's last turns: a LanceDB vector search
costs ~5 ms of CPU however few the rows, a product over a scope's rows a few µs."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kagentbot.memory.pending import PendingTurn
from kagentbot.memory.tables import Tables, scope_filter
from kagentbot.memory.types import TaskRecord

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings

TASKS_PER_RECALL = 3
TASKS_HELD = 1000  # task records of one scope held in memory; a scope with more is searched in LanceDB
TASK_ROWS_HELD = 20_000  # in all (~2 KB each)

Embedded = list[tuple[PendingTurn, Any]]  # turns and their task records' vectors


class LanceTaskHistory:
    """The task table of the current generation, with each recently read scope held in memory."""

    def __init__(self, tables: Tables, settings: MemorySettings) -> None:
        self._tables = tables
        self._settings = settings
        # Task records held in memory per scope, the most recently used last.
        self._held: OrderedDict[str, _HeldTasks] = OrderedDict()
        self._lock = threading.Lock()
        tables.on_switch(_forgetting(self._held, self._lock))  # not a bound method: no cycle to keep us alive

    def related(self, vector: Any, scopes: Sequence[str], pending: tuple[PendingTurn, ...] = ()) -> list[TaskRecord]:
        """The task records nearest the query among the readable scopes' committed ones and those
        of unwritten turns (already limited to readable conversations), by one cosine ranking."""
        held = self._scopes_tasks(scopes, self._tables.tasks.version)
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
            self._tables.tasks.search(vector).distance_type("cosine").where(scope_filter(scopes), prefilter=True)
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
        with self._lock:
            for scope in scopes:
                current = self._held.get(scope)
                if current is not None and current.version == version:
                    self._held.move_to_end(scope)
                    held[scope] = current
        missing = [scope for scope in scopes if scope not in held]
        if missing:
            read = self._read_tasks(missing, version)
            held.update(read)
            if self._tables.tasks.version == version:  # else a commit landed meanwhile: don't keep them
                self._hold_tasks(read, version)
        return [held[scope] for scope in scopes]

    def _hold_tasks(self, read: dict[str, _HeldTasks], version: int) -> None:
        with self._lock:
            for scope, tasks in read.items():
                current = self._held.get(scope)
                if current is None or current.version <= version:
                    self._held[scope] = tasks
                    self._held.move_to_end(scope)
            self._trim_tasks()

    def _read_tasks(self, scopes: Sequence[str], version: int) -> dict[str, _HeldTasks]:
        """The task records of `scopes`, in one read unless it comes back cut short by the limit
        (then scope by scope); a scope with more than TASKS_HELD rows is marked too big to hold."""
        cap = TASKS_HELD * len(scopes) + 1
        columns = ["id", "scope", "task_name", "command", "result", "vector"]
        rows = self._tables.tasks.search().where(scope_filter(scopes)).select(columns).limit(cap).to_arrow()
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
        while sum(len(h.ids) for h in self._held.values()) > TASK_ROWS_HELD and len(self._held) > 1:
            self._held.popitem(last=False)

    def _tasks_committed(self, before: int, after: int | None, embedded: Embedded) -> None:
        """Our task commit landed right after the version we last saw: the held scopes stay exact,
        moved to the new version with our rows appended. Otherwise read them afresh."""
        with self._lock:
            if after != before + 1:
                self._held.clear()
                return
            for scope, held in list(self._held.items()):
                if held.version == after:
                    continue
                if held.version != before:
                    del self._held[scope]
                    continue
                ours = [(p, n, v) for p, vectors in embedded if p.scope == scope
                        for n, v in enumerate(vectors)]
                self._held[scope] = held.appended(after, ours)

    def add(self, embedded: Embedded) -> None:
        """Commit the task records of these turns in one commit (blocking; the caller holds the
        tables' commit lock). Older LanceDB returns no version from `add`: then read afresh."""
        before = self._tables.tasks.version
        result = self._tables.tasks.add(self._task_rows(embedded))
        self._tasks_committed(before, getattr(result, "version", None), embedded)

    def _task_rows(self, embedded: Embedded) -> Any:
        import numpy as np
        import pyarrow as pa

        rows = [(p, n, t) for p, _ in embedded for n, t in enumerate(p.tasks)]
        vectors = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in embedded])
        data = {
            "id": [p.task_id(n) for p, n, _ in rows], "scope": [p.scope for p, _, _ in rows],
            "question": [p.question for p, _, _ in rows], "task_name": [t.task_name for _, _, t in rows],
            "command": [json.dumps(t.command, ensure_ascii=False, default=str) for _, _, t in rows],
            "result": [t.result for _, _, t in rows], "at_ms": [p.at for p, _, _ in rows],
            "vector": self._tables.vector_array(vectors),
        }
        return pa.table(data, schema=self._tables.tasks.schema)


def _forgetting(held: OrderedDict[str, _HeldTasks], lock: threading.Lock) -> Callable[[], None]:
    """Drops the held records (they were another generation's)."""

    def forget() -> None:
        with lock:
            held.clear()

    return forget


def _pending_tasks(vector: Any, pending: Sequence[PendingTurn]) -> Iterator[tuple[str, float, TaskRecord]]:
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

    def appended(self, version: int, ours: list[tuple[PendingTurn, int, Any]]) -> _HeldTasks:
        import numpy as np

        if self.vectors is None or len(self.ids) + len(ours) > TASKS_HELD:
            return _HeldTasks(version, (), (), None)
        if not ours:
            return replace(self, version=version)
        vectors = _unit_rows(np.stack([v for _, _, v in ours]))
        return _HeldTasks(version, self.ids + tuple(p.task_id(n) for p, n, _ in ours),
                          self.records + tuple(p.task(n) for p, n, _ in ours),
                          np.concatenate([self.vectors, vectors]) if len(self.ids) else vectors)
