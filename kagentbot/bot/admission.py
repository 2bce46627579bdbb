"""Per-user lanes: how much one user may have running and waiting at once (turns and commands
each have their own). Past the waiting cap the bot says "slow down" instead of queueing without
end; a flood from one user then costs others nothing but its fair share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


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

    def admit(self, user: str, *, always: bool = False) -> bool:
        """`always`: work the user did not send just now (a scheduled question, bounded by the
        scheduler's own cap) is never refused, only queued."""
        lane = self._lanes.get(user)
        if lane is None:
            lane = self._lanes[user] = _Lane(asyncio.Semaphore(self.max_running))
        if not always and lane.outstanding >= self.max_running + self.max_waiting:
            return False
        lane.outstanding += 1
        return True

    def outstanding(self, user: str) -> int:
        lane = self._lanes.get(user)
        return lane.outstanding if lane else 0

    def withdraw(self, user: str) -> None:
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
            self.withdraw(user)
