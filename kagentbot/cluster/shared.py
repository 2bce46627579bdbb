"""What a single bot keeps in files under its data directory (schedules, persona selections,
custom personas, the /kb share book, the audit logs), kept in Redis when several replicas serve
one bot: the same Document, Folder and Journal interfaces as the files (config/files.py). Reads
go to Redis every time (one round trip on loopback or a LAN), so a change made on one replica
is seen by the next read on any other.

These are synchronous, like the file operations they replace: the stores call them from worker
threads (`asyncio.to_thread`) as they do for files. A redis-py client is safe to share between
threads: each call takes its own connection from the pool."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import redis
import redis.asyncio as aioredis

from kagentbot.cluster.leader import LeaderLock, Leadership, Duty
from kagentbot.cluster.redis import ClusterUnavailable, Keys, connect, ping, replica_name
from kagentbot.config.settings import ClusterSettings

LOCK_WAIT = 10.0  # seconds a writer waits for another replica's change of the same document
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
DAY = 24 * 3600


def connect_threads(settings: ClusterSettings) -> redis.Redis:
    """A blocking client, for the stores' worker threads (`connect` is the event loop's)."""
    return redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=settings.connect_timeout,
                                socket_timeout=settings.connect_timeout, health_check_interval=30, decode_responses=True)


class RedisDocument:
    """A Document at `key`; `key:version` counts its writes (the stamp), `key:lock` is held
    (set if absent, with an expiry, freed only by its holder) across a read-change-write."""

    def __init__(self, client: redis.Redis, key: str, lock_seconds: float) -> None:
        self.client, self.key = client, key
        self.lock_ms = int(lock_seconds * 1000)
        self._release = client.register_script(_RELEASE)

    def read(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else str(value)

    def stamp(self) -> str | None:
        value = self.client.get(f"{self.key}:version")
        return None if value is None else str(value)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        token, lock = uuid.uuid4().hex, f"{self.key}:lock"
        deadline = time.monotonic() + LOCK_WAIT
        while not self.client.set(lock, token, nx=True, px=self.lock_ms):
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"{self.key} stayed locked by another replica for {LOCK_WAIT:.0f} s")
            time.sleep(0.01)
        try:
            yield
        finally:
            self._release(keys=[lock], args=[token])

    def write(self, text: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key, text)
            pipe.incr(f"{self.key}:version")
            pipe.execute()


class RedisFolder:
    """A Folder as one hash: name → text."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key

    def names(self) -> list[str]:
        return sorted(str(name) for name in self.client.hkeys(self.key))

    def read(self, name: str) -> bytes | None:
        value = self.client.hget(self.key, name)
        return None if value is None else str(value).encode("utf-8")

    def write(self, name: str, text: str) -> None:
        self.client.hset(self.key, name, text)

    def remove(self, name: str) -> bool:
        return bool(self.client.hdel(self.key, name))


class RedisJournal:
    """A Journal as a list, appended at its end."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key

    def append(self, line: str) -> None:
        self.client.rpush(self.key, line)

    def last(self, limit: int) -> list[Any]:
        if limit <= 0:
            return []
        return [json.loads(line) for line in self.client.lrange(self.key, -limit, -1) if str(line).strip()]


class SharedState:
    """This replica's handle on the shared Redis: the stores' documents, scheduled fires
    claimed once, and the leader election. Made by `open_shared`; closed by the bot."""

    def __init__(self, settings: ClusterSettings, client: aioredis.Redis, threads: redis.Redis) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.name = replica_name(settings)
        self.client, self.threads = client, threads

    def document(self, name: str) -> RedisDocument:
        return RedisDocument(self.threads, self.keys("doc", name), max(self.settings.lease_seconds, LOCK_WAIT))

    def folder(self, name: str) -> RedisFolder:
        return RedisFolder(self.threads, self.keys("folder", name))

    def journal(self, name: str) -> RedisJournal:
        return RedisJournal(self.threads, self.keys("journal", name))

    async def claim_fire(self, job_id: str, due: datetime) -> bool:
        """Whether this replica runs the fire of `job_id` due at `due`: the first to ask, once."""
        when = due.astimezone(timezone.utc).isoformat()
        return bool(await self.client.set(self.keys.fired(job_id, when), self.name, nx=True, ex=DAY))

    def leadership(self, on_lead: Duty, on_follow: Duty) -> Leadership:
        lock = LeaderLock(self.client, self.keys.leader(), self.name, self.settings.lease_seconds)
        return Leadership(lock, self.settings.lease_seconds, on_lead, on_follow)

    async def close(self) -> None:
        await self.client.aclose()
        self.threads.close()


async def open_shared(settings: ClusterSettings) -> SharedState:
    """Reach the shared Redis, or raise ClusterUnavailable saying why (the bot does not start)."""
    client = connect(settings)
    try:
        await ping(client)
    except ClusterUnavailable:
        await client.aclose()
        raise
    return SharedState(settings, client, connect_threads(settings))
