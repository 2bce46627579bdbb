"""Per-user lanes counted across replicas (`cluster.enabled`): the same caps as the in-process
`UserLanes` of kagentbot.bot.admission (`limits.user_turns` / `user_queued`, `user_commands` /
`user_commands_queued`), with each user's admitted work and running places kept in Redis, so a
flood spread over every replica by the platform's routing is capped once, not once per replica.

Every count is a member with a lease (`cluster.lease_seconds`), renewed while its replica lives:
a replica that dies leaves nothing counted against its users once the leases run out. Running
places go in order of asking across replicas; a freed place is announced on pub/sub, and waiters
also look again every little while should an announcement be lost.

Keys under B = {prefix}:{lanes}:{name}, per user U: B:out:U (ZSET, admitted work -> lease
deadline), B:run:U (ZSET, running places), B:line:U (LIST, waiting for a place, in order) with
B:wait:U (ZSET, their leases); channel B:freed (a user's place came free)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kagentbot.cluster.redis import ClusterUnavailable, Keys, connect, forever, listen, stopped
from kagentbot.cluster.slots import MAX_POLL
from kagentbot.config.settings import Settings

log = logging.getLogger(__name__)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
"""

# KEYS: out. ARGV: lease, ticket, cap (-1: never refused). 1 when admitted.
ADMIT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[3])
if cap >= 0 and redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return 1
"""

# KEYS: out. ARGV: lease. Work admitted and not finished, on every replica.
OUTSTANDING = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: run, line, wait. ARGV: lease, waiter, places. 1 when the waiter holds a running place
# (it stands in line otherwise): a place goes to those first in line while places are free.
ENTER = _NOW + """
local run, line, wait = KEYS[1], KEYS[2], KEYS[3]
redis.call('ZREMRANGEBYSCORE', run, '-inf', now)
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', wait, '-inf', now)) do
  redis.call('LREM', line, 1, dead)
  redis.call('ZREM', wait, dead)
end
if not redis.call('ZSCORE', wait, ARGV[2]) then redis.call('RPUSH', line, ARGV[2]) end
redis.call('ZADD', wait, now + lease, ARGV[2])
local free = tonumber(ARGV[3]) - redis.call('ZCARD', run)
if redis.call('LPOS', line, ARGV[2]) < free then
  redis.call('LREM', line, 1, ARGV[2])
  redis.call('ZREM', wait, ARGV[2])
  redis.call('ZADD', run, now + lease, ARGV[2])
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, 2 * lease) end
if redis.call('ZSCORE', run, ARGV[2]) then return 1 end
return 0
"""

# KEYS: run, line, wait, out. ARGV: lease, id (a place, a waiter or a ticket), channel, user.
LEAVE = _NOW + """
local had = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('LREM', KEYS[2], 1, ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
if had == 1 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return had
"""

# KEYS: the ZSETs of this replica's members, each followed in ARGV by its member. Their leases renewed.
RENEW = _NOW + """
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], 2 * lease)
end
return #KEYS
"""


class RedisLanes:
    """`Lanes` across replicas: `admit`, `outstanding`, `withdraw` and `running(user)` as
    `UserLanes` has them, every count shared through Redis."""

    def __init__(self, client: aioredis.Redis, keys: Keys, name: str, max_running: int, max_waiting: int,
                 lease_seconds: float, poll: float | None = None, owns_client: bool = False) -> None:
        self.max_running, self.max_waiting = max_running, max_waiting
        self.poll = poll or min(lease_seconds / 4, MAX_POLL)
        self._lease_ms = round(lease_seconds * 1000)
        self._client, self._owns_client = client, owns_client
        self._base = keys("{lanes}", name)
        self._scripts = {name: client.register_script(lua) for name, lua in
                         (("admit", ADMIT), ("outstanding", OUTSTANDING), ("enter", ENTER), ("leave", LEAVE),
                          ("renew", RENEW))}
        self._tickets: dict[str, list[str]] = {}  # user -> this replica's admitted work
        self._members: dict[str, tuple[str, str]] = {}  # running place or waiter -> (kind, user)
        self._wakes: dict[str, asyncio.Event] = {}  # user -> set when one of their places came free
        self._background: list[asyncio.Task[None]] = []

    @classmethod
    def pair(cls, settings: Settings) -> tuple[RedisLanes, RedisLanes]:
        """The lanes for turns and for commands, on `cluster.redis_url`."""
        cluster, limits = settings.cluster, settings.limits
        keys = Keys(cluster.key_prefix)
        turns = cls(connect(cluster), keys, "turns", limits.user_turns, limits.user_queued, cluster.lease_seconds,
                    owns_client=True)
        commands = cls(connect(cluster), keys, "commands", limits.user_commands, limits.user_commands_queued,
                       cluster.lease_seconds, owns_client=True)
        return turns, commands

    async def admit(self, user: str, *, always: bool = False) -> bool:
        """As `UserLanes.admit`, counting the user's work on every replica."""
        self._start()
        ticket = uuid.uuid4().hex
        cap = -1 if always else self.max_running + self.max_waiting
        if not await self._call("admit", [self._key("out", user)], ticket, cap):
            return False
        self._tickets.setdefault(user, []).append(ticket)
        return True

    async def outstanding(self, user: str) -> int:
        return int(await self._call("outstanding", [self._key("out", user)]))

    async def withdraw(self, user: str) -> None:
        tickets = self._tickets.get(user)
        if not tickets:
            return
        ticket = tickets.pop()
        if not tickets:
            del self._tickets[user]
        await self._leave(ticket, user)

    @asynccontextmanager
    async def running(self, user: str) -> AsyncIterator[None]:
        """Wait for one of the user's running places on any replica (in order of asking), hold
        it for the work, and count the work finished afterwards however it ends."""
        place = uuid.uuid4().hex
        try:
            await self._enter(place, user)
            try:
                yield
            finally:
                self._members.pop(place, None)
                await asyncio.shield(self._leave(place, user))
        finally:
            await asyncio.shield(self.withdraw(user))

    async def close(self) -> None:
        """Stop renewing and listening; give back this replica's counts."""
        for task in self._background:
            task.cancel()
        await stopped(self._background, "the per-user lanes")
        self._background.clear()
        leaving = [(member, user) for member, (_, user) in self._members.items()]
        leaving += [(ticket, user) for user, tickets in self._tickets.items() for ticket in tickets]
        self._members.clear()
        self._tickets.clear()
        await asyncio.gather(*(self._leave(member, user) for member, user in leaving), return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    # -- internals -----------------------------------------------------------------------------
    def _key(self, kind: str, user: str) -> str:
        return f"{self._base}:{kind}:{user}"

    def _place_keys(self, user: str) -> list[str]:
        return [self._key("run", user), self._key("line", user), self._key("wait", user)]

    async def _call(self, script: str, keys: list[str], *argv: str | int) -> Any:
        try:
            return await self._scripts[script](keys=keys, args=[self._lease_ms, *argv])
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"the per-user lanes in Redis: {exc}") from exc

    async def _enter(self, place: str, user: str) -> None:
        self._start()
        self._members[place] = ("wait", user)
        try:
            while True:
                wake = self._wakes.setdefault(user, asyncio.Event())  # before asking: no freeing is missed
                if await self._call("enter", self._place_keys(user), place, self.max_running):
                    self._members[place] = ("run", user)
                    return
                try:
                    await asyncio.wait_for(wake.wait(), self.poll)
                except TimeoutError:
                    pass
        except BaseException:
            self._members.pop(place, None)
            await asyncio.shield(self._leave(place, user))
            raise

    async def _leave(self, member: str, user: str) -> None:
        try:
            await self._call("leave", [*self._place_keys(user), self._key("out", user)], member,
                             f"{self._base}:freed", user)
        except ClusterUnavailable as exc:  # its lease runs out instead
            log.warning("could not give back %s's place in the lanes now (%s); it frees itself within the lease", user, exc)

    def _start(self) -> None:
        if not self._background:
            self._background = [asyncio.create_task(forever(self._listen, "listening for freed lanes"), name="lanes freed"),
                                asyncio.create_task(forever(self._renew, "renewing lane leases"), name="lane leases")]

    async def _listen(self) -> None:
        await listen(self._client, f"{self._base}:freed", self.poll, self._freed)

    def _freed(self, user: str) -> None:
        wake = self._wakes.pop(user, None)
        if wake is not None:
            wake.set()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            pairs = [(self._key(kind, user), member) for member, (kind, user) in self._members.items()]
            pairs += [(self._key("out", user), ticket) for user, tickets in self._tickets.items() for ticket in tickets]
            if pairs:
                await self._call("renew", [key for key, _ in pairs], *(member for _, member in pairs))
