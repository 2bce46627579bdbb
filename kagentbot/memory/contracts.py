"""What the rest of kagentbot may ask of memory, one Protocol per concern. `MemoryStore` and the
deferred opener (`startup.deferred.DeferredStore`) both implement `Memory`, all of them; the
agent needs only `MemoryView` (memory.types), commands and upkeep name the part they use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from kagentbot.memory.types import AddResult, Audience, DocumentInfo, MemoryView, Passage

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings
    from kagentbot.memory.embedders import Progress
    from kagentbot.memory.ingest import Document


class KnowledgeSearch(Protocol):
    """The knowledge base as one audience sees it (what the tools' `KnowledgeSearcher` needs)."""

    audience: Audience

    async def search_knowledge(self, query: str, limit: int) -> list[Passage]: ...


class KnowledgeBase(Protocol):
    """Documents per scope, and hybrid search over the scopes an audience may read."""

    @property
    def settings(self) -> Settings:
        """The settings the store was opened with (ingestion limits, fetch settings)."""
        ...

    async def add_document(self, document: Document, scope: str, progress: Progress | None = None) -> AddResult: ...

    async def list_documents(self, scopes: Sequence[str]) -> list[DocumentInfo]: ...

    async def remove_document(self, audience: Audience, doc_id: str, *, may_remove_global: bool) -> DocumentInfo: ...

    async def search(self, audience: Audience, query: str, limit: int) -> list[Passage]: ...

    async def private_matches(self, user_scope: str, query: str) -> bool:
        """Whether documents in `user_scope` share words with `query`."""
        ...

    async def totals(self) -> tuple[int, int]:
        """(documents, chunks) in every scope."""
        ...

    def for_audience(self, audience: Audience) -> KnowledgeSearch: ...


class ConversationLog(MemoryView, Protocol):
    """Finished turns per conversation (recall, remember, remember_soon), written behind."""

    async def flush(self) -> None:
        """Wait until every turn handed to `remember_soon` is written."""
        ...

    async def prune_conversation(self, older_than_days: int) -> int: ...


class TaskHistory(Protocol):
    """Finished tasks' records, recalled with the turns (see `Recall.tasks`)."""

    async def prune_tasks(self, older_than_days: int) -> int: ...


class Maintenance(Protocol):
    """Upkeep of the tables, and the store's lifecycle."""

    async def optimize(self) -> dict[str, int]: ...

    async def reindex(self, progress: Progress | None = None) -> dict[str, int]: ...

    async def move_scope(self, old: str, new: str) -> int:
        """Give every row of scope `old` the scope `new`; returns how many rows moved."""
        ...

    def warm(self) -> None:
        """Get ready for the first recall in the background (a long-running bot)."""
        ...

    def close(self) -> None:
        """Release threads and handles (after `flush`)."""
        ...


class Memory(KnowledgeBase, ConversationLog, TaskHistory, Maintenance, Protocol):
    """All of memory: what the bot's Services hold."""
