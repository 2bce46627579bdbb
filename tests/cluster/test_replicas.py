"""Two replicas of the real Bot in one process, each with its own data directory and platform,
sharing one loopback Redis: what one is told (a schedule, a persona, a /kb share opt-in) the
other sees within 2 s; only the leader runs the scheduler, and the next one takes it over."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

import pytest

from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from kagentbot.chat.messages import IncomingMessage
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import complete

SEEN_WITHIN = 2.0  # seconds: a change on one replica is seen by the others


_ids = itertools.count(1)


def say(text: str, user: str = "U1", chat: str = "C1", mid: str = "", **kw) -> IncomingMessage:
    """Each message its own id, as a platform gives it (the replicas drop a redelivered id)."""
    return IncomingMessage("testchat", chat, user, text, message_id=mid or f"m{next(_ids)}", mentions_bot=True, **kw)


@pytest.fixture
async def replicas(fake_ollama, make_settings, cluster_settings, redis_client, tmp_path):
    """`await replicas("a")` → (bot, chat): a replica started on the shared Redis (`schedule`
    False: a terminal session, as `kagentbot chat` starts it)."""
    started: list[Bot] = []

    async def start(name: str, schedule: bool = True) -> tuple[Bot, ChatAdapter]:
        cluster = {"enabled": True, "redis_url": cluster_settings.redis_url.get_secret_value(),
                   "key_prefix": cluster_settings.key_prefix, "replica_id": f"replica-{name}",
                   "lease_seconds": 1.5, "connect_timeout": 0.5, "follow_seconds": 0.2}
        settings = make_settings(data_dir=tmp_path / name, llm={"host": fake_ollama.url}, admins="testchat:BOSS",
                                 cluster=cluster)
        chat = ChatAdapter()
        bot = Bot(await Services.open(settings), [chat], schedule=schedule)
        await bot.start()
        started.append(bot)
        return bot, chat

    yield start
    for bot in started:
        if bot._running:
            await bot.stop(grace=0)


async def command(replica: tuple[Bot, ChatAdapter], text: str, **kw) -> str:
    bot, chat = replica
    before = len(chat.posted)
    chat.deliver(say(text, **kw))
    await bot.idle()
    return "\n".join(p.final for p in chat.posted[before:])


async def until(check, seconds: float) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not seen in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_schedule_added_on_a_follower_is_run_by_the_leader_and_the_next_leader_takes_over(replicas, fake_ollama, tmp_path):
    a, b = await replicas("a"), await replicas("b")
    leader, follower = a[0].services.scheduler, b[0].services.scheduler
    assert leader.running and not follower.running  # the follower keeps /schedule, times nothing

    reply = await command(b, "/schedule add every 30 minutes What changed today?")
    assert reply.startswith("Scheduled:")
    (spec,) = follower.book.file.jobs.values()

    async def planned_on_leader() -> bool:
        return leader._aps.get_job(spec.id) is not None

    assert await until(planned_on_leader, SEEN_WITHIN) <= SEEN_WITHIN
    assert not (tmp_path / "a" / "schedules.json").exists() and not (tmp_path / "b" / "schedules.json").exists()

    reply = await command(a, "/schedule add every 45 minutes Anything urgent?", user="U2")
    (second,) = [job for job in leader.book.file.jobs.values() if job.id != spec.id]
    assert second.id in await command(b, "/schedule list", user="U2")  # listed on the follower at once

    fake_ollama.script(complete(), "Three things changed.")
    leader._aps.modify_job(spec.id, next_run_time=datetime.now(UTC))

    async def answered() -> bool:
        await a[0].idle()
        return any(p.final == "Three things changed." for p in a[1].posted)

    await until(answered, 5)
    assert not any(p.final == "Three things changed." for p in b[1].posted)  # run once, by the leader

    await a[0].stop(grace=0)  # the leader goes: the follower takes the scheduler over

    async def taken_over() -> bool:
        return follower.running and follower._aps.get_job(spec.id) is not None

    await until(taken_over, 1.5 + 1)


async def test_a_persona_or_a_share_opt_in_changed_on_one_replica_is_seen_on_the_other_within_two_seconds(replicas):
    a, b = await replicas("a"), await replicas("b")
    reply = await command(a, '/persona create name=pirate display_name="Pirate" bio="Talks like a pirate."', user="BOSS")
    assert "pirate" in reply.lower()
    assert "From now on you talk to pirate." in await command(a, "/persona use pirate", user="U7")
    asker = say("hello", user="U7", chat="C9")

    async def pirate_on_b() -> bool:
        return (await b[0].services.persona_for(asker)).name == "pirate"

    assert await until(pirate_on_b, SEEN_WITHIN) <= SEEN_WITHIN
    assert "pirate" in [listed.persona.name for listed in await b[0].services.personas.list()]
    actions = [(entry.actor, entry.action) for entry in await b[0].services.personas.audit()]
    assert actions == [("testchat:BOSS", "create"), ("testchat:U7", "use")]

    await command(a, "/kb share on", user="U7", chat="C9")
    audience = say("q", user="U7", chat="C9").audience

    async def shared_on_b() -> bool:
        return await b[0].services.sharing().is_on(audience.user_scope, audience.chat_scope)

    assert await until(shared_on_b, SEEN_WITHIN) <= SEEN_WITHIN
    assert [entry.action for entry in await b[0].services.sharing().audit()] == ["share-on"]


async def test_the_command_line_changes_what_the_replicas_share(make_settings, cluster_settings, redis_client, tmp_path, capsys):
    """`kagentbot schedule` and `kagentbot persona`, run beside a cluster, change its shared state."""
    from kagentbot.bot.replicas import persona_files, schedule_book
    from kagentbot.cli import build_parser
    from kagentbot.cluster.shared import open_shared
    from kagentbot.persona.store import PersonaStore

    cluster = cluster_settings.model_copy(update={"replica_id": "cli"}).model_dump()
    operator = make_settings(data_dir=tmp_path / "operator", cluster=cluster)
    for argv in (["schedule", "add", "--user", "slack:U1", "--chat", "C9", "every day at 08:30", "news?"],
                 ["persona", "use", "research", "--user", "ann"]):
        args = build_parser().parse_args(argv)
        assert await args.func(args, operator) == 0
    assert "cluster.follow_seconds" in capsys.readouterr().out

    replica = make_settings(data_dir=tmp_path / "replica", cluster=cluster)
    shared = await open_shared(replica.cluster)
    try:
        (spec,) = schedule_book(replica, shared).file.jobs.values()
        assert (spec.owner, spec.chat_id, spec.question) == ("slack:U1", "C9", "news?")
        personas = await PersonaStore.open(replica, persona_files(shared))
        assert (await personas.resolve("console:ann")).persona.name == "research"
    finally:
        await shared.close()
    assert not (tmp_path / "operator" / "schedules.json").exists()


async def test_a_terminal_session_beside_the_replicas_never_takes_the_lead(replicas, redis_client, keys):
    terminal, _ = await replicas("console", schedule=False)
    assert await redis_client.get(keys.leader()) is None and terminal.services.scheduler is None
    server, _ = await replicas("server")
    assert server.services.scheduler.running
    assert (await redis_client.get(keys.leader())).startswith("replica-server ")
