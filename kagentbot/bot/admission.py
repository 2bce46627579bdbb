"""Per-user lanes: how much one user may have running and waiting at once (turns and commands
each have their own). Past the waiting cap the bot says "slow down" instead of queueing without
end; a flood from one user then costs others nothing but its fair share.

`Lanes` is the interface; `UserLanes` keeps the counts in this process, and with
`cluster.enabled` the bot counts them across replicas instead (kagentbot.cluster.lanes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from kagentbot.config.settings import Settings


class Lanes(Protocol):
    """Per-user caps on work running and waiting (see `UserLanes` for the meaning of each)."""

    async def admit(self, user: str, *, always: bool = False) -> bool: ...

    async def outstanding(self, user: str) -> int: ...

    async def withdraw(self, user: str) -> None: ...

    def running(self, user: str) -> AbstractAsyncContextManager[None]: ...

    async def close(self) -> None: ...


def open_lanes(settings: Settings) -> tuple[Lanes, Lanes]:
    """The lanes for turns and for commands: in this process, or across replicas with `cluster.enabled`."""
    limits = settings.limits
    if settings.cluster.enabled:
        from kagentbot.cluster.lanes import RedisLanes

        return RedisLanes.pair(settings)
    return UserLanes(limits.user_turns, limits.user_queued), UserLanes(limits.user_commands, limits.user_commands_queued)


@dataclass
class _Lane:
    running: asyncio.Semaphore
    outstanding: int = 0  # admitted and not finished: waiting or running


@dataclass
class UserLanes:
    """`admit(user)` when work arrives (False: over the cap, refuse it); then
    `async with lanes.running(user):` around the work itself."""

    max_running: int
    max_waiting: int
    _lanes: dict[str, _Lane] = field(default_factory=dict)

    async def admit(self, user: str, *, always: bool = False) -> bool:
        """`always`: work the user did not send just now (a scheduled question, bounded by the
        scheduler's own cap) is never refused, only queued."""
        lane = self._lanes.get(user)
        if lane is None:
            lane = self._lanes[user] = _Lane(asyncio.Semaphore(self.max_running))
        if not always and lane.outstanding >= self.max_running + self.max_waiting:
            return False
        lane.outstanding += 1
        return True

    async def outstanding(self, user: str) -> int:
        lane = self._lanes.get(user)
        return lane.outstanding if lane else 0

    async def withdraw(self, user: str) -> None:
        """Admitted work that will never run (dropped before its turn came)."""
        lane = self._lanes.get(user)
        if lane is None:
            return
        lane.outstanding -= 1
        if lane.outstanding <= 0:
            del self._lanes[user]

    @asynccontextmanager
    async def running(self, user: str) -> AsyncIterator[None]:
        """Wait for one of the user's running places (in order of asking), hold it for the
        work, and count the work finished afterwards however it ends."""
        lane = self._lanes[user]
        try:
            async with lane.running:
                yield
        finally:
            await self.withdraw(user)

    async def close(self) -> None:
        """Nothing to give back: the counts live and end with this process."""
