"""Everything a turn needs, built once from the settings and closed on shutdown: the LLM
client, the tool registry, memory, the shared HTTP session. The only place that knows every part."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kagentbot.agent.context import ContextSizes
from kagentbot.agent.llm import LLMClient, make_client
from kagentbot.agent.llm_meter import metered
from kagentbot.agent.loop import Agent
from kagentbot.agent.slots import FairGate, SlotGate
from kagentbot.bot import replicas
from kagentbot.config.settings import Settings
from kagentbot.memory.contracts import Memory
from kagentbot.memory.types import Audience
from kagentbot.persona.model import Persona
from kagentbot.persona.store import PersonaStore
from kagentbot.scope import Scope
from kagentbot.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from kagentbot.bot.schedule import Scheduler
    from kagentbot.chat.messages import IncomingMessage
    from kagentbot.bot.sharing import ShareBook
    from kagentbot.cluster.shared import SharedState

log = logging.getLogger(__name__)


def slot_gate(settings: Settings) -> SlotGate:
    """The LLM server's slots: this process's fair gate, or with `cluster.enabled` the one every
    replica shares in Redis (same cap, same order of service)."""
    if settings.cluster.enabled:
        from kagentbot.cluster.slots import RedisSlotGate

        return RedisSlotGate.from_settings(settings)
    return FairGate.from_settings(settings)


@dataclass
class Services:
    settings: Settings
    llm: LLMClient
    tools: ToolRegistry
    memory: Memory
    personas: PersonaStore
    _http: Any = None  # aiohttp.ClientSession, opened on first use by a network tool
    scheduler: Scheduler | None = None  # set by the Bot while it runs
    _sharing: ShareBook | None = None  # opened on first use
    contexts: ContextSizes = field(default_factory=ContextSizes)  # each model's context, read once
    _memory_closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # cluster: the lock's Redis
    shared: SharedState | None = None  # the shared Redis when `cluster.enabled` (bot/replicas.py)
    # cluster mode: for /readyz, says whether the shared Redis answers (raises why not); None in one process
    cluster_probe: Callable[[], Awaitable[str]] | None = None

    @classmethod
    async def open(cls, settings: Settings, *, defer_memory: bool = False) -> Services:
        """`defer_memory`: when the store does not exist yet, do not open (create) it before the
        first turn needs it; `kagentbot ask` then reaches the model without importing LanceDB."""
        from kagentbot.config.files import make_data_private
        from kagentbot.memory.startup.deferred import DeferredStore, store_absent
        from kagentbot.tools.catalog import build_registry

        await asyncio.to_thread(make_data_private, settings)  # a no-op once the directory is private

        closers: list[Callable[[], Awaitable[None]]] = []
        if defer_memory and store_absent(settings):
            opening: asyncio.Future[Memory] = asyncio.get_running_loop().create_future()
            opening.set_result(DeferredStore(settings))
        elif settings.cluster.enabled:  # replicas: probe the shared store, lock documents in Redis
            opening = asyncio.ensure_future(_open_shared_memory(settings, closers))
        else:
            from kagentbot.memory.store import MemoryStore

            # Opening the store (importing LanceDB, ~1 s) runs in a thread while the rest is built.
            opening = asyncio.ensure_future(MemoryStore.open(settings))
        shared = None
        try:
            tools = build_registry(settings)
            llm = metered(make_client(settings.llm, slot_gate(settings)))
            shared = await replicas.open_shared(settings)
            personas = await PersonaStore.open(settings, replicas.persona_files(shared))
            memory = await opening
        except BaseException:
            opening.cancel()
            if shared is not None:
                await shared.close()
            raise
        return cls(settings=settings, llm=llm, tools=tools, memory=memory, personas=personas,
                   _memory_closers=closers, shared=shared)

    async def persona_for(self, message: IncomingMessage) -> Persona:
        """The persona for a turn: the user's choice, else the chat's, else the default."""
        return await self.personas.persona_for(message)

    def sharing(self) -> ShareBook:
        """Who allowed their private memory in which shared chat (`/kb share`)."""
        if self._sharing is None:
            self._sharing = replicas.share_book(self.settings, self.shared)
        return self._sharing

    async def audience_for(self, message: IncomingMessage) -> Audience:
        """What a turn for `message` may read: in a shared chat the asker's private memory only
        where they turned sharing on for that chat."""
        audience = message.audience
        if not audience.is_shared or not await self.sharing().is_on(audience.user_scope, audience.chat_scope):
            return audience
        return replace(audience, share_private=True)

    async def private_left_out(self, audience: Audience, question: str) -> bool:
        """Whether the asker's private documents, which a shared chat does not read, match the question."""
        if audience.private_readable:
            return False
        try:
            return await self.memory.private_matches(audience.user_scope, question)
        except Exception:  # a hint is not worth a failed turn
            log.exception("could not check for private notes left out")
            return False

    async def move_chat(self, platform: str, old_id: str, new_id: str) -> None:
        """The platform gave a chat a new id (Telegram: a group upgraded to a supergroup). What
        was kept under the old one follows: the chat's knowledge, conversation and task history,
        its persona and its scheduled questions."""
        from kagentbot.persona.store import chat_key

        old, new = str(Scope.chat(platform, old_id)), str(Scope.chat(platform, new_id))
        rows = await self.memory.move_scope(old, new)
        persona = await self.personas.move_chat(chat_key(platform, old_id), chat_key(platform, new_id))
        await self.sharing().move_chat(old, new)
        if self.scheduler is not None:
            jobs = self.scheduler.move_chat(platform, old_id, new_id)
        else:
            book = replicas.schedule_book(self.settings, self.shared)
            jobs = await asyncio.to_thread(book.move_chat, platform, old_id, new_id)
        log.info("%s chat %s is now %s: moved %d memory rows, %d scheduled questions, persona %s",
                 platform, old_id, new_id, rows, jobs, persona or "none")

    @property
    def slots(self) -> SlotGate:
        """The LLM server's slots: `in_use()` and `queue_length()` for metrics."""
        return self.llm.slots

    def http(self) -> Any:
        """The HTTP session network tools share (opened lazily: most turns need none)."""
        if self._http is None:
            import aiohttp

            self._http = aiohttp.ClientSession(headers={"User-Agent": self.settings.tools.user_agent})
        return self._http

    def agent(self) -> Agent:
        return Agent(self.settings, self.llm, self.tools, self.memory, http=self.http,
                     knowledge=self.memory.for_audience, services=self, contexts=self.contexts)

    async def close(self) -> None:
        await self.memory.flush()  # turns still being written in the background
        await self.contexts.close()
        await self.llm.close()
        await self.slots.close()  # a gate shared by replicas gives back its slots
        self.memory.close()
        if self._http is not None:
            await self._http.close()
        for closing in self._memory_closers:
            await closing()
        if self.shared is not None:
            await self.shared.close()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _open_shared_memory(settings: Settings, closers: list[Callable[[], Awaitable[None]]]) -> Memory:
    from kagentbot.cluster.shared_memory import open_shared_memory

    store, closing = await open_shared_memory(settings)
    closers.append(closing)
    return store
