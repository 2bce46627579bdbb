"""A turn finished but not yet committed: what the write-behind queue holds, and what recalls
read until its batch lands."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from kagentbot.memory.types import Audience, TaskRecord, Turn


def turn_of(row: dict[str, Any]) -> Turn:
    """A conversation table row as a Turn."""
    at = datetime.fromtimestamp(row["at_ms"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
    return Turn(row["question"], row["answer"], at, row["user_scope"], row["scope"])


def task_text(question: str, task_name: str, result: str) -> str:
    """What a task record is found by: the question it served and what it returned."""
    return f"{question}\n{task_name}: {result[:1000]}"


@dataclass(frozen=True)
class PendingTurn:
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
        return turn_of(self.row())

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


