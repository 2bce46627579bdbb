"""One leader among the replicas: a lock in Redis (set if absent, with a lease), renewed by the
leader about three times a lease and released when it stops. Only the leader runs what must
run once (the scheduler, memory upkeep, Discord's command sync, Telegram polling). A leader
that cannot renew (Redis down, or the lock taken over after a stall) steps down at once; another
replica takes over within the lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kagentbot.cluster.redis import cancel_requested, stopped

log = logging.getLogger(__name__)

# Extend or delete the lock only while it still holds this replica's name: a leader that
# stalled past its lease must never extend, or free, the lock its successor now holds.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

Duty = Callable[[], Awaitable[None]]


class LeaderLock:
    """The lock itself: `acquire`, `extend`, `release`; each says whether it held."""

    def __init__(self, client: aioredis.Redis, key: str, name: str, lease_seconds: float) -> None:
        self.client, self.key, self.name = client, key, name
        # the lock's value: the replica's name for people, and a token of its own, so that two
        # replicas given the same name by mistake still never both lead
        self.value = f"{name} {uuid.uuid4().hex[:12]}"
        self.lease_ms = int(lease_seconds * 1000)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self.client.set(self.key, self.value, nx=True, px=self.lease_ms))

    async def extend(self) -> bool:
        return bool(await self._extend(keys=[self.key], args=[self.value, self.lease_ms]))

    async def release(self) -> bool:
        return bool(await self._release(keys=[self.key], args=[self.value]))

    async def holder(self) -> str | None:
        """The name of the replica that leads now, if any."""
        value = await self.client.get(self.key)
        return None if value is None else str(value).rsplit(" ", 1)[0]


class Leadership:
    """Runs the election in a tracked task: every third of a lease the leader extends its lock
    and a follower tries to take it. `on_lead` runs when this replica becomes the leader,
    `on_follow` when it stops being one (lost lock, Redis down, or `stop`)."""

    def __init__(self, lock: LeaderLock, lease_seconds: float, on_lead: Duty, on_follow: Duty) -> None:
        self.lock = lock
        self.every = lease_seconds / 3
        self._on_lead, self._on_follow = on_lead, on_follow
        self.leading = False
        self.changed = asyncio.Event()  # set at each change of role (tests and /readyz wait on it)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._round()  # a lone replica leads from its first moment
        self._task = asyncio.create_task(self._run(), name=f"leader election ({self.lock.name})")

    async def stop(self) -> None:
        """Stop the election, hand the leader's duties back and free the lock for the next one."""
        if self._task is not None:
            self._task.cancel()
            await stopped([self._task], "the leader election")
            self._task = None
        if self.leading:
            await self._step_down("stopping")
            with contextlib.suppress(RedisError, OSError):
                await self.lock.release()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self._round()

    async def _round(self) -> None:
        try:
            held = await (self.lock.extend() if self.leading else self.lock.acquire())
        except (RedisError, OSError) as exc:
            if cancel_requested():
                raise asyncio.CancelledError from exc
            if self.leading:
                await self._step_down(f"Redis does not answer ({exc})")
            else:
                log.warning("replica %s: cannot reach Redis to elect a leader (%s)", self.lock.name, exc)
            return
        if held and not self.leading:
            await self._take_over()
        elif not held and self.leading:
            await self._step_down("the lock passed to another replica")

    async def _take_over(self) -> None:
        self.leading = True
        log.warning("replica %s is the leader now: it runs the scheduler, upkeep and platform duties", self.lock.name)
        self.changed.set()
        if not await self._duty(self._on_lead, "taking up"):
            # a leader that runs none of the duties would hold them from everyone: give the lock
            # back, and stand again at a later round (or another replica takes it)
            await self._step_down("its duties did not start")
            with contextlib.suppress(RedisError, OSError):
                await self.lock.release()

    async def _step_down(self, why: str) -> None:
        self.leading = False
        log.warning("replica %s steps down as leader: %s", self.lock.name, why)
        self.changed.set()
        await self._duty(self._on_follow, "handing back")

    async def _duty(self, duty: Duty, doing: str) -> bool:
        try:
            await duty()
        except Exception:  # the election must go on: the next round tries again
            log.exception("replica %s: %s the leader's duties failed", self.lock.name, doing)
            return False
        return True
