"""`kagentbot schedule ...` through the real argument parser, on the job file a bot loads."""

from __future__ import annotations

import asyncio

from kagentbot.bot.schedule import ScheduleBook
from kagentbot.cli import build_parser


def cli(settings, *argv: str) -> int:
    args = build_parser().parse_args(["schedule", *argv])
    return asyncio.run(args.func(args, settings))


def test_add_list_remove(make_settings, capsys):
    settings = make_settings()
    assert cli(settings, "add", "--user", "slack:U1", "--chat", "C9", "every weekday at 9:00", "standup", "notes?") == 0
    assert cli(settings, "add", "--user", "ann", "0 8 * * *", "news") == 2  # nothing delivers to the console
    assert "names no platform" in capsys.readouterr().out
    assert cli(settings, "add", "--user", "ann", "--platform", "telegram", "0 8 * * *", "news") == 0
    assert "reload_seconds" in capsys.readouterr().out
    jobs = {j.owner: j for j in ScheduleBook(settings).file.jobs.values()}
    slack, ann = jobs["slack:U1"], jobs["telegram:ann"]
    assert (slack.platform, slack.chat_id, slack.is_dm, slack.question) == ("slack", "C9", False, "standup notes?")
    assert (ann.platform, ann.chat_id, ann.is_dm) == ("telegram", "ann", True)
    cli(settings, "list", "--user", "telegram:ann")
    out = capsys.readouterr().out
    assert ann.id in out and slack.id not in out
    assert cli(settings, "remove", slack.id, "--user", "telegram:ann") == 2
    assert "No scheduled question" in capsys.readouterr().out
    assert cli(settings, "remove", slack.id, "--user", "slack:U1") == 0
    assert cli(settings, "add", "--user", "telegram:ann", "sometime", "x") == 2
    assert "Accepted forms" in capsys.readouterr().out
    assert list(ScheduleBook(settings).file.jobs) == [ann.id]
