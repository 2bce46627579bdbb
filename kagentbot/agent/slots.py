"""The LLM server's slots (`llm.max_connections`), shared fairly: every model call asks the gate
for a slot on behalf of a (user, chat, kind) and gives it back when done.

Who gets the next free slot: interactive turns before scheduled ones (unless a scheduled call
has waited `limits.scheduled_patience` seconds: then it goes first, so a busy bot delays its
schedules but never starves them); within each kind, users in fair order (start-time fair
queueing: users with calls backed up take turns, and a user with no call waiting or under way
goes before them, having had no share lately), each user's own calls first come first served; and
while other chats wait, a chat already holding its share
(`limits.chat_share` of the slots) is passed over. No slot stays idle while anyone waits (the
share yields when nobody else wants a slot).

The gate is one small interface (`SlotGate`) so that a deployment running several bot
processes can swap this in-process one for a shared one; metrics read `in_use()` and
`queue_length()`."""

from __future__ import annotations

import asyncio
import heapq
import itertools
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
_REMEMBERED = 4096  # users whose next tag is kept after their line empties, before pruning


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

    async def close(self) -> None:
        """Give back what this process holds (a gate shared by replicas); in one process, nothing."""


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


@dataclass
class _Line:
    """One user's waiting calls of one kind, and where the user stands: `tag` is the virtual
    time its head call starts at (one unit per call served), `seq` breaks ties: a user who came
    idle first, then first come."""

    waiters: deque[_Waiter]
    tag: int
    seq: tuple[int, int]


class FairGate:
    """The in-process gate: one event loop, no locks needed. Fair order is start-time fair
    queueing by user: each kind keeps a virtual clock that stands at the tag of the last call
    served; a user's next call is tagged one past its previous one, or at the clock when the
    user has no call under way (is idle). The lowest tag goes first, an idle user first among
    equal tags: backed-up users take turns, and a user who just began asking goes before users
    whose calls pile up. A user asking one call at a time thus gets at most one slot."""

    def __init__(self, capacity: int, chat_share: float = 1.0, scheduled_patience: float = math.inf) -> None:
        self.capacity = capacity
        self.scheduled_patience = scheduled_patience
        self.chat_cap = max(1, math.ceil(capacity * chat_share))
        self._held = 0
        self._held_by_chat: Counter[str] = Counter()
        self._lines: dict[Kind, dict[str, _Line]] = {kind: {} for kind in _KINDS}
        self._order: dict[Kind, list[tuple[int, tuple[int, int], str]]] = {kind: [] for kind in _KINDS}  # heap of (tag, seq, user)
        self._clock: dict[Kind, int] = {kind: 0 for kind in _KINDS}
        self._next_tag: dict[tuple[Kind, str], int] = {}  # users with calls in flight, none waiting: their next tag at least
        self._in_flight: Counter[tuple[Kind, str]] = Counter()
        self._seq = itertools.count()
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

    async def close(self) -> None:
        """Nothing to give back: the slots live and end with this process."""

    async def acquire(self, claim: Claim) -> None:
        if self._held < self.capacity and not self._waiting:
            self._grant(claim)
            self._served_at_once(claim)
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
        key = (claim.kind, claim.user)
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]
            self._next_tag.pop(key, None)  # idle now: its next call starts at the clock
        self._held_by_chat[claim.chat] -= 1
        if self._held_by_chat[claim.chat] <= 0:
            del self._held_by_chat[claim.chat]
        self._dispatch()

    async def position(self, turn: str) -> int | None:
        waiter = self._by_turn.get(turn)
        if waiter is None:
            return None
        kind, user = waiter.claim.kind, waiter.claim.user
        lines = self._lines[kind]
        mine = lines[user]
        index = mine.waiters.index(waiter)
        ahead = index + sum(len(line.waiters) for k in _KINDS[: _KINDS.index(kind)] for line in self._lines[k].values())
        tag, seq = mine.tag + index, mine.seq  # the virtual time this call starts at, and its tie-break
        for line in lines.values():  # each other user's calls tagged before mine (at a tie, who came first)
            before = tag - line.tag + (line.seq < seq)
            if before > 0 and line is not mine:
                ahead += min(len(line.waiters), before)
        return ahead

    # -- internals -----------------------------------------------------------------------------
    def _grant(self, claim: Claim) -> None:
        self._held += 1
        self._in_flight[(claim.kind, claim.user)] += 1
        self._held_by_chat[claim.chat] += 1
        if claim.started is not None:
            claim.started.set()

    def _starting_tag(self, kind: Kind, user: str) -> int:
        """Where a user with nothing waiting starts: one past its last call while that is in
        flight, else at the clock (remembered tags are dropped when the user's calls end)."""
        return max(self._clock[kind], self._next_tag.pop((kind, user), 0))

    def _served_at_once(self, claim: Claim) -> None:
        """A call that found a slot free and nobody waiting still counts: the clock moves to its
        tag, and the user's next call is tagged one past it."""
        kind, user = claim.kind, claim.user
        tag = self._starting_tag(kind, user)
        self._clock[kind] = tag
        self._remember(kind, user, tag + 1)

    def _remember(self, kind: Kind, user: str, tag: int) -> None:
        if tag <= self._clock[kind]:
            self._next_tag.pop((kind, user), None)  # no better than starting at the clock
            return
        self._next_tag[(kind, user)] = tag
        if len(self._next_tag) > _REMEMBERED:  # forget users the clocks have passed
            self._next_tag = {key: t for key, t in self._next_tag.items() if t > self._clock[key[0]]}

    def _enqueue(self, waiter: _Waiter) -> None:
        kind, user = waiter.claim.kind, waiter.claim.user
        line = self._lines[kind].get(user)
        if line is None:
            idle = (kind, user) not in self._in_flight
            line = self._lines[kind][user] = _Line(deque(), self._starting_tag(kind, user), (not idle, next(self._seq)))
            heapq.heappush(self._order[kind], (line.tag, line.seq, user))
        line.waiters.append(waiter)
        self._waiting += 1
        if waiter.claim.turn:
            self._by_turn.setdefault(waiter.claim.turn, waiter)

    def _remove(self, waiter: _Waiter) -> None:
        """A cancelled wait leaves its line; a user whose line empties keeps its place (the heap
        entry goes stale and is dropped when met)."""
        kind, user = waiter.claim.kind, waiter.claim.user
        line = self._lines[kind][user]
        line.waiters.remove(waiter)
        self._forget(waiter)
        if not line.waiters:
            del self._lines[kind][user]
            if (kind, user) in self._in_flight:
                self._remember(kind, user, line.tag)

    def _forget(self, waiter: _Waiter) -> None:
        waiter.queued = False
        self._waiting -= 1
        if self._by_turn.get(waiter.claim.turn) is waiter:
            del self._by_turn[waiter.claim.turn]

    def _dispatch(self) -> None:
        while self._held < self.capacity and self._waiting:
            waiter = self._next()
            if waiter.granted.done():  # its task was cancelled and has not run since
                continue
            self._grant(waiter.claim)
            waiter.granted.set_result(None)

    def _next(self) -> _Waiter:
        """The head of the line with the lowest tag whose chat is under its share; when every
        waiting chat is at its share, the lowest anyway (no slot stays idle)."""
        kinds = ("scheduled", "interactive") if self._scheduled_overdue() else _KINDS
        for within_share in (True, False):
            for kind in kinds:
                user = self._first(kind, within_share)
                if user is not None:
                    return self._pop(kind, user)
        raise RuntimeError("no waiter to serve")  # unreachable: called only while some wait

    def _first(self, kind: Kind, within_share: bool) -> str | None:
        """The user first in fair order (passing over chats at their share if `within_share`),
        taken off the heap; stale entries are dropped, passed-over ones put back."""
        order, lines, passed = self._order[kind], self._lines[kind], []
        found = None
        while order:
            tag, seq, user = heapq.heappop(order)
            line = lines.get(user)
            if line is None or line.seq != seq:
                continue  # stale: the line emptied, or was re-tagged since
            if within_share and self._held_by_chat[line.waiters[0].claim.chat] >= self.chat_cap:
                passed.append((tag, seq, user))
                continue
            found = user
            break
        for entry in passed:
            heapq.heappush(order, entry)
        return found

    def _scheduled_overdue(self) -> bool:
        heads = (line.waiters[0] for line in self._lines["scheduled"].values())
        oldest = min((waiter.since for waiter in heads), default=math.inf)
        return time.monotonic() - oldest >= self.scheduled_patience

    def _pop(self, kind: Kind, user: str) -> _Waiter:
        """Serve the head of `user`'s line: the clock moves to its tag, the rest of the line
        is tagged one later and goes back in order."""
        line = self._lines[kind][user]
        waiter = line.waiters.popleft()
        self._forget(waiter)
        served = line.tag
        self._clock[kind] = max(self._clock[kind], served)
        if line.waiters:
            line.tag, line.seq = served + 1, (1, next(self._seq))
            heapq.heappush(self._order[kind], (line.tag, line.seq, user))
        else:
            del self._lines[kind][user]
            self._remember(kind, user, served + 1)
        return waiter
