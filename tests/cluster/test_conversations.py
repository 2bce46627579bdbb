"""Two replicas (two real Bots with their own replica ids, in one process) sharing one loopback
Redis and one in-memory platform, with the real ollama client against the fake Ollama server:
redeliveries answered once, a conversation's turns in order with at most one in flight across
both, a replica stopped abruptly has its conversation finished by the other by editing what it
had posted, and an unreachable Redis leaves the event unacknowledged and /readyz not ready."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time

import pytest
from pydantic import SecretStr

from kagentbot.bot.app import Bot, conversation_key
from kagentbot.chat.adapter import Capabilities
from kagentbot.chat.intake import IntakeUnavailable
from kagentbot.chat.messages import IncomingMessage
from kagentbot.config.settings import ClusterSettings
from kagentbot.ops.server import OpsServer
from tests.bot.chat_adapter import ChatAdapter, Posted
from tests.fakes.ollama_server import Scripted, task
from tests.fakes.redis_server import RedisServer

MESSI = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
ANSWER = "Messi is older than Antonela by 247 days."


class Platform:
    """What both replicas' adapters post into: one chat service seen from two connections."""

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.deleted: list[Posted] = []
        self.ids = itertools.count(1)
        self.acked: list[str] = []  # event ids the platform got an acknowledgement for


class Replica(ChatAdapter):
    """One replica's connection to the shared platform. `push` delivers an event as a platform
    does: acknowledged only when the bot's intake returns (stored), else delivered again later.
    Events of one conversation can reach either replica (`scattered`)."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(Capabilities(True, True, 500, 0.0, 0.0, "plain", deletes=True, scattered=True))
        self.platform_state = platform
        self.posted, self.deleted, self._ids = platform.posted, platform.deleted, platform.ids

    async def push(self, message: IncomingMessage) -> bool:
        assert self.intake is not None, "cluster mode hands adapters the intake"
        try:
            await self.intake.take(self, message)
        except IntakeUnavailable:
            return False
        self.platform_state.acked.append(message.message_id)
        return True


def ask(text: str, message_id: str, chat: str = "D1", user: str = "U1") -> IncomingMessage:
    return IncomingMessage("testchat", chat, user, text, message_id=message_id, is_dm=True, mentions_bot=True)


@pytest.fixture
def replicas(fake_ollama, make_settings, start_bot, cluster_settings, redis_client, tmp_path):
    """`await replicas("a", "b")` → [(bot, adapter), ...] on one platform and one Redis."""
    platform = Platform()

    async def start(*names: str, cluster: ClusterSettings | None = None, llm: dict | None = None,
                    **sections) -> list[tuple[Bot, Replica]]:
        started = []
        for name in names:
            shared = (cluster or cluster_settings).model_copy(update={"replica_id": name, "poll_seconds": 0.2})
            settings = make_settings(data_dir=tmp_path / name, llm={"host": fake_ollama.url, "mode": "native", **(llm or {})},
                                     cluster=shared, **sections)
            adapter = Replica(platform)
            started.append((await start_bot(settings, [adapter]), adapter))
        return started

    start.platform = platform  # type: ignore[attr-defined]
    return start


def crash(bot: Bot) -> None:
    """A replica dying mid-turn: its loops end and its tasks are cancelled, nothing is released
    or finished (its lease runs out in Redis)."""
    queue = bot._cluster
    assert queue is not None
    queue.stop_taking()
    for task in queue.tasks():
        task.cancel()


async def until(condition, timeout: float = 15.0) -> float:
    """Seconds until `condition()` held."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_a_redelivered_event_is_answered_once_whichever_replica_gets_it(replicas, fake_ollama):
    fake_ollama.responder = lambda body: Scripted(ANSWER, delay=0.1)
    (a, chat_a), (b, chat_b) = await replicas("a", "b")
    event = ask("How many days older is Messi?", "1001")
    acks = [await chat_a.push(event), await chat_b.push(event), await chat_a.push(event)]
    assert acks == [True, True, True]  # each delivery acknowledged: the platform stops retrying
    await until(lambda: any(p.final == ANSWER for p in chat_a.posted))
    await asyncio.sleep(0.6)  # time for a second answer, were there one
    assert [p.final for p in chat_a.posted] == [ANSWER]
    assert a.finished["answered"] + b.finished["answered"] == 1


async def test_a_burst_of_events_on_one_replica_is_stored_without_refusing_any(replicas, fake_ollama):
    """Redis' client pool refused the 101st command in flight at once: a burst of Slack events
    left some unacknowledged (as if Redis were down), and Slack sent them again 3 s later."""
    fake_ollama.responder = lambda body: Scripted("Noted.")
    ((bot, chat),) = await replicas("a")
    events = [ask(f"burst {n}", f"5{n:03d}", chat=f"D{n}", user=f"U{n}") for n in range(150)]
    assert all(await asyncio.gather(*(chat.push(event) for event in events)))
    await asyncio.wait_for(bot.idle(), 120)
    assert len([p for p in chat.posted if p.final == "Noted."]) == 150


async def test_a_conversations_turns_run_in_order_one_at_a_time_across_replicas(replicas, fake_ollama):
    calls: list[tuple[str, float, float]] = []  # (conversation, start, end) of each model call

    def respond(body: dict) -> Scripted:
        asked = re.findall(r"conversation (\d+) turn (\d+)", body["messages"][-1]["content"])[-1]
        began = time.monotonic()
        calls.append((asked[0], began, began + 0.15))
        return Scripted(f"answer to conversation {asked[0]} turn {asked[1]}", delay=0.15)

    fake_ollama.responder = respond
    (a, chat_a), (b, chat_b) = await replicas("a", "b")
    connections = itertools.cycle([chat_a, chat_b])  # the platform spreads events over both
    for turn in range(3):
        for conversation in range(4):
            message = ask(f"conversation {conversation} turn {turn}", f"{turn + 1}0{conversation}",
                          chat=f"D{conversation}", user=f"U{conversation}")
            assert await next(connections).push(message)
    done = re.compile(r"answer to conversation \d turn \d")  # the cursor gone: streamed to its end
    await until(lambda: len([p for p in chat_a.posted if done.fullmatch(p.final)]) == 12, timeout=30)
    for conversation in range(4):
        answers = [p.final for p in chat_a.in_chat(f"D{conversation}")]
        assert answers == [f"answer to conversation {conversation} turn {t}" for t in range(3)]
        spans = sorted((start, end) for c, start, end in calls if c == str(conversation))
        assert all(later[0] >= earlier[1] - 0.01 for earlier, later in itertools.pairwise(spans)), spans
    assert a.finished["answered"] and b.finished["answered"]  # both replicas did turns
    assert max(sum(1 for _, s, e in calls if s <= start < e) for _, start, _ in calls) > 1  # conversations in parallel


async def test_a_later_message_waits_while_a_busy_replica_may_still_hold_an_earlier_one(replicas, fake_ollama,
                                                                                       redis_client, keys):
    """A third replica's event loop lags 0.6 s: the first message of a conversation reaches it
    late, after the second reached an idle replica. The idle one waits the lag before it starts."""
    fake_ollama.responder = lambda body: Scripted("answer to " + body["messages"][-1]["content"][-6:], delay=0.05)
    (_, chat_a), (_, chat_b) = await replicas("a", "b")
    await redis_client.hset(keys("lag"), "busy", f"0.6 {time.time():.3f}")
    await asyncio.sleep(0.6)  # both replicas have read it
    assert await chat_b.push(ask("second", "3002"))
    await asyncio.sleep(0.2)  # on its way through the busy replica
    assert await chat_a.push(ask("first ", "3001"))
    done = {"answer to first ", "answer to second"}  # streamed to their end (no cursor)
    await until(lambda: len([p for p in chat_a.posted if p.final in done]) == 2)
    assert [p.final for p in chat_a.posted] == ["answer to first ", "answer to second"]


async def test_a_turn_that_waited_to_start_gives_way_to_an_earlier_message_that_arrived_meanwhile(replicas,
                                                                                                 fake_ollama):
    """A busy cluster: the second message's turn was chosen, then waited for a place to prepare;
    the first message reached the other replica only then. The first is answered first."""
    fake_ollama.responder = lambda body: Scripted("answer to " + body["messages"][-1]["content"][-8:], delay=0.5)
    (_, chat_a), (b, chat_b) = await replicas("a", "b", llm={"max_connections": 1}, limits={"preparing": 1})
    assert await chat_b.push(ask("blocker1", "6001", chat="D8", user="U8"))
    await until(lambda: fake_ollama.calls >= 1)  # has the one slot
    assert await chat_b.push(ask("blocker2", "6002", chat="D9", user="U9"))
    await until(lambda: b.services.slots.queue_length() == 1)  # waits for it, holding b's one place to prepare
    assert await chat_b.push(ask("second 2", "6102"))
    await until(lambda: b._preparing.queue_length() == 1)  # chosen, then waiting for that place
    assert await chat_a.push(ask("first  1", "6101"))  # late, on the other replica
    done = {"answer to first  1", "answer to second 2"}
    await until(lambda: len([p for p in chat_a.in_chat("D1") if p.final in done]) == 2)
    assert [p.final for p in chat_a.in_chat("D1")] == ["answer to first  1", "answer to second 2"]


async def recorded(redis_client, keys, message: IncomingMessage, posts: int) -> None:
    """Until the turn's progress record lists `posts` messages: a replica stopped between posting
    a message and recording it leaves that message as it is (the next run posts its own)."""
    key = keys("progress", conversation_key(message))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stored = await redis_client.get(key)
        if stored and len(json.loads(stored)["sent"]) >= posts:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the progress of {key} never listed {posts} message(s)")


async def test_a_replica_stopped_mid_answer_has_it_finished_by_another_editing_its_message(replicas, fake_ollama,
                                                                                       cluster_settings, redis_client,
                                                                                       keys):
    held = asyncio.Event()  # the first run's answer stops after its first piece: the replica dies there
    fake_ollama.script(Scripted(tool_calls=[{"name": "time_delta", "arguments": {
                           "start_time": "1987-06-24", "end_time": "1988-02-26"}}]),
                       Scripted(ANSWER, chunk=6, hold=held),
                       Scripted(tool_calls=[{"name": "time_delta", "arguments": {
                           "start_time": "1987-06-24", "end_time": "1988-02-26"}}]),
                       Scripted(ANSWER, chunk=6))
    ((a, chat_a),) = await replicas("a")
    question = ask("How many days older is Messi than Antonela?", "2001")
    assert await chat_a.push(question)
    await until(lambda: any(p.text.startswith("Messi") for p in chat_a.posted))  # half-written, with the cursor
    await recorded(redis_client, keys, question, 2)  # the step and the answer
    crash(a)
    crashed = time.monotonic()
    ((b, chat_b),) = await replicas("b")
    try:
        await until(lambda: any(p.final == ANSWER for p in chat_b.posted))
        took = time.monotonic() - crashed
    finally:
        held.set()
    assert took < cluster_settings.lease_seconds + 3
    step, answer = chat_b.posted  # the step and the answer, each posted once, then edited by b
    assert step.final.startswith("✅") and "time_delta" in step.final and "247" in step.final
    assert answer.final == ANSWER and answer.text.startswith("Messi") and "▍" in answer.text
    await until(lambda: b.finished["answered"] == 1)  # counted once the turn gives back its place in the lanes
    assert a.finished["answered"] == 0


async def test_a_replica_that_stops_lets_go_at_once_and_the_other_finishes_its_turn(replicas, fake_ollama,
                                                                                   cluster_settings, redis_client, keys):
    held = asyncio.Event()
    fake_ollama.script(Scripted(ANSWER, chunk=6, hold=held), Scripted(ANSWER, chunk=6))
    long_lease = cluster_settings.model_copy(update={"lease_seconds": 10.0})
    ((a, chat_a),) = await replicas("a", cluster=long_lease)
    question = ask("How many days older is Messi?", "5001")
    assert await chat_a.push(question)
    await until(lambda: any(p.text.startswith("Messi") for p in chat_a.posted))
    await recorded(redis_client, keys, question, 1)
    ((b, chat_b),) = await replicas("b", cluster=long_lease)
    try:
        await a.stop(grace=0)  # a rolling restart: the turn under way is cut off, its lease given back
        took = await until(lambda: any(p.final == ANSWER for p in chat_b.posted))
    finally:
        held.set()
    assert took < 3 < long_lease.lease_seconds  # not waiting for the lease to run out
    (answer,) = chat_b.posted
    assert answer.final == ANSWER and b.finished["answered"] == 1


async def test_a_flooded_conversation_refuses_past_its_cap_across_replicas(replicas, fake_ollama):
    held = asyncio.Event()
    fake_ollama.script(Scripted("answer 0", hold=held))
    fake_ollama.responder = lambda body: Scripted("answer")
    (a, chat_a), (b, chat_b) = await replicas("a", "b")
    assert await chat_a.push(ask("question 0", "6000"))
    await until(lambda: any(p.text.startswith("answer") for p in chat_a.posted))  # under way, and held
    for n in range(1, 25):
        assert await (chat_a if n % 2 else chat_b).push(ask(f"question {n}", str(6000 + n)))
    def refusals() -> int:
        return len([p for p in chat_a.posted if p.text.startswith("I'm still working through earlier questions")])

    await until(lambda: refusals() == 5)  # 20 wait or are under way; the last 5 are told to ask again
    assert a.refused["conversation"] + b.refused["conversation"] == 5
    held.set()
    await until(lambda: len([p for p in chat_a.posted if p.final.startswith("answer")]) == 20, timeout=30)
    assert refusals() == 5


async def test_a_replica_that_lost_the_lease_posts_nothing_more_for_that_turn(replicas, fake_ollama, redis_client, keys):
    held = asyncio.Event()
    fake_ollama.script(Scripted(ANSWER, chunk=6, hold=held))
    ((a, chat),) = await replicas("a")
    message = ask("How many days older is Messi?", "4001")
    assert await chat.push(message)
    await until(lambda: any(p.text.startswith("Messi") for p in chat.posted))
    conversation = conversation_key(message)
    await redis_client.set(keys.lease(conversation), "replica-z", px=60_000)  # a's lease ran out; z took over
    held.set()
    await until(lambda: not a._cluster.workers())
    (answer,) = chat.posted
    assert answer.edits == [] and answer.text.startswith("Messi") and answer.text != ANSWER
    assert await redis_client.zcard(keys.conversation(conversation)) == 1  # the turn is left to z, unfinished
    assert a.finished["answered"] == 0


async def test_an_unreachable_redis_leaves_the_event_unacknowledged_and_the_replica_not_ready(
        replicas, fake_ollama, cluster_settings, tmp_path):
    fake_ollama.responder = lambda body: Scripted(ANSWER)
    server = RedisServer(tmp_path / "own-redis").start()
    try:
        own = cluster_settings.model_copy(update={"redis_url": SecretStr(server.url)})
        ((bot, chat),) = await replicas("a", cluster=own)
        ops = OpsServer(bot.services.settings, bot.services, [chat])
        ops.running()
        assert all(check.ok for check in await ops.readiness() if check.name == "shared state")
        server.stop()
        assert not await chat.push(ask("Are you there?", "3001"))
        assert chat.platform_state.acked == []
        (shared,) = [check for check in await ops.readiness() if check.name == "shared state"]
        assert not shared.ok and "Redis does not answer" in shared.detail and "not acknowledged" in shared.detail
        server.start()  # back: the platform's next delivery goes through and is answered
        assert await chat.push(ask("Are you there?", "3001"))
        await until(lambda: any(p.final == ANSWER for p in chat.posted))
    finally:
        server.stop()


async def test_the_terminals_one_off_bot_stays_in_its_process(fake_ollama, make_settings, cluster_settings, tmp_path):
    from kagentbot.bot.services import Services

    fake_ollama.responder = lambda body: Scripted(ANSWER)
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native"}, cluster=cluster_settings)
    chat = ChatAdapter()
    async with Bot(await Services.open(settings), [chat], schedule=False) as bot:  # as `kagentbot ask` builds it
        chat.deliver(ask("hello?", "7001"))
        await bot.idle()
        assert chat.intake is None and [p.final for p in chat.posted] == [ANSWER]
