"""The LLM server's slots (`llm.max_connections`), shared fairly: every model call asks the gate
for a slot on behalf of a (user, chat, kind) and gives it back when done.

Who gets the next free slot: interactive turns before scheduled ones (unless a scheduled call
has waited `limits.scheduled_patience` seconds: then it goes first, so a busy bot delays its
schedules but never starves them); within each kind, users in turn (round-robin), each user's
own calls first come first served; and while other chats wait, a chat already holding its share
(`limits.chat_share` of the slots) is passed over. No slot stays idle while anyone waits (the
share yields when nobody else wants a slot).

The gate is one small interface (`SlotGate`) so that a deployment running several bot
processes can swap this in-process one for a shared one; metrics read `in_use()` and
`queue_length()`."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal, Protocol

from kagentbot.config.settings import Settings

Kind = Literal["interactive", "scheduled"]
_KINDS: tuple[Kind, ...] = ("interactive", "scheduled")  # served in this order


@dataclass(frozen=True)
class Claim:
    """On whose behalf a model call runs. `turn` names the turn (for `position`); `started` is
    set when the turn's first call gets a slot, so the bot knows its wait is over."""

    user: str = ""  # platform-qualified: "slack:U123"
    chat: str = ""  # platform-qualified chat; "" for a direct message or the terminal
    kind: Kind = "interactive"
    turn: str = ""
    started: asyncio.Event | None = field(default=None, compare=False, repr=False)


NOBODY = Claim()  # calls made outside any turn: `doctor`, scripts

# The claim of the turn running in this task: set by the bot around a turn, read by the LLM
# clients at each call, so the agent loop between them needs no knowledge of users or chats.
current_claim: ContextVar[Claim] = ContextVar("kagentbot_current_claim", default=NOBODY)


class SlotGate(Protocol):
    capacity: int

    async def acquire(self, claim: Claim) -> None:
        """Wait for a slot for `claim` (cancellable: a cancelled wait takes no slot)."""

    async def release(self, claim: Claim) -> None:
        """Give back the slot `claim` held (a shared gate tells the other replicas)."""

    async def position(self, turn: str) -> int | None:
        """About how many calls will get a slot before this turn's waiting call; None when the
        turn is not waiting. A shared gate counts the waiters of every replica."""

    def in_use(self) -> int:
        """Slots held through this gate (a shared gate: by this replica's calls)."""

    def queue_length(self) -> int:
        """Calls waiting at this gate (a shared gate: this replica's)."""


@asynccontextmanager
async def holding(gate: SlotGate, claim: Claim) -> AsyncIterator[None]:
    """`async with holding(gate, claim):` one model call's slot."""
    await gate.acquire(claim)
    try:
        yield
    finally:
        await gate.release(claim)


@dataclass
class _Waiter:
    claim: Claim
    granted: asyncio.Future
    queued: bool = True
    since: float = field(default_factory=time.monotonic)


class FairGate:
    """The in-process gate: one event loop, no locks needed."""

    def __init__(self, capacity: int, chat_share: float = 1.0, scheduled_patience: float = math.inf) -> None:
        self.capacity = capacity
        self.scheduled_patience = scheduled_patience
        self.chat_cap = max(1, math.ceil(capacity * chat_share))
        self._held = 0
        self._held_by_chat: Counter[str] = Counter()
        self._queues: dict[tuple[Kind, str], deque[_Waiter]] = {}
        self._rings: dict[Kind, deque[str]] = {kind: deque() for kind in _KINDS}  # users waiting, in turn
        self._by_turn: dict[str, _Waiter] = {}
        self._waiting = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> FairGate:
        """Sized by `llm.max_connections`, shared by `limits`."""
        limits = settings.limits
        return cls(settings.llm.max_connections, limits.chat_share, limits.scheduled_patience)

    def in_use(self) -> int:
        return self._held

    def queue_length(self) -> int:
        return self._waiting

    async def acquire(self, claim: Claim) -> None:
        if self._held < self.capacity and not self._waiting:
            self._grant(claim)
            return
        waiter = _Waiter(claim, asyncio.get_running_loop().create_future())
        self._enqueue(waiter)
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter.queued:
                self._remove(waiter)
            elif not waiter.granted.cancelled():
                self._give_back(claim)  # granted in the same tick it was cancelled
            raise

    async def release(self, claim: Claim) -> None:
        self._give_back(claim)

    def _give_back(self, claim: Claim) -> None:
        self._held -= 1
        self._held_by_chat[claim.chat] -= 1
        if self._held_by_chat[claim.chat] <= 0:
            del self._held_by_chat[claim.chat]
        self._dispatch()

    async def position(self, turn: str) -> int | None:
        waiter = self._by_turn.get(turn)
        if waiter is None:
            return None
        kind, user = waiter.claim.kind, waiter.claim.user
        mine = self._queues[(kind, user)]
        index = mine.index(waiter)
        ahead = index + sum(len(q) for (k, _), q in self._queues.items() if _KINDS.index(k) < _KINDS.index(kind))
        ring = self._rings[kind]
        me = ring.index(user)
        for place, other in enumerate(ring):
            if other != user:  # users before me in the ring are served once more in my round
                ahead += min(len(self._queues[(kind, other)]), index + (place < me))
        return ahead

    # -- internals -----------------------------------------------------------------------------
    def _grant(self, claim: Claim) -> None:
        self._held += 1
        self._held_by_chat[claim.chat] += 1
        if claim.started is not None:
            claim.started.set()

    def _enqueue(self, waiter: _Waiter) -> None:
        key = (waiter.claim.kind, waiter.claim.user)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._rings[waiter.claim.kind].append(waiter.claim.user)
        queue.append(waiter)
        self._waiting += 1
        if waiter.claim.turn:
            self._by_turn.setdefault(waiter.claim.turn, waiter)

    def _remove(self, waiter: _Waiter) -> None:
        key = (waiter.claim.kind, waiter.claim.user)
        queue = self._queues[key]
        queue.remove(waiter)
        self._forget(waiter, key, queue)

    def _forget(self, waiter: _Waiter, key: tuple[Kind, str], queue: deque[_Waiter]) -> None:
        waiter.queued = False
        self._waiting -= 1
        if self._by_turn.get(waiter.claim.turn) is waiter:
            del self._by_turn[waiter.claim.turn]
        if not queue:
            del self._queues[key]
            self._rings[key[0]].remove(key[1])

    def _dispatch(self) -> None:
        while self._held < self.capacity and self._waiting:
            waiter = self._next()
            if waiter.granted.done():  # its task was cancelled and has not run since
                continue
            self._grant(waiter.claim)
            waiter.granted.set_result(None)

    def _next(self) -> _Waiter:
        """The head of the first user's queue in turn whose chat is under its share; when every
        waiting chat is at its share, the first in turn anyway (no slot stays idle)."""
        kinds = ("scheduled", "interactive") if self._scheduled_overdue() else _KINDS
        for within_share in (True, False):
            for kind in kinds:
                ring = self._rings[kind]
                for place, user in enumerate(ring):
                    queue = self._queues[(kind, user)]
                    if within_share and self._held_by_chat[queue[0].claim.chat] >= self.chat_cap:
                        continue
                    return self._pop(kind, place, queue)
        raise RuntimeError("no waiter to serve")  # unreachable: called only while some wait

    def _scheduled_overdue(self) -> bool:
        heads = (self._queues[("scheduled", user)][0] for user in self._rings["scheduled"])
        oldest = min((waiter.since for waiter in heads), default=math.inf)
        return time.monotonic() - oldest >= self.scheduled_patience

    def _pop(self, kind: Kind, place: int, queue: deque[_Waiter]) -> _Waiter:
        ring = self._rings[kind]
        user = ring[place]
        del ring[place]
        ring.append(user)  # served: to the back of the round
        waiter = queue.popleft()
        self._forget(waiter, (kind, user), queue)
        return waiter
