"""Values that cross the memory boundary. The agent sees memory only through `MemoryView`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol


PRIVATE_IN = "|"  # joins a user scope and a chat scope into the scope of what is private to both


@dataclass(frozen=True)
class Audience:
    """Who is asking, and so what they may read. In a DM (and the console) the asker's own scope
    and global; in a shared chat (channel, group, thread) the chat's scope and global, plus the
    asker's own only where they opted in for that chat (`/kb share on`)."""

    user_scope: str  # "user:<platform>:<id>"
    chat_scope: str = ""  # "chat:<platform>:<id>"; empty in a DM / the console
    share_private: bool = False  # in a shared chat: the asker allowed their private memory here

    @property
    def is_shared(self) -> bool:
        return bool(self.chat_scope)

    @property
    def private_readable(self) -> bool:
        return not self.chat_scope or self.share_private

    @property
    def private_here(self) -> str:
        """Where what came from both the asker's private memory and this chat is kept: readable
        by this asker, in this chat, with sharing on; nobody else. Empty in a DM."""
        return f"{self.user_scope}{PRIVATE_IN}{self.chat_scope}" if self.chat_scope else ""

    @property
    def readable(self) -> tuple[str, ...]:
        scopes = []
        if self.private_readable:
            scopes.append(self.user_scope)
        if self.chat_scope:
            if self.share_private:
                scopes.append(self.private_here)
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
        """The conversation everyone here shares: the chat's, or in a DM the asker's."""
        return self.chat_scope or self.user_scope

    @property
    def conversation_keys(self) -> tuple[str, ...]:
        """The conversations a recall reads: with sharing on, also the asker's private turns here."""
        if self.chat_scope and self.share_private:
            return (self.conversation_key, self.private_here)
        return (self.conversation_key,)

    def store_scope(self, sources: Iterable[str]) -> str:
        """Where a turn (and its task records) is kept: under the most private scope of what went
        into it. Anything from the asker's private memory in a shared chat makes it `private_here`."""
        if self.chat_scope and any(s == self.user_scope or s == self.private_here for s in sources):
            return self.private_here
        return self.conversation_key


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
    speaker: str = ""  # the asker's user scope ("" where unknown)
    scope: str = ""  # the scope the turn is kept under


@dataclass(frozen=True)
class TaskRecord:
    """One finished task, as KAgentSys lists them under `Complete tasks`."""

    task_name: str
    command: dict[str, Any]
    result: str
    scope: str = ""  # recalled from this scope; "" for a task of the turn under way


@dataclass(frozen=True)
class Recall:
    knowledge: tuple[Passage, ...] = ()
    conversation: tuple[Turn, ...] = ()
    tasks: tuple[TaskRecord, ...] = ()  # relevant tasks from earlier turns


class MemoryView(Protocol):
    """What the agent loop needs from memory."""

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall: ...

    async def remember(
        self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *, scope: str = ""
    ) -> None:
        """Keep a finished turn under `scope` (default: the audience's conversation)."""

    def remember_soon(
        self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *, scope: str = ""
    ) -> None:
        """`remember` without waiting: the turn ends when its answer is out. A recall after it
        reads the turn all the same (from memory until it is written)."""


@dataclass
class ConversationBuffer:
    """Process-local conversation memory: what the console keeps when no store is configured."""

    turns: dict[str, list[Turn]] = field(default_factory=dict)

    async def recall(self, audience: Audience, query: str, *, turns: int, limit: int) -> Recall:
        history = sorted((t for key in audience.conversation_keys for t in self.turns.get(key, [])), key=lambda t: t.at)
        return Recall(conversation=tuple(history[-turns:]) if turns else ())

    async def remember(
        self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *, scope: str = ""
    ) -> None:
        self.remember_soon(audience, question, answer, tasks, scope=scope)

    def remember_soon(
        self, audience: Audience, question: str, answer: str, tasks: Sequence[TaskRecord], *, scope: str = ""
    ) -> None:
        key = scope or audience.conversation_key
        at = datetime.now(timezone.utc).isoformat()
        self.turns.setdefault(key, []).append(Turn(question, answer, at, audience.user_scope, key))


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
