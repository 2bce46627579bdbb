"""When-phrases, cron, DST, limits, ownership and persistence of the job file."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from kagentbot.bot.schedule import (
    JobFile, ScheduleBook, ScheduleError, Scheduler, next_runs, parse_when, split_when, trigger_of,
)

UTC = timezone.utc
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def first(when: str, tz: str = "UTC", after: datetime = NOW) -> datetime:
    return next_runs(parse_when(when, tz, after), after, 1)[0]


@pytest.mark.parametrize("when, expected", [
    ("every day at 08:30", datetime(2026, 3, 21, 8, 30, tzinfo=UTC)),
    ("every weekday at 9:00", datetime(2026, 3, 23, 9, 0, tzinfo=UTC)),  # 2026-03-20 is a Friday
    ("every monday at 10:00", datetime(2026, 3, 23, 10, 0, tzinfo=UTC)),
    ("every Saturday at 7:05", datetime(2026, 3, 21, 7, 5, tzinfo=UTC)),
    ("every 30 minutes", NOW + timedelta(minutes=30)),
    ("every 2 hours", NOW + timedelta(hours=2)),
    ("at 2026-12-24 18:00", datetime(2026, 12, 24, 18, 0, tzinfo=UTC)),
    ("30 8 * * 1-5", datetime(2026, 3, 23, 8, 30, tzinfo=UTC)),
])
def test_phrases_and_cron(when, expected):
    assert first(when) == expected


@pytest.mark.parametrize("bad", ["tomorrow", "every day at 25:00", "every 0 minutes", "61 * * * *", "at 2026-13-01 10:00", ""])
def test_invalid_input_says_what_is_accepted(bad):
    with pytest.raises(ValueError) as info:
        parse_when(bad, "UTC")
    assert "every weekday at 9:00" in str(info.value) and "cron" in str(info.value)


def test_split_when_takes_the_phrase_then_the_question():
    assert split_when("every day at 08:30 weather in Zermatt?") == ("every day at 08:30", "weather in Zermatt?")
    assert split_when('"0 9 * * 1" holidays next month') == ("0 9 * * 1", "holidays next month")
    assert split_when("every 2 hours at 2026-12-24 18:00 is it late?")[0] == "every 2 hours"
    with pytest.raises(ScheduleError, match="Accepted forms"):
        split_when("weather at noon")


def test_next_runs_across_dst_changes():
    # Berlin springs forward on 2026-03-29: 08:30 local moves from UTC+1 to UTC+2.
    runs = next_runs(parse_when("every day at 08:30", "Europe/Berlin"), datetime(2026, 3, 27, tzinfo=UTC), 4)
    assert [r.astimezone(UTC).hour for r in runs] == [7, 7, 6, 6]
    assert all(r.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "08:30" for r in runs)
    # New York falls back on 2026-11-01.
    runs = next_runs(parse_when("0 9 * * *", "America/New_York"), datetime(2026, 10, 30, tzinfo=UTC), 4)
    assert [r.astimezone(UTC).hour for r in runs] == [13, 13, 14, 14]


def test_limits(make_settings):
    book = ScheduleBook(make_settings(scheduler={"max_jobs_per_user": 2, "min_interval_minutes": 30}))
    with pytest.raises(ScheduleError, match="more often than every 30 minutes"):
        book.add("slack:U1", "slack", "C1", "every 15 minutes", "q", now=NOW)
    with pytest.raises(ScheduleError, match="more often"):
        book.add("slack:U1", "slack", "C1", "*/10 * * * *", "q", now=NOW)
    with pytest.raises(ScheduleError, match="past"):
        book.add("slack:U1", "slack", "C1", "at 2020-01-01 10:00", "q", now=NOW)
    book.add("slack:U1", "slack", "C1", "every 30 minutes", "q1", now=NOW)
    book.add("slack:U1", "slack", "C1", "every day at 08:00", "q2", now=NOW)
    with pytest.raises(ScheduleError, match="limit"):
        book.add("slack:U1", "slack", "C1", "every day at 09:00", "q3", now=NOW)
    book.add("slack:U2", "slack", "C1", "every day at 09:00", "other user", now=NOW)


def test_ownership(make_settings):
    book = ScheduleBook(make_settings())
    spec = book.add("slack:U1", "slack", "C1", "every day at 08:00", "mine", now=NOW)
    for act in (lambda: book.remove(spec.id, "slack:U2", False), lambda: book.set_paused(spec.id, "slack:U2", False, True)):
        with pytest.raises(ScheduleError, match="No scheduled question"):
            act()
    assert book.visible("slack:U2", False) == [] and len(book.visible("slack:U2", True)) == 1
    assert book.set_paused(spec.id, "slack:U1", False, True).paused
    assert book.next_run(book.file.jobs[spec.id]) is None
    book.remove(spec.id, "slack:ADMIN", True)
    assert book.file.jobs == {}


def test_timezone_per_user_and_persistence(make_settings):
    settings = make_settings(scheduler={"timezone": "America/New_York"})
    book = ScheduleBook(settings)
    with pytest.raises(ScheduleError, match="Unknown time zone"):
        book.set_timezone("slack:U1", "Mars/Olympus")
    book.set_timezone("slack:U1", "Europe/Berlin")
    mine = book.add("slack:U1", "slack", "C1", "every day at 08:30", "mine", now=NOW)
    theirs = book.add("slack:U2", "slack", "C2", "every day at 08:30", "theirs", thread_id="T9", now=NOW)
    assert (mine.timezone, theirs.timezone) == ("Europe/Berlin", "America/New_York")
    again = ScheduleBook(settings)  # a restart: a new book over the same file
    assert again.file.jobs == book.file.jobs and again.timezone_for("slack:U1") == "Europe/Berlin"
    assert again.file.jobs[theirs.id].thread_id == "T9"
    assert json.loads(book.file.path.read_text())["jobs"][0]["question"] == "mine"


async def test_missed_jobs_run_once_at_start_not_in_a_burst(make_settings):
    settings = make_settings(scheduler={"misfire_grace_seconds": 3600})
    down_since = datetime.now(UTC) - timedelta(minutes=155)
    book = ScheduleBook(settings)
    often = book.add("slack:U1", "slack", "C1", "every 30 minutes", "due 5 times", now=down_since)
    book.mark_run(often.id, down_since)
    stale = book.add("slack:U2", "slack", "C1", "every day at 00:00", "missed long ago", now=down_since - timedelta(days=3))
    book.mark_run(stale.id, down_since - timedelta(days=2))
    paused = book.add("slack:U3", "slack", "C1", "every 30 minutes", "paused", now=down_since)
    book.set_paused(paused.id, "slack:U3", False, True)
    missed_times = [t for t in next_runs(trigger_of(book.file.jobs[often.id]), down_since, 10) if t <= datetime.now(UTC)]
    assert len(missed_times) == 5

    fired = []

    async def fire(spec):
        fired.append(spec.id)

    scheduler = Scheduler(settings, fire)  # a restart over the same file
    try:
        now = datetime.now(UTC)
        # The daily midnight job is only due within the grace if midnight was under an hour ago.
        stale_due = now - now.replace(hour=0, minute=0, second=0, microsecond=0) <= timedelta(hours=1)
        await scheduler.start()
        assert fired == [often.id] + ([stale.id] if stale_due else [])
        assert datetime.fromisoformat(scheduler.book.file.jobs[often.id].last_run) >= now
        assert scheduler._aps.get_job(often.id).next_run_time > now and scheduler._aps.get_job(paused.id) is None
    finally:
        scheduler.shutdown()
    # A second restart right away finds nothing missed.
    again = Scheduler(settings, fire)
    try:
        await again.start()
        assert fired.count(often.id) == 1
    finally:
        again.shutdown()


def test_job_file_is_replaced_atomically(make_settings, tmp_path):
    file = JobFile(tmp_path / "d" / "schedules.json")
    file.timezones["slack:U1"] = "UTC"
    file.save()
    assert [p.name for p in file.path.parent.iterdir()] == ["schedules.json"]


@pytest.mark.parametrize("expression, days", [
    ("0 9 * * 1-5", {0, 1, 2, 3, 4}), ("0 9 * * 0", {6}), ("0 9 * * 7", {6}),
    ("0 9 * * 0-2", {6, 0, 1}), ("0 9 * * sat,sun", {5, 6}), ("0 9 * * 5-7", {4, 5, 6}),
])
def test_cron_weekdays_count_from_sunday(expression, days):
    runs = next_runs(parse_when(expression, "UTC"), NOW, 14)
    assert {r.weekday() for r in runs} == days
