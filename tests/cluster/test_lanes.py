"""Per-user caps counted across replicas through the real loopback redis-server: the lanes on
their own, then two real Bots sharing one Redis (and one fake Ollama) as two replicas would."""

from __future__ import annotations

import asyncio

import pytest

from kagentbot.cluster import Keys, connect
from kagentbot.cluster.lanes import RedisLanes
from kagentbot.config.settings import ClusterSettings
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import Scripted
from tests.cluster.conftest import doomed_replica
from tests.fakes.redis_server import RedisServer


@pytest.fixture
async def lanes(cluster_settings: ClusterSettings, redis_client):
    """`make(running, waiting, lease=2.0)`: the turn lanes as one replica would open them."""
    made: list[RedisLanes] = []

    def make(running: int, waiting: int, lease: float = 2.0) -> RedisLanes:
        lane = RedisLanes(connect(cluster_settings), Keys(cluster_settings.key_prefix), "turns", running, waiting,
                          lease, poll=0.05, owns_client=True)
        made.append(lane)
        return lane

    yield make
    for lane in made:
        await lane.close()


async def test_a_users_work_is_capped_once_across_replicas(lanes):
    a, b = lanes(2, 3), lanes(2, 3)
    verdicts = [await (a if n % 2 else b).admit("slack:A") for n in range(10)]
    assert verdicts == [True] * 5 + [False] * 5
    assert await a.outstanding("slack:A") == await b.outstanding("slack:A") == 5
    assert await b.admit("slack:A", always=True)  # a scheduled question is queued, never refused
    assert await a.admit("slack:B")  # another user's lane is their own
    await a.withdraw("slack:A")
    await b.withdraw("slack:A")
    assert await a.admit("slack:A") and await b.outstanding("slack:A") == 5


async def standing(lane, user: str, count: int) -> None:
    """Until `count` of the user's works hold a running place or stand in line for one, in Redis
    (the Redis state itself, not a sleep: a busy machine may take a while to ask)."""
    for _ in range(500):
        held = await lane._client.zcard(lane._key("run", user))
        if held + await lane._client.llen(lane._key("line", user)) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} works never stood in line")


async def test_running_places_are_shared_across_replicas_in_order_of_asking(lanes):
    a, b = lanes(2, 10), lanes(2, 10)
    running = peak = 0
    entered: list[int] = []

    async def work(n: int) -> None:
        nonlocal running, peak
        lane = a if n % 2 else b
        async with lane.running("slack:A"):
            entered.append(n)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.03)
            running -= 1

    tasks = []
    for n in range(8):
        assert await (a if n % 2 else b).admit("slack:A")
        tasks.append(asyncio.create_task(work(n)))
        await standing(a, "slack:A", n + 1)  # each asks after the one before has asked
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert peak == 2 and sorted(entered) == list(range(8))
    # in order of asking, but for the two places: both freed at once go to the first two in
    # line, and which of those two enters first is up to their event loops
    place = {n: entered.index(n) for n in entered}
    assert all(place[earlier] < place[later] for earlier in range(8) for later in range(earlier + 2, 8)), entered
    assert await a.outstanding("slack:A") == 0


HOLD_AND_HANG = """
import asyncio, sys
from kagentbot.cluster import Keys, connect
from kagentbot.cluster.lanes import RedisLanes
from kagentbot.config.settings import ClusterSettings

async def main():
    settings = ClusterSettings(enabled=True, redis_url=sys.argv[1], key_prefix=sys.argv[2])
    lanes = RedisLanes(connect(settings), Keys(settings.key_prefix), "turns", 1, 1, 1.0)
    assert await lanes.admit("slack:A") and await lanes.admit("slack:A")
    async with lanes.running("slack:A"):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_the_counts_of_a_replica_killed_mid_work_drain_after_the_lease(lanes, cluster_settings):
    async with doomed_replica(HOLD_AND_HANG, cluster_settings) as doomed:
        survivor = lanes(1, 1, lease=1.0)
        await asyncio.sleep(1.3)  # past a lease: the living replica's counts are renewed
        assert not await survivor.admit("slack:A")
        doomed.kill()
        await asyncio.sleep(1.3)
        assert await survivor.outstanding("slack:A") == 0
        assert await survivor.admit("slack:A")
        async with asyncio.timeout(1):
            async with survivor.running("slack:A"):  # the dead replica's running place is free again
                pass


@pytest.fixture
def replica_bots(fake_ollama, make_settings, start_bot, cluster_settings: ClusterSettings, redis_client, tmp_path):
    """`start(n, delay, slots, limits)`: n Bots as replicas, each with its own data directory and
    chat connection, sharing the Redis, the cluster settings and one fake Ollama."""

    async def start(n: int, delay: float, slots: int, limits: dict) -> list[tuple[object, ChatAdapter]]:
        fake_ollama.responder = lambda body: Scripted("re: " + body["messages"][-1]["content"][-20:], delay=delay)
        replicas = []
        for index in range(n):
            chat = ChatAdapter()
            settings = make_settings(llm={"host": fake_ollama.url, "mode": "native", "max_connections": slots},
                                     agent={"max_steps": 1}, limits=limits, data_dir=tmp_path / f"replica{index}",
                                     cluster={**cluster_settings.model_dump(), "replica_id": f"replica-{index}",
                                              "redis_url": cluster_settings.redis_url.get_secret_value()})
            replicas.append((await start_bot(settings, [chat]), chat))
        return replicas

    return start


async def until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def mention(text: str, user: str, chat: str, message_id: str):
    from kagentbot.chat.messages import IncomingMessage

    return IncomingMessage("testchat", chat, user, text, message_id=message_id, mentions_bot=True)


async def test_two_replica_bots_keep_one_users_caps_and_the_model_cap_together(replica_bots, fake_ollama):
    (one, chat_one), (two, chat_two) = await replica_bots(2, delay=0.1, slots=2,
                                                          limits={"user_turns": 2, "user_queued": 3})
    for n in range(12):  # the platform routes one user's flood to both replicas
        (chat_one if n % 2 else chat_two).deliver(mention(f"flood question {n:03d}", "A", "C1", f"a{n}"))
        await asyncio.sleep(0.005)
    chat_one.deliver(mention("a single question from B", "B", "C2", "b0"))
    await asyncio.gather(one.idle(), two.idle())
    answered = [p.final for chat in (chat_one, chat_two) for p in chat.posted if p.final.startswith("re: ")]
    assert len([a for a in answered if "flood" in a]) == 5  # two running and three waiting, across both
    assert one.refused["turn"] + two.refused["turn"] == 7
    assert any("from B" in a for a in answered)
    assert fake_ollama.max_in_flight == 2  # the model's cap held across both replicas


async def test_cluster_mode_takes_nothing_it_cannot_count_when_redis_is_down(make_settings, start_bot, fake_ollama,
                                                                              tmp_path, caplog):
    down = RedisServer(tmp_path / "redis").start()  # up while the bot starts (it refuses to start without)
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1},
                             cluster={"enabled": True, "redis_url": down.url, "connect_timeout": 0.3})
    chat = ChatAdapter()
    bot = await start_bot(settings, [chat])
    down.stop()  # then gone: nobody answers on its port
    chat.deliver(mention("a question while Redis is away", "A", "C1", "a0"))
    await bot.idle()
    # not taken, so not acknowledged: the platform delivers it again (docs/cluster-conversations.md)
    assert "NOT acknowledged, the platform will deliver it again" in caplog.text
    assert not bot._conversations and fake_ollama.requests == []


async def test_a_turn_waiting_on_one_replica_counts_the_waiters_of_another_in_its_notice(replica_bots):
    (one, chat_one), (two, chat_two) = await replica_bots(
        2, delay=0.6, slots=1, limits={"queue_notice_after": 0.2, "queue_notice_every": 0.1})
    chat_one.deliver(mention("question from A", "A", "chat-A", "A1"))
    await until(lambda: one.services.slots.in_use() == 1)  # A has the one slot
    chat_two.deliver(mention("question from B", "B", "chat-B", "B1"))
    await until(lambda: two.services.slots.queue_length() == 1)  # B waits for it, on the other replica
    chat_one.deliver(mention("question from C", "C", "chat-C", "C1"))
    await asyncio.gather(one.idle(), two.idle())
    notices = {p.where.chat_id: p for chat in (chat_one, chat_two) for p in chat.deleted}
    assert set(notices) == {"chat-B", "chat-C"}  # A never waited; one slot for both replicas
    assert notices["chat-C"].text == "⏳ Queued — 1 ahead of you."  # B, on the other replica
    assert notices["chat-C"].edits == ["⏳ Queued — you're next."]
