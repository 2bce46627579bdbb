"""How far behind the slowest replica is: the reorder window's measure.

Two messages of one conversation can reach two replicas; the later one, on an idle replica, can
be stored before the earlier one, on a busy replica, and start first. How long an event waits
before it is stored is, on our side, mostly the receiving replica's event loop: a frame that
arrived waits for the loop to come round to it. Each replica measures its own loop's lag (how
late a short timer fires), keeps the 90th percentile of the last seconds, and shares it in one
Redis hash;
a conversation's first turn waits the worst lag of any other live replica on top of the
platform's reorder window. (Its own lag does not count: two events that reach one replica are
taken in the order they came.) Idle replicas lag a millisecond or so, so the wait costs nothing then; a busy
cluster waits longer, while its turns wait for a slot anyway.

Reads cost no Redis call: the same loop that publishes this replica's figure reads the others'."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kagentbot.cluster.redis import Keys, cancel_requested

log = logging.getLogger(__name__)
TICK = 0.05  # seconds between two lag samples
WINDOW = 2.0  # seconds of samples a replica's figure covers
SHARE_EVERY = 0.25  # seconds between two exchanges with Redis
FRESH = 3.0  # seconds after which a replica's figure no longer counts (a dead replica's)
MOST = 2.0  # seconds: the wait never exceeds this, whatever a replica reports
# An idle replica's timer fires up to a few ms late (epoll waits in whole milliseconds; a shared
# core): lag up to this is within the reorder window's own allowance, and only the rest is added
IDLE = 0.005


class ClusterLag:
    """Lifecycle: `start()`; the queue cancels its `task()` with its own. `worst` is the largest
    recent event-loop lag of any other live replica, in seconds (0 until Redis has answered)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, replica: str) -> None:
        self.client = client
        self.key = keys("lag")
        self.replica = replica
        self._samples: deque[float] = deque(maxlen=int(WINDOW / TICK))
        self._others = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def mine(self) -> float:
        """The 90th percentile of the last seconds' samples: a sustained lag (a busy replica),
        not one garbage collection or one slow callback, which the reorder window absorbs."""
        if not self._samples:
            return 0.0
        ordered = sorted(self._samples)
        return ordered[int(len(ordered) * 0.9)]

    @property
    def worst(self) -> float:
        return min(self._others, MOST)

    @property
    def excess(self) -> float:
        """What a first turn waits on top of the reorder window: the worst lag past an idle one's."""
        return max(self.worst - IDLE, 0.0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="cluster: loop lag")

    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        shared = loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK)
            now = loop.time()
            self._samples.append(max(now - before - TICK, 0.0))
            if now - shared >= SHARE_EVERY:
                shared = now
                await self._share()

    async def _share(self) -> None:
        """Publish this replica's figure and read every replica's, in one round trip."""
        stamp = time.time()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(self.key, self.replica, f"{self.mine:.4f} {stamp:.3f}")
                pipe.expire(self.key, int(FRESH * 4))
                pipe.hgetall(self.key)
                *_, figures = await pipe.execute()
        except (RedisError, OSError) as exc:
            if cancel_requested():
                raise asyncio.CancelledError from exc
            self._others = 0.0  # the queue's own calls report Redis' absence
            return
        self._others = max((lag for replica, value in figures.items() if replica != self.replica
                            for lag, at in [_parse(value)] if stamp - at <= FRESH), default=0.0)


def _parse(value: str) -> tuple[float, float]:
    try:
        lag, at = value.split()
        return float(lag), float(at)
    except ValueError:
        return 0.0, 0.0
