"""The LLM server's slots shared by every replica (`cluster.enabled`): the same `SlotGate` as the
in-process `FairGate`, with its waiters and holders kept in Redis, so the cap
(`llm.max_connections`) counts every replica's calls and the next free slot goes by the same
rules across all of them: interactive before scheduled (until a scheduled call has waited
`limits.scheduled_patience`), users in turn, a chat past its share (`limits.chat_share`) passed
over while other chats wait.

Each holder and waiter has a lease (`cluster.lease_seconds`), renewed while its replica lives:
the slots of a replica that dies come back, and its waiters leave the line, when their leases
run out. Every change is one Lua script (kagentbot.cluster.slots_lua); a grant is published to
the waiter's replica, which also polls, so a lost message costs a moment, not a slot.

`in_use()` and `queue_length()` count this replica's calls: /metrics of each replica, summed by
Prometheus, give the whole."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kagentbot.agent.slots import Claim
from kagentbot.cluster.redis import ClusterUnavailable, Keys, connect, forever, listen, replica_name, stopped
from kagentbot.cluster.slots_lua import ACQUIRE, LEAVE, POSITION, TICK
from kagentbot.config.settings import Settings

log = logging.getLogger(__name__)
MAX_POLL = 0.5  # seconds between two looks at Redis at most, should a grant's message be lost
HEARTBEATS = 3  # polls a replica may miss before the others take it for dead (its waiters skipped)
MIN_HEARTBEAT = 1.0  # seconds, however often it polls: a loop held up that long is not dead
ASKING = 10  # calls asking for a slot at once at most, fewer than the pool's connections: releases never wait behind a burst of asks


@dataclass(frozen=True)
class GateRules:
    """The numbers every replica's gate must agree on."""

    capacity: int
    chat_share: float = 1.0
    scheduled_patience: float = math.inf  # seconds
    lease_seconds: float = 15.0

    @property
    def chat_cap(self) -> int:
        return max(1, math.ceil(self.capacity * self.chat_share))

    def argv(self, poll: float) -> list[int]:
        """ARGV[1..5] of every script: capacity, chat cap, patience, lease and heartbeat in ms
        (a replica that polls every `poll` seconds and has not for HEARTBEATS polls, and for at
        least MIN_HEARTBEAT, is dead; never longer than the lease)."""
        patience = 10**15 if math.isinf(self.scheduled_patience) else round(self.scheduled_patience * 1000)
        heartbeat = min(max(poll * HEARTBEATS, MIN_HEARTBEAT), self.lease_seconds)
        lease = round(self.lease_seconds * 1000)
        return [self.capacity, self.chat_cap, patience, lease, round(heartbeat * 1000)]


class RedisSlotGate:
    """`SlotGate` across replicas. Opened with `from_settings` (or a client of one's own for
    tests and benches); `close()` gives back what this replica still holds."""

    def __init__(self, client: aioredis.Redis, keys: Keys, replica: str, rules: GateRules,
                 poll: float | None = None, owns_client: bool = False) -> None:
        self.capacity = rules.capacity
        self.rules = rules
        self.poll = poll or min(rules.lease_seconds / 4, MAX_POLL)
        self._client, self._owns_client = client, owns_client
        self._base = keys("{slots}")
        self._channel = f"{replica}-{uuid.uuid4().hex[:8]}"  # unique even if two share a name
        self._scripts = {name: client.register_script(lua) for name, lua in
                         (("acquire", ACQUIRE), ("leave", LEAVE), ("tick", TICK), ("position", POSITION))}
        self._waiting: dict[str, asyncio.Future[bool]] = {}  # True: granted; False: Redis forgot it
        self._queued: set[str] = set()  # waiters Redis has in line (renewed from then on)
        self._by_turn: dict[str, str] = {}
        self._held: dict[Claim, list[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        pool = client.connection_pool.max_connections
        self._asking = asyncio.Semaphore(max(1, min(ASKING, pool - 2)))

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisSlotGate:
        """Sized and shared like `FairGate.from_settings`, on `cluster.redis_url`."""
        cluster, limits = settings.cluster, settings.limits
        rules = GateRules(settings.llm.max_connections, limits.chat_share, limits.scheduled_patience,
                          cluster.lease_seconds)
        return cls(connect(cluster), Keys(cluster.key_prefix), replica_name(cluster), rules, owns_client=True)

    def in_use(self) -> int:
        return sum(len(ids) for ids in self._held.values())

    def queue_length(self) -> int:
        return len(self._queued)  # in line in Redis (not those still being put there)

    async def acquire(self, claim: Claim) -> None:
        self._start()
        waiter = uuid.uuid4().hex
        if claim.turn:
            self._by_turn.setdefault(claim.turn, waiter)
        try:
            while not await self._stand_in_line(claim, waiter):
                log.warning("a call of %s lost its place in line for an LLM slot (Redis forgot it: restarted, or "
                            "this replica stalled past its lease); it stands in line again", claim.user or "nobody")
        except BaseException:
            await asyncio.shield(self._settle(self._leave(waiter)))  # out of the line, or its slot given back
            raise
        finally:
            self._waiting.pop(waiter, None)
            self._queued.discard(waiter)
            if self._by_turn.get(claim.turn) == waiter:
                del self._by_turn[claim.turn]
        self._held.setdefault(claim, []).append(waiter)
        if claim.started is not None:
            claim.started.set()

    async def _stand_in_line(self, claim: Claim, waiter: str) -> bool:
        """True once granted; False when Redis no longer knows the waiter."""
        granted = self._waiting[waiter] = asyncio.get_running_loop().create_future()
        async with self._asking:
            queued = not await self._call("acquire", *self._argv(claim, waiter))
        if not queued:
            return True
        self._queued.add(waiter)
        try:
            return await granted
        finally:
            self._queued.discard(waiter)

    async def release(self, claim: Claim) -> None:
        held = self._held.get(claim)
        if not held:
            return
        holder = held.pop()
        if not held:
            del self._held[claim]
        await asyncio.shield(self._settle(self._leave(holder)))

    async def position(self, turn: str) -> int | None:
        waiter = self._by_turn.get(turn)
        if waiter is None:
            return None
        ahead = int(await self._call("position", waiter, base_argv=False))
        return None if ahead < 0 else ahead

    async def close(self) -> None:
        """Stop listening and renewing, and give back this replica's slots and places in line."""
        for task in self._background:
            task.cancel()
        await stopped(self._background, "the LLM slot gate")
        self._background.clear()
        ids = [*self._queued, *(holder for held in self._held.values() for holder in held)]
        for future in self._waiting.values():
            future.cancel()
        self._held.clear()
        await asyncio.gather(*(self._leave(i) for i in ids), *self._tasks, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    # -- internals -----------------------------------------------------------------------------
    def _argv(self, claim: Claim, waiter: str) -> list[str]:
        return [waiter, claim.kind, claim.user, claim.chat, claim.turn, self._channel]

    async def _call(self, script: str, *argv: str | int, base_argv: bool = True) -> Any:
        args: list[str | int] = [*self.rules.argv(self.poll), *argv] if base_argv else list(argv)
        try:
            return await self._scripts[script](keys=[self._base], args=args)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"the shared LLM slots in Redis: {exc}") from exc

    async def _leave(self, waiter_or_holder: str) -> None:
        try:
            for granted in await self._call("leave", waiter_or_holder, self._channel):
                self._granted(str(granted))
        except ClusterUnavailable as exc:  # its lease runs out instead
            log.warning("could not give back LLM slot %s now (%s); it frees itself within the lease", waiter_or_holder, exc)

    def _settle(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` to its end even if the caller is cancelled meanwhile (a tracked task)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _granted(self, waiter: str, lost: bool = False) -> None:
        future = self._waiting.get(waiter)
        if future is not None and not future.done():
            future.set_result(not lost)

    def _start(self) -> None:
        if not self._background:
            self._background = [asyncio.create_task(forever(self._listen, "listening for LLM slots"), name="slot grants"),
                                asyncio.create_task(forever(self._renew, "renewing LLM slot leases"), name="slot leases")]

    async def _listen(self) -> None:
        """Grants published for this replica's waiters."""
        await listen(self._client, f"{self._base}:granted:{self._channel}", self.poll, self._granted)

    async def _renew(self) -> None:
        """Keep this replica's leases, clear the dead, and pick up grants whose message was lost."""
        while True:
            await asyncio.sleep(self.poll)
            ids = [*self._queued, *(holder for held in self._held.values() for holder in held)]
            states = await self._call("tick", self._channel, *ids)
            for member, state in zip(ids, states, strict=True):
                if state == 1:
                    self._granted(member)
                elif state < 0 and member in self._queued:
                    self._granted(member, lost=True)
                elif state < 0 and any(member in held for held in self._held.values()):
                    log.warning("LLM slot %s outlived its lease in Redis (this replica stalled?)", member)

