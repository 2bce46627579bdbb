"""The replicas' shared event-loop lag (the reorder window's measure), against a real Redis:
each replica publishes its own figure and reads the others'; a dead replica's old figure, and a
figure past the cap, do not hold conversations back."""

from __future__ import annotations

import asyncio
import time

from kagentbot.cluster.lag import MOST, SHARE_EVERY, ClusterLag


async def shared(lag: ClusterLag) -> None:
    """Until `lag` has published and read at least once more."""
    await asyncio.sleep(SHARE_EVERY * 2 + 0.1)


async def test_a_replica_reads_the_lag_another_one_publishes(redis_client, keys):
    busy, idle = ClusterLag(redis_client, keys, "busy"), ClusterLag(redis_client, keys, "idle")
    busy.start()
    idle.start()
    try:
        await shared(idle)
        assert idle.worst < 0.3  # both idle
        await redis_client.hset(keys("lag"), "other", f"0.8 {time.time():.3f}")
        await shared(idle)
        assert idle.worst >= 0.8
        figures = await redis_client.hgetall(keys("lag"))
        assert {"busy", "idle", "other"} <= set(figures)
    finally:
        for lag in (busy, idle):
            task = lag.task()
            assert task is not None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_an_old_figure_and_an_absurd_one_do_not_hold_conversations_back(redis_client, keys):
    lag = ClusterLag(redis_client, keys, "me")
    lag.start()
    try:
        await redis_client.hset(keys("lag"), mapping={"dead": f"5.0 {time.time() - 60:.3f}", "garbled": "soon"})
        await shared(lag)
        assert lag.worst < 0.3
        await redis_client.hset(keys("lag"), "wild", f"900 {time.time():.3f}")
        await shared(lag)
        assert lag.worst == MOST
    finally:
        task = lag.task()
        assert task is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
