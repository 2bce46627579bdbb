"""The leader lock: one leader among replicas, renewed while it lives, taken over within the lease
when it stops renewing, never extended or freed by a replica that lost it, and given up (saying
so in the log) when Redis goes away."""

from __future__ import annotations

import asyncio
import logging
import time

from kagentbot.cluster.shared import SharedState, open_shared
from kagentbot.config.settings import ClusterSettings
from tests.fakes.redis_server import RedisServer


class Roles:
    """What a replica's election told it, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def lead(self) -> None:
        self.seen.append("lead")

    async def follow(self) -> None:
        self.seen.append("follow")


async def replica(settings: ClusterSettings, name: str) -> SharedState:
    return await open_shared(settings.model_copy(update={"replica_id": name}))


async def until(check, seconds: float) -> float:
    """Seconds until `check()` held; fails past `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "did not happen in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_one_replica_leads_and_another_takes_over_within_the_lease_when_it_stops_renewing(cluster_settings, redis_client, keys):
    a, b = await replica(cluster_settings, "replica-a"), await replica(cluster_settings, "replica-b")
    roles_a, roles_b = Roles(), Roles()
    leading_a, leading_b = a.leadership(roles_a.lead, roles_a.follow), b.leadership(roles_b.lead, roles_b.follow)
    await leading_a.start()
    await leading_b.start()
    assert (leading_a.leading, leading_b.leading) == (True, False)
    assert await leading_b.lock.holder() == "replica-a"
    await asyncio.sleep(cluster_settings.lease_seconds * 1.1)  # renewed past its first lease
    assert (leading_a.leading, leading_b.leading) == (True, False) and roles_b.seen == []

    leading_a._task.cancel()  # replica A hangs: it no longer renews
    waited = await until(lambda: leading_b.leading, cluster_settings.lease_seconds * 2)
    assert waited <= cluster_settings.lease_seconds + leading_b.every + 0.5
    assert roles_b.seen == ["lead"] and await leading_a.lock.holder() == "replica-b"
    # A wakes up: it can neither extend nor free B's lock, and steps down at its next round.
    assert not await leading_a.lock.extend() and not await leading_a.lock.release()
    await leading_a._round()
    assert not leading_a.leading and roles_a.seen == ["lead", "follow"]
    assert (await redis_client.get(keys.leader())).startswith("replica-b ")
    for state, leading in ((a, leading_a), (b, leading_b)):
        await leading.stop()
        await state.close()


async def test_a_leader_that_stops_cleanly_frees_the_lock_at_once(cluster_settings, redis_client, keys):
    a, b = await replica(cluster_settings, "replica-a"), await replica(cluster_settings, "replica-b")
    roles_a, roles_b = Roles(), Roles()
    leading_a, leading_b = a.leadership(roles_a.lead, roles_a.follow), b.leadership(roles_b.lead, roles_b.follow)
    await leading_a.start()
    await leading_b.start()
    await leading_a.stop()
    assert roles_a.seen == ["lead", "follow"] and await redis_client.get(keys.leader()) is None
    # the next round of B's election, well before A's lease would have run out
    await until(lambda: leading_b.leading, leading_b.every + 0.5)
    await leading_b.stop()
    await a.close()
    await b.close()


async def test_a_leader_cut_off_from_redis_steps_down_within_the_lease_and_says_so(tmp_path, caplog):
    server = RedisServer(tmp_path / "redis").start()
    settings = ClusterSettings(enabled=True, redis_url=server.url, replica_id="replica-a", lease_seconds=1.5,
                               connect_timeout=0.3)
    state = await open_shared(settings)
    roles = Roles()
    leading = state.leadership(roles.lead, roles.follow)
    try:
        await leading.start()
        assert leading.leading
        caplog.set_level(logging.WARNING, logger="kagentbot.cluster.leader")
        server.stop()
        waited = await until(lambda: not leading.leading, settings.lease_seconds)
        assert waited < settings.lease_seconds  # before another replica could have taken the lock
        assert roles.seen == ["lead", "follow"]
        assert "replica-a steps down as leader: Redis does not answer" in caplog.text
        server.start()  # Redis back: the replica stands for election again and wins
        await until(lambda: leading.leading, settings.lease_seconds * 2)
        assert roles.seen == ["lead", "follow", "lead"]
    finally:
        await leading.stop()
        await state.close()
        server.stop()


async def test_a_leader_whose_duties_do_not_start_gives_the_lock_back(cluster_settings, redis_client, keys, caplog):
    state = await replica(cluster_settings, "replica-a")
    roles = Roles()

    async def broken() -> None:
        roles.seen.append("lead")
        raise RuntimeError("the scheduler would not start")

    leading = state.leadership(broken, roles.follow)
    await leading.start()
    assert not leading.leading and roles.seen == ["lead", "follow"]
    assert await redis_client.get(keys.leader()) is None  # free for another replica, or a later round
    assert "replica-a steps down as leader: its duties did not start" in caplog.text
    await leading.stop()
    await state.close()


async def test_two_replicas_given_the_same_name_by_mistake_never_both_lead(cluster_settings):
    first, second = await replica(cluster_settings, "same"), await replica(cluster_settings, "same")
    roles = Roles()
    one, two = first.leadership(roles.lead, roles.follow), second.leadership(roles.lead, roles.follow)
    await one.start()
    await two.start()
    await two._round()
    assert (one.leading, two.leading) == (True, False)
    assert not await two.lock.extend() and not await two.lock.release()
    for state, leading in ((first, one), (second, two)):
        await leading.stop()
        await state.close()
