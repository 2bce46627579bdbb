"""`/schedule ...`: scheduled questions from any chat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from kagentbot.chat.commands import Command, CommandContext, CommandError, Reply

if TYPE_CHECKING:
    from kagentbot.bot.schedule import Scheduler



class ScheduleServices(Protocol):
    """What /schedule reads of the bot's Services."""

    @property
    def scheduler(self) -> Scheduler | None: ...


USAGE = "/schedule add <when> <question> | list | remove ID | pause ID | resume ID | tz ZONE"


def schedule_command() -> Command:
    return Command("schedule", "ask a question on a schedule and post the answer here", USAGE, _handle)


async def _handle(ctx: CommandContext[ScheduleServices], args: list[str]) -> Reply:
    from kagentbot.bot.schedule import ScheduleError, describe

    scheduler = ctx.services.scheduler
    if scheduler is None:
        return Reply("Scheduling is not running in this bot.", private=True)
    if not args:
        raise CommandError("Say what to do.")
    scheduler.sync()  # what was changed elsewhere since (another replica, the command line)
    action, rest = args[0].lower(), args[1:]
    owner = ctx.message.user_key
    try:
        if action == "add":
            return await _add(ctx, scheduler)
        if action == "list":
            jobs = scheduler.book.visible(owner, ctx.is_admin)
            if not jobs:
                return Reply("No scheduled questions.", private=True)
            return Reply("\n".join(describe(j, scheduler.book.next_run(j)) for j in jobs), private=True)
        if action == "tz":
            if len(rest) != 1:
                raise CommandError("Give one time zone, e.g. Europe/Berlin.")
            return Reply(f"Your time zone for new schedules is {scheduler.book.set_timezone(owner, rest[0])}.", private=True)
        if action in ("remove", "pause", "resume"):
            if len(rest) != 1:
                raise CommandError("Give the job id (see /schedule list).")
            if action == "remove":
                spec = scheduler.remove(rest[0], owner, ctx.is_admin)
                return Reply(f"Removed {spec.id}: {spec.question}", private=True)
            spec = scheduler.set_paused(rest[0], owner, ctx.is_admin, action == "pause")
            return Reply(f"{'Paused' if spec.paused else 'Resumed'} {spec.id}.", private=True)
    except ScheduleError as exc:
        raise CommandError(str(exc)) from exc
    raise CommandError(f"Unknown action {action!r}.")


async def _add(ctx: CommandContext[ScheduleServices], scheduler) -> Reply:
    from kagentbot.bot.schedule import describe, split_when

    # The raw text keeps the quotes around a cron expression that shlex-split args would lose.
    text = ctx.message.text.strip().split(None, 2)
    if len(text) < 3:
        raise CommandError("Give when and the question.")
    when, question = split_when(text[2])
    m = ctx.message
    spec = await scheduler.add_off_loop(m.user_key, m.platform, m.chat_id, when, question, thread_id=m.thread_id, is_dm=m.is_dm)
    return Reply(f"Scheduled: {describe(spec, scheduler.book.next_run(spec))}")
