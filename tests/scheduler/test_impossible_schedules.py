"""A cron line that can never fire (30 February) is refused with a message that says so, and
the search that finds it out is bounded and runs off the event loop: eight such commands at
once leave the bot free to answer everyone else."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger

from kagentbot.bot.app import Bot
from kagentbot.bot.schedule import ScheduleBook, ScheduleError
from kagentbot.bot.services import Services
from kagentbot.chat.messages import IncomingMessage
from tests.bot.chat_adapter import ChatAdapter

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
async def bot(fake_ollama, make_settings):
    chat = ChatAdapter()
    running = Bot(await Services.open(make_settings(llm={"host": fake_ollama.url})), [chat])
    await running.start()
    yield running, chat
    await running.stop(grace=0)


@pytest.fixture
def cron_searches(monkeypatch):
    """Every search for a cron trigger's next time: on which thread, and where it must stop."""
    seen: list[tuple[int, datetime | None]] = []
    search = CronTrigger.get_next_fire_time

    def watched(self, previous, now):
        seen.append((threading.get_ident(), self.end_date))
        return search(self, previous, now)

    monkeypatch.setattr(CronTrigger, "get_next_fire_time", watched)
    return seen


async def test_impossible_schedules_are_refused_off_the_event_loop(bot, cron_searches):
    running, chat = bot
    stalls = []

    async def tick() -> None:  # how late the loop gets to a 10 ms timer: a blocked loop shows here
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            stalls.append(loop.time() - due)

    ticker = asyncio.create_task(tick())
    for n in range(8):
        chat.deliver(IncomingMessage("testchat", f"C{n}", f"U{n}", '/schedule add "0 0 30 2 *" what day is it?',
                                     message_id=str(n + 1)))
    await running.idle()
    ticker.cancel()
    print(f"\nlongest event-loop stall while refusing 8 impossible schedules: {max(stalls, default=0) * 1000:.0f} ms")
    replies = [p.final for p in chat.posted]
    assert len(replies) == 8
    assert all("never fires" in r and "30 February" in r and "in the past" not in r for r in replies)
    assert running.services.scheduler.book.file.jobs == {}
    loop_thread = threading.get_ident()
    assert cron_searches and all(thread != loop_thread for thread, _ in cron_searches)
    assert all(end is not None for _, end in cron_searches)  # bounded: never on to the year 9999


@pytest.mark.parametrize("when", ["0 0 30 2 *", "0 12 31 4 *", "0 0 31 6,9,11 *"])
def test_lines_that_never_fire_say_so(make_settings, when):
    book = ScheduleBook(make_settings())
    with pytest.raises(ScheduleError, match="never fires"):
        book.add("slack:U1", "slack", "C1", when, "q", now=NOW)
    with pytest.raises(ScheduleError, match="in the past"):  # a date that is gone is still "past"
        book.add("slack:U1", "slack", "C1", "at 2020-01-01 10:00", "q", now=NOW)


def test_a_rare_but_real_date_is_accepted(make_settings):
    """29 February on a Monday: next in 2044, well inside the search's reach."""
    book = ScheduleBook(make_settings())
    spec = book.add("slack:U1", "slack", "C1", "0 9 29 2 mon", "leap day standup?", now=NOW)
    assert book.next_run(spec, NOW).year == 2044
