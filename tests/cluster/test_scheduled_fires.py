"""Each scheduled fire is claimed once in Redis (`fired:{job}:{time}`, by the time it was due):
two schedulers timing the same job (a leader that has not noticed yet that it lost the lock,
and its successor) run it once, and a new leader does not run again as 'missed' a fire its
predecessor took before it could record it. The nightly memory upkeep likewise: a new leader
runs last night's if nobody did (a handover at that minute), and not if its predecessor did."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from kagentbot.bot.replicas import schedule_book
from kagentbot.bot.schedule import Scheduler, next_runs, trigger_of
from kagentbot.bot.services import Services
from kagentbot.cluster.shared import open_shared


@pytest.fixture
async def two(make_settings, cluster_settings, redis_client, tmp_path):
    """Two replicas' (settings, shared state), each with its own data directory."""
    made = []
    for name in ("a", "b"):
        cluster = cluster_settings.model_copy(update={"replica_id": f"replica-{name}"})
        settings = make_settings(data_dir=tmp_path / name, cluster=cluster.model_dump())
        made.append((settings, await open_shared(settings.cluster)))
    yield made
    for _, shared in made:
        await shared.close()


def scheduler(settings, shared, fired: list[str]) -> Scheduler:
    name = shared.name

    async def fire(spec) -> None:
        fired.append(f"{name}:{spec.id}")

    return Scheduler(settings, fire, book=schedule_book(settings, shared), claim=shared.claim_fire, reload_seconds=0.2)


async def test_two_schedulers_timing_one_job_run_each_fire_once(two, keys, redis_client):
    (settings_a, a), (settings_b, b) = two
    fired: list[str] = []
    old, new = scheduler(settings_a, a, fired), scheduler(settings_b, b, fired)
    spec = old.book.add("testchat:U1", "testchat", "C1", "every 30 minutes", "status?")
    await old.start()
    await new.start()  # both time the job: the moment of a handover
    try:
        due = (datetime.now(UTC) + timedelta(seconds=0.4)).replace(microsecond=0)
        due = due if due > datetime.now(UTC) else due + timedelta(seconds=1)
        for each in (old, new):
            assert each._aps.get_job(spec.id) is not None
            each._aps.modify_job(spec.id, next_run_time=due)
        await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + 0.6)
        assert len(fired) == 1, fired
        claimed = await redis_client.get(keys.fired(spec.id, due.isoformat()))
        assert fired == [f"{claimed}:{spec.id}"]
    finally:
        old.shutdown()
        new.shutdown()


async def test_a_new_leader_does_not_rerun_a_fire_its_predecessor_took(two):
    (settings_a, a), (settings_b, b) = two
    fired: list[str] = []
    now = datetime.now(UTC)
    book = schedule_book(settings_a, a)
    taken = book.add("testchat:U1", "testchat", "C1", "every 30 minutes", "taken", now=now - timedelta(minutes=40))
    open_ = book.add("testchat:U2", "testchat", "C1", "every 30 minutes", "not taken", now=now - timedelta(minutes=40))
    due = next_runs(trigger_of(taken), now - timedelta(minutes=40), 1)[0]
    assert due < now
    # the old leader claimed its fire and died before it recorded the run in the book
    assert await a.claim_fire(taken.id, due)

    successor = scheduler(settings_b, b, fired)
    try:
        missed = await successor.start(now)
    finally:
        successor.shutdown()
    assert {spec.id for spec in missed} == {taken.id, open_.id}  # both look missed from the book
    assert fired == [f"replica-b:{open_.id}"]  # the one taken already is not run again


async def test_a_new_leader_runs_the_nightly_upkeep_nobody_ran_and_no_other_does(two, keys, redis_client, caplog):
    (settings_a, a), (settings_b, b) = two
    caplog.set_level(logging.INFO, logger="kagentbot.bot.schedule")
    services = await Services.open(settings_a)

    async def fire(spec) -> None:
        raise AssertionError("no question is scheduled here")

    def upkeeps() -> int:
        return sum(r.getMessage().startswith("memory upkeep:") for r in caplog.records)

    first = Scheduler(settings_a, fire, services.memory, book=schedule_book(settings_a, a), claim=a.claim_fire)
    second = Scheduler(settings_b, fire, services.memory, book=schedule_book(settings_b, b), claim=b.claim_fire)
    try:
        now = datetime.now(UTC)
        await first.start(now)  # the leader missed last night's (it was handed over at that minute)
        for _ in range(200):
            if upkeeps():
                break
            await asyncio.sleep(0.05)
        assert upkeeps() == 1
        due = first._last_upkeep(now)
        assert due <= now < due + timedelta(days=1)
        assert await redis_client.get(keys.fired("upkeep", due.astimezone(UTC).isoformat())) == "replica-a"
        await second.start(now)  # the next leader: last night's upkeep is done
        await asyncio.sleep(0.5)
        assert upkeeps() == 1
    finally:
        first.shutdown()
        second.shutdown()
        await services.close()
