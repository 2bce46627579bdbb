"""The LLM slots shared by replicas through the real loopback redis-server: each gate below has
its own Redis client, as a replica would; together they keep the cap and serve users in the
same order a single `FairGate` would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from kagentbot.agent.slots import Claim, FairGate, SlotGate
from kagentbot.cluster import Keys, connect
from kagentbot.cluster.slots import GateRules, RedisSlotGate
from kagentbot.config.settings import ClusterSettings
from tests.cluster.conftest import doomed_replica
from tests.fakes.redis_server import RedisServer


@pytest.fixture
async def replicas(cluster_settings: ClusterSettings, redis_client):
    """`make(name, rules)`: a gate as replica `name` would open it; all closed at the end."""
    gates: list[RedisSlotGate] = []

    def make(name: str, rules: GateRules) -> RedisSlotGate:
        gate = RedisSlotGate(connect(cluster_settings), Keys(cluster_settings.key_prefix), name, rules,
                             poll=0.05, owns_client=True)
        gates.append(gate)
        return gate

    yield make
    for gate in gates:
        await gate.close()


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def queue(gate: SlotGate, claim: Claim, order: list[str]) -> asyncio.Task[None]:
    """A call that waits at `gate`, records when it is served and gives its slot back; returns
    once the call stands in line."""
    async def call() -> None:
        await gate.acquire(claim)
        order.append(claim.turn)
        await gate.release(claim)

    waiting = gate.queue_length()
    task = asyncio.create_task(call())
    await until(lambda: gate.queue_length() > waiting)
    return task


async def served(plan: list[tuple[int, Claim]], gates: list[SlotGate], positions: list[str] = ()) -> tuple[list[str], list]:
    """Fill the slots from the first gate, line up `plan` ((gate index, claim), in order), read
    the `positions` of some turns, then free the slots: the order of service is the gates' alone."""
    holder = Claim("holder", "elsewhere")
    for _ in range(gates[0].capacity):
        await gates[0].acquire(holder)
    order: list[str] = []
    tasks = [await queue(gates[index], claim, order) for index, claim in plan]
    where = {claim.turn: gates[index] for index, claim in plan}
    ahead = [await where[turn].position(turn) for turn in positions]
    for _ in range(gates[0].capacity):
        await gates[0].release(holder)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    return order, ahead


def flood_and_steady() -> list[tuple[int, Claim]]:
    """A flood of one user on replica 0, asked first; then steady users on replica 1."""
    flood = [(0, Claim("slack:A", "C1", turn=f"a{n}")) for n in range(6)]
    steady = [(1, Claim(f"slack:{u}", f"C-{u}", turn=f"{u.lower()}{n}")) for n in range(2) for u in "BC"]
    return flood + steady


async def test_users_on_other_replicas_are_served_in_turn_not_after_a_flood(replicas):
    rules = GateRules(capacity=1)
    order, _ = await served(flood_and_steady(), [replicas("a", rules), replicas("b", rules)])
    assert order[:5] == ["a0", "b0", "c0", "a1", "b1"]
    single, _ = await served([(0, claim) for _, claim in flood_and_steady()], [FairGate(1)])
    assert order == single  # the very order one process would have served


async def test_position_counts_the_waiters_of_every_replica(replicas):
    rules = GateRules(capacity=1)
    turns = ["a0", "a3", "b0", "c1"]
    _, ahead = await served(flood_and_steady(), [replicas("a", rules), replicas("b", rules)], turns)
    _, single = await served([(0, claim) for _, claim in flood_and_steady()], [FairGate(1)], turns)
    assert ahead == single == [0, 7, 1, 5]


async def test_interactive_calls_on_one_replica_go_before_scheduled_ones_on_another(replicas):
    rules = GateRules(capacity=1, scheduled_patience=60)
    plan = [(0, Claim("slack:S", "C1", "scheduled", turn="s0")), (0, Claim("slack:S", "C1", "scheduled", turn="s1")),
            (1, Claim("slack:B", "C2", turn="b0"))]
    order, ahead = await served(plan, [replicas("a", rules), replicas("b", rules)], ["s0"])
    assert order == ["b0", "s0", "s1"] and ahead == [1]


async def test_a_scheduled_call_past_its_patience_goes_before_interactive_ones_elsewhere(replicas):
    rules = GateRules(capacity=1, scheduled_patience=0.2)
    a, b = replicas("a", rules), replicas("b", rules)
    await a.acquire(Claim("slack:H", "x"))
    order: list[str] = []
    tasks = [await queue(a, Claim("slack:S", "C1", "scheduled", turn="late"), order)]
    await asyncio.sleep(0.3)  # past its patience
    tasks.append(await queue(b, Claim("slack:B", "C2", turn="b0"), order))
    await a.release(Claim("slack:H", "x"))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["late", "b0"]


async def test_a_chat_at_its_share_is_passed_over_for_a_chat_on_another_replica(replicas):
    rules = GateRules(capacity=2, chat_share=0.5)
    a, b = replicas("a", rules), replicas("b", rules)
    await a.acquire(Claim("slack:A", "busy"))
    await a.acquire(Claim("slack:A", "busy"))
    order: list[str] = []
    tasks = [await queue(a, Claim(f"slack:U{n}", "busy", turn=f"busy{n}"), order) for n in range(3)]
    tasks.append(await queue(b, Claim("slack:Q", "quiet", turn="quiet"), order))
    await a.release(Claim("slack:A", "busy"))  # "busy" still holds one: its share; "quiet" goes first
    await until(lambda: len(order) >= 1)
    assert order[0] == "quiet"
    await a.release(Claim("slack:A", "busy"))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_replicas_sharing_redis_never_exceed_the_cap_together(replicas):
    rules = GateRules(capacity=3, chat_share=1)
    gates = [replicas(name, rules) for name in ("a", "b", "c")]
    running = peak = 0

    async def call(gate: RedisSlotGate, n: int) -> None:
        nonlocal running, peak
        claim = Claim(f"slack:U{n % 5}", f"C{n % 3}", turn=f"t{n}")
        await gate.acquire(claim)
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        await gate.release(claim)

    await asyncio.wait_for(asyncio.gather(*(call(gates[n % 3], n) for n in range(60))), 20)
    assert peak == 3
    assert all(gate.in_use() == 0 and gate.queue_length() == 0 for gate in gates)


async def test_a_cancelled_wait_leaves_the_line_on_every_replica(replicas):
    rules = GateRules(capacity=1)
    a, b = replicas("a", rules), replicas("b", rules)
    await a.acquire(Claim("slack:H", "x"))
    order: list[str] = []
    gone = await queue(b, Claim("slack:A", "c", turn="gone"), order)
    kept = await queue(a, Claim("slack:B", "c", turn="kept"), order)
    assert await a.position("kept") == 1
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await until(lambda: b.queue_length() == 0)
    assert await a.position("kept") == 0
    await a.release(Claim("slack:H", "x"))
    await asyncio.wait_for(kept, 5)
    assert order == ["kept"]


HOLD_AND_HANG = """
import asyncio, sys
from kagentbot.agent.slots import Claim
from kagentbot.cluster import Keys, connect
from kagentbot.cluster.slots import GateRules, RedisSlotGate
from kagentbot.config.settings import ClusterSettings
from tests.fakes.redis_server import RedisServer

async def main():
    settings = ClusterSettings(enabled=True, redis_url=sys.argv[1], key_prefix=sys.argv[2])
    gate = RedisSlotGate(connect(settings), Keys(settings.key_prefix), "doomed", GateRules(1, lease_seconds=1.0))
    await gate.acquire(Claim("slack:D", "chat"))
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_the_slot_of_a_replica_killed_while_holding_it_comes_back_after_the_lease(replicas, cluster_settings):
    async with doomed_replica(HOLD_AND_HANG, cluster_settings) as doomed:
        survivor = replicas("b", GateRules(1, lease_seconds=1.0))
        waiting = asyncio.create_task(survivor.acquire(Claim("slack:S", "chat")))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the slot is held, renewed while its replica lives
        doomed.kill()
        killed = time.monotonic()
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - killed < 1.0 + 0.5  # within the lease and a poll


WAIT_AND_HANG = """
import asyncio, sys
from kagentbot.agent.slots import Claim
from kagentbot.cluster import Keys, connect
from kagentbot.cluster.slots import GateRules, RedisSlotGate
from kagentbot.config.settings import ClusterSettings

async def main():
    settings = ClusterSettings(enabled=True, redis_url=sys.argv[1], key_prefix=sys.argv[2])
    gate = RedisSlotGate(connect(settings), Keys(settings.key_prefix), "doomed", GateRules(1, lease_seconds=20.0))
    waiting = asyncio.create_task(gate.acquire(Claim("slack:D", "chat")))
    while not gate.queue_length():
        await asyncio.sleep(0.01)
    print("held", flush=True)
    await waiting
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_replicas_place_in_line_does_not_stall_the_others_for_a_lease(replicas, cluster_settings):
    """Its waiter is first in line when it dies: the slot must not go to it and sit unused until
    the lease (20 s) runs out; the replica is taken for dead once it stops renewing its heartbeat."""
    survivor = replicas("b", GateRules(1, lease_seconds=20.0))
    first = Claim("slack:S", "chat", turn="first")
    await survivor.acquire(first)
    async with doomed_replica(WAIT_AND_HANG, cluster_settings) as doomed:
        second = asyncio.create_task(survivor.acquire(Claim("slack:T", "chat", turn="second")))  # behind the doomed
        await until(lambda: survivor.queue_length() == 1)
        doomed.kill()
        killed = time.monotonic()
        await survivor.release(first)  # the slot would go to the dead replica's waiter
        await asyncio.wait_for(second, 10)
        assert time.monotonic() - killed < 5  # the heartbeat (1.5 s) and a poll, not the 20 s lease


async def test_a_call_waiting_when_redis_restarts_empty_stands_in_line_again(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        settings = ClusterSettings(enabled=True, redis_url=server.url, key_prefix="restart", connect_timeout=0.5)
        rules = GateRules(capacity=1, lease_seconds=2.0)
        a, b = (RedisSlotGate(connect(settings), Keys("restart"), name, rules, poll=0.05, owns_client=True)
                for name in ("a", "b"))
        try:
            await a.acquire(Claim("slack:A", "c1"))
            waiting = asyncio.create_task(b.acquire(Claim("slack:B", "c2", turn="b0")))
            await until(lambda: b.queue_length() == 1)
            server.stop()
            server.start()  # no persistence: Redis forgot every holder and waiter
            await asyncio.wait_for(waiting, 5)  # in line again, and served: nobody holds a slot Redis knows of
            assert b.in_use() == 1
        finally:
            await a.close()
            await b.close()
