"""Values that cross the memory boundary. The agent sees memory only through `MemoryView`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Audience:
    """Who is asking, and so what they may read: their own scope, this chat's, and global."""

    user_scope: str  # "user:<platform>:<id>"
    chat_scope: str = ""  # "chat:<platform>:<id>"; empty in a DM / the console

    @property
    def readable(self) -> tuple[str, ...]:
        scopes = [self.user_scope]
        if self.chat_scope:
            scopes.append(self.chat_scope)
        scopes.append("global")
        return tuple(scopes)

    def shared(self) -> Audience:
        """What everyone in this chat may read: the chat's scope and global, not the asker's own.
        Used for listings shown in a shared channel."""
        if not self.chat_scope:
            return self
        return Audience(user_scope=self.chat_scope)

    @property
    def conversation_key(self) -> str:
        return self.chat_scope or self.user_scope


@dataclass(frozen=True)
class Passage:
    """One knowledge-base chunk that retrieval found."""

    id: str
    text: str
    source: str
    scope: str
    score: float = 0.0


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str
    at: str = ""  # ISO timestamp


@dataclass(frozen=True)
class TaskRecord:
    """One finished task, as KAgentSys lists them under `Complete tasks`."""

    task_name: str
    command: dict[str, Any]
    result: str


@dataclass(frozen=True)
class Recall:
    knowledge: tuple[Passage, ...] = ()
    conversation: tuple[Turn, ...] = ()
    tasks: tuple[TaskRecord, ...] = ()  # relevant tasks from earlier turns


class MemoryView(Protocol):
    """What the agent loop needs from memory."""

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall: ...

    async def remember(
        self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord]
    ) -> None: ...


@dataclass
class ConversationBuffer:
    """Process-local conversation memory: what the console keeps when no store is configured."""

    turns: dict[str, list[Turn]] = field(default_factory=dict)

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall:
        history = self.turns.get(audience.conversation_key, [])
        return Recall(conversation=tuple(history[-turns:]) if turns else ())

    async def remember(
        self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord]
    ) -> None:
        self.turns.setdefault(audience.conversation_key, []).append(Turn(question, answer))
