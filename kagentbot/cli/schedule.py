"""`kagentbot schedule ...`: scheduled questions from the command line, on the job file in the
data directory. A running bot re-reads the file every scheduler.reload_seconds."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

NOTE = ("Changes are written to <data_dir>/schedules.json; a running bot picks them up within "
        "scheduler.reload_seconds (30 s by default). With cluster.enabled they go to the shared Redis, "
        "and the leader picks them up within cluster.follow_seconds.")
PLATFORMS = ("slack", "discord", "telegram")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("schedule", help="scheduled questions (list, add, remove)", description=NOTE)
    actions = parser.add_subparsers(dest="schedule_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list scheduled questions", description=NOTE)
    listing.add_argument("--user", help="only this user's jobs (a user key such as slack:U1, or a console name)")
    add = actions.add_parser("add", help="schedule a question", description=NOTE)
    add.add_argument("--user", required=True, help="owner and, without --chat, whom to DM: slack:U1, discord:ID or telegram:ID")
    add.add_argument("--platform", choices=PLATFORMS, help="platform to post on (default: the user key's platform)")
    add.add_argument("--chat", help="chat id to post in (default: a DM with the user)")
    add.add_argument("when", help='"every day at 08:30", "every 2 hours", a quoted cron expression ...')
    add.add_argument("question", nargs="+")
    remove = actions.add_parser("remove", help="remove a scheduled question", description=NOTE)
    remove.add_argument("id")
    remove.add_argument("--user", help="remove only if this user owns it")
    parser.set_defaults(func=run)


def user_key(user: str, platform: str | None = None) -> str:
    if ":" in user:
        return user
    return f"{platform or 'console'}:{user}"


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from kagentbot.bot import replicas

    shared = await replicas.open_shared(settings)  # cluster.enabled: the replicas' shared book
    try:
        return _act(args, replicas.schedule_book(settings, shared))
    finally:
        if shared is not None:
            await shared.close()


def _act(args: argparse.Namespace, book: Any) -> int:
    from kagentbot.bot.schedule import ScheduleError, describe

    try:
        if args.schedule_action == "list":
            jobs = book.owned_by(user_key(args.user)) if args.user else book.visible("", True)
            for spec in jobs:
                print(describe(spec, book.next_run(spec)))
            if not jobs:
                print("No scheduled questions.")
            return 0
        if args.schedule_action == "add":
            owner = user_key(args.user, args.platform)
            platform = args.platform or owner.split(":", 1)[0]
            if platform not in PLATFORMS:
                print(f"kagentbot: answers are posted on Slack, Discord or Telegram, and {args.user!r} names no "
                      "platform: give --user as slack:U123, discord:123 or telegram:123 (or add --platform)")
                return 2
            user_id = owner.split(":", 1)[1]
            chat = args.chat or user_id
            spec = book.add(owner, platform, chat, args.when, " ".join(args.question), is_dm=args.chat is None)
            print(f"Scheduled: {describe(spec, book.next_run(spec))}")
            print(NOTE)
            return 0
        owner = user_key(args.user) if args.user else ""
        spec = book.remove(args.id, owner, is_admin=not args.user)
        print(f"Removed {spec.id}: {spec.question}")
        return 0
    except ScheduleError as exc:
        print(f"kagentbot: {exc}")
        return 2
