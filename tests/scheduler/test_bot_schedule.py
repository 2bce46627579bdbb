"""/schedule through the real Bot and the in-memory platform; a job fires end to end through the
fake Ollama; upkeep keeps retrieval results unchanged."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from kagentbot.bot.app import Bot
from kagentbot.bot.schedule import ScheduleBook, run_upkeep
from kagentbot.bot.services import Services
from kagentbot.chat.messages import IncomingMessage
from kagentbot.memory.ingest import from_text
from kagentbot.memory.types import Audience
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import complete, task


def say(text: str, user: str = "U1", chat: str = "C1", mid: str = "m1", **kw) -> IncomingMessage:
    return IncomingMessage("testchat", chat, user, text, message_id=mid, mentions_bot=True, **kw)


@pytest.fixture
async def bot(fake_ollama, make_settings):
    settings = make_settings(llm={"host": fake_ollama.url}, admins="testchat:BOSS")
    chat = ChatAdapter()
    running = Bot(await Services.open(settings), [chat])
    await running.start()
    yield running, chat
    await running.stop()


async def command(bot_and_chat, text: str, **kw) -> str:
    bot, chat = bot_and_chat
    before = len(chat.posted)
    chat.deliver(say(text, **kw))
    await bot.idle()
    return "\n".join(p.final for p in chat.posted[before:])


async def test_a_scheduled_question_fires_through_the_bot(bot, fake_ollama):
    running, chat = bot
    reply = await command(bot, "/schedule add every day at 08:30 How many days from 2026-01-01 to 2026-03-01?",
                          chat="D7", is_dm=True)
    assert reply.startswith("Scheduled:") and "every day at 08:30" in reply and "UTC" in reply
    (spec,) = running.services.scheduler.book.file.jobs.values()
    assert (spec.owner, spec.chat_id, spec.is_dm) == ("testchat:U1", "D7", True)
    assert running.services.scheduler._aps.get_job(spec.id) is not None

    fake_ollama.script(task("days between", "time_delta", start_time="2026-01-01", end_time="2026-03-01"),
                       complete(), "59 days.")
    before = len(chat.posted)
    await running.services.scheduler.run_job(spec.id)
    await running.idle()
    step, answer = chat.posted[before:]
    assert step.where.chat_id == answer.where.chat_id == "D7"
    assert "time_delta" in step.text and "59" in step.final
    assert answer.final == "59 days."
    # The question went to the model as the owner's own question.
    assert "How many days from 2026-01-01 to 2026-03-01?" in fake_ollama.prompts()[0]
    assert running.services.scheduler.book.file.jobs[spec.id].last_run


async def test_chat_commands_ownership_and_list(bot):
    running, _ = bot
    await command(bot, '/schedule add "0 9 * * 1" holidays next month?')
    (spec,) = running.services.scheduler.book.file.jobs.values()
    assert spec.when == "0 9 * * 1"
    assert "No scheduled questions" in await command(bot, "/schedule list", user="U2")
    assert "No scheduled question" in await command(bot, f"/schedule pause {spec.id}", user="U2")
    assert "No scheduled question" in await command(bot, f"/schedule remove {spec.id}", user="U2")
    assert spec.id in await command(bot, "/schedule list", user="BOSS")
    assert "Paused" in await command(bot, f"/schedule pause {spec.id}", user="BOSS")
    assert running.services.scheduler._aps.get_job(spec.id) is None
    listing = await command(bot, "/schedule list")
    assert "(paused)" in listing and "next —" in listing
    assert "Resumed" in await command(bot, f"/schedule resume {spec.id}")
    assert running.services.scheduler._aps.get_job(spec.id) is not None
    assert "Europe/Berlin" in await command(bot, "/schedule tz Europe/Berlin")
    await command(bot, "/schedule add every monday at 10:00 weekly summary")
    assert "Europe/Berlin" in await command(bot, "/schedule list")
    bad = await command(bot, "/schedule add whenever you like tell me a joke")
    assert "Accepted forms" in bad and "Usage: /schedule" in bad
    assert "Removed" in await command(bot, f"/schedule remove {spec.id}")
    assert len(ScheduleBook(running.services.settings).file.jobs) == 1


async def test_upkeep_leaves_retrieval_results_unchanged(make_settings):
    settings = make_settings(memory={"conversation_retention_days": 1, "task_retention_days": 1})
    services = await Services.open(settings)
    try:
        alice = Audience("user:slack:ALICE")
        store = services.memory
        for title, text in [("tea", "Pu'er tea is grown in the hills of Yunnan province."),
                            ("pandas", "Giant pandas eat bamboo for more than ten hours a day."),
                            ("skiing", "Zermatt has skiing all year on the Theodul glacier.")]:
            await store.add_document(from_text(text, settings.memory, title=title), alice.user_scope)
        await store.remember(alice, "where is tea grown", "Yunnan", [])
        queries = ["where does tea grow", "what do pandas eat", "summer skiing"]
        before = [[(p.text, p.source) for p in await store.search(alice, q, 3)] for q in queries]
        report = await run_upkeep(store, settings)
        after = [[(p.text, p.source) for p in await store.search(alice, q, 3)] for q in queries]
        assert report["tables_optimized"] == 3 and report["conversation_pruned"] == 0 and report["tasks_pruned"] == 0
        assert after == before and "Yunnan" in before[0][0][0]
    finally:
        await services.close()


async def test_a_job_missed_while_down_runs_once_when_the_bot_starts(fake_ollama, make_settings):
    from datetime import datetime, timedelta, timezone

    settings = make_settings(llm={"host": fake_ollama.url})
    book = ScheduleBook(settings)
    down_since = datetime.now(timezone.utc) - timedelta(minutes=100)
    spec = book.add("testchat:U1", "testchat", "C5", "every 30 minutes", "snow report?", now=down_since)
    book.mark_run(spec.id, down_since)
    fake_ollama.script(complete(), "Fresh snow.", complete(), "Unexpected second run.")
    chat = ChatAdapter()
    running = Bot(await Services.open(settings), [chat])
    await running.start()
    try:
        await running.idle()
        assert [p.final for p in chat.in_chat("C5")] == ["Fresh snow."]
    finally:
        await running.stop()


async def test_the_cli_and_a_running_bot_change_the_job_file_without_losing_each_others_jobs(bot):
    running, _ = bot
    scheduler = running.services.scheduler
    reply = await command(bot, "/schedule add every day at 08:30 the bot's job")
    (bots_job,) = scheduler.book.file.jobs
    cli = ScheduleBook(running.services.settings)  # `kagentbot schedule add`, another process
    cli_job = cli.add("console:ops", "testchat", "C9", "every day at 09:00", "the CLI's job")
    scheduler.book.mark_run(bots_job, datetime.now(timezone.utc))
    assert ScheduleBook(running.services.settings).file.jobs.keys() == {bots_job, cli_job.id}  # not lost
    assert scheduler._aps.get_job(cli_job.id) is None  # read while marking the run, not planned yet
    assert scheduler.sync() is True and scheduler._aps.get_job(cli_job.id) is not None
    assert scheduler.sync() is False
    cli.remove(cli_job.id, "console:ops", is_admin=False)
    assert scheduler.sync() is True and scheduler._aps.get_job(cli_job.id) is None
    assert "Scheduled:" in reply
