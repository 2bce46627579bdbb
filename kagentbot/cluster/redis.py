"""The connection to the shared Redis and the names of the keys kept there."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kagentbot.config.settings import ClusterSettings

log = logging.getLogger(__name__)


class ClusterUnavailable(Exception):
    """The shared Redis could not be reached or refused an operation: nothing was done, and the
    platform's event must not be acknowledged (it will be delivered again)."""


def connect(settings: ClusterSettings) -> aioredis.Redis:
    """A client for `cluster.redis_url`: a pool of at most `cluster.redis_connections`
    connections, opened on first use. A burst of commands waits for a free connection (redis-py's
    default pool refuses the 101st at once: a burst of 240 Slack events failed that way, each
    left unacknowledged). Operations fail within `cluster.connect_timeout` when Redis is down or
    no connection comes free, rather than hang."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_connections,
        timeout=settings.connect_timeout,
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=settings.connect_timeout,
        health_check_interval=30,
        decode_responses=True,
    )
    return aioredis.Redis.from_pool(pool)


async def ping(client: aioredis.Redis) -> None:
    """Raises ClusterUnavailable, saying why, when Redis does not answer."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise ClusterUnavailable(f"Redis does not answer: {exc}") from exc


def cancel_requested() -> bool:
    """Whether the running task was asked to stop. redis-py can turn a cancellation that reaches
    it mid-command into its own timeout or connection error: a loop that carries on after those
    errors asks this first, or a cancelled task would go on for ever (and its stop wait for it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stopped(tasks: list[asyncio.Task], what: str, seconds: float = 5.0) -> None:
    """Wait for cancelled background `tasks` to end, at most `seconds`: a stop never hangs on
    one that would not end (it is logged, and left to the event loop's close)."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    if pending:
        log.warning("%s: %d task(s) did not stop within %.0f s", what, len(pending), seconds)


async def forever(work: Callable[[], Awaitable[None]], what: str, pause: float = 1.0) -> None:
    """`work` again `pause` seconds after a failure (Redis away a moment), until cancelled."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if cancel_requested():  # a cancellation redis-py turned into its own error
                raise asyncio.CancelledError from exc
            log.warning("%s failed (%s); trying again", what, exc)
            await asyncio.sleep(pause)


async def listen(client: aioredis.Redis, channel: str, poll: float, handle: Callable[[str], None]) -> None:
    """Each message published on `channel` handed to `handle`, until cancelled (run it under
    `forever`: a lost connection raises, and the subscription is made again)."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
        while True:
            message = await pubsub.get_message(timeout=poll)
            if message is not None:
                handle(str(message["data"]))
    finally:
        await pubsub.aclose()


def replica_name(settings: ClusterSettings) -> str:
    """This replica's name in leases and logs: `cluster.replica_id`, else host name and pid."""
    return settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Keys:
    """Every key the bot writes, under one prefix, so several bots can share a Redis."""

    prefix: str

    def __call__(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def seen(self, platform: str, event_id: str) -> str:
        """A platform event already taken (dedupe of redeliveries)."""
        return self("seen", platform, event_id)

    def leader(self) -> str:
        return self("leader")

    def fired(self, job_id: str, fire_time: str) -> str:
        """One scheduled fire, claimed once across replicas and leader handovers."""
        return self("fired", job_id, fire_time)

    def conversation(self, key: str) -> str:
        """A conversation's waiting events, in platform order."""
        return self("conversation", key)

    def lease(self, key: str) -> str:
        """Which replica works through a conversation, until when."""
        return self("lease", key)
