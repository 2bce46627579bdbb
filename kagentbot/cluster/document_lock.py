"""The memory's per-document lock in the shared Redis: replicas adding the same document to a
store on S3 at once store it once (memory/document_lock.py has the protocol and the local lock).

SET NX PX takes it with a lease; a renewal task extends the lease while the holder works (an
embedding of a long document takes longer than a lease); release deletes it only while it is
still ours (compare and delete), so a holder whose lease ran out never frees a successor's lock."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kagentbot.cluster.redis import Keys, cancel_requested
from kagentbot.memory.errors import StoreError

log = logging.getLogger(__name__)

# Extend the lease (milliseconds) only while the value is still this holder's token.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDocumentLock:
    """One Redis key per document and scope: `{prefix}:document:{sha256 of name}`."""

    def __init__(self, client: aioredis.Redis, keys: Keys, owner: str, lease_seconds: float, poll: float = 0.05) -> None:
        self._client = client
        self._keys = keys
        self._owner = owner
        self._lease_ms = int(lease_seconds * 1000)
        self._poll = poll

    def key(self, name: str) -> str:
        return self._keys("document", hashlib.sha256(name.encode()).hexdigest())

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        key = self.key(name)
        token = f"{self._owner}:{uuid.uuid4().hex}"
        await self._acquire(key, token)
        renewal = asyncio.get_running_loop().create_task(self._renew(key, token), name=f"document lock {key}")
        try:
            yield True
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self._release(key, token)

    async def _acquire(self, key: str, token: str) -> None:
        try:
            while not await self._client.set(key, token, nx=True, px=self._lease_ms):
                await asyncio.sleep(self._poll)
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot lock the document in the shared Redis (cluster.redis_url): {exc}; "
                             "nothing was added, try again once Redis answers") from exc

    async def _renew(self, key: str, token: str) -> None:
        """Every third of the lease; a lease lost (Redis down longer than it) is logged."""
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                kept = await self._client.eval(_RENEW, 1, key, token, self._lease_ms)
            except (RedisError, OSError) as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                log.warning("memory: could not renew the document lock %s: %s", key, exc)
                continue
            if not kept:
                log.error("memory: the document lock %s expired while held; another replica may add the same document", key)
                return

    async def _release(self, key: str, token: str) -> None:
        try:
            await self._client.eval(_RELEASE, 1, key, token)
        except (RedisError, OSError) as exc:  # it expires by itself after the lease
            log.warning("memory: could not release the document lock %s: %s", key, exc)
