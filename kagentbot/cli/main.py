"""The `kagentbot` command. Imports stay light at start: each subcommand imports what it needs."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kagentbot.cli.kb import os_user

if TYPE_CHECKING:
    from rich.console import Console

    from kagentbot.adapters.console_adapter import ConsoleAdapter
    from kagentbot.bot.app import Bot
    from kagentbot.chat.messages import IncomingMessage
    from kagentbot.chat.render import Verbosity
    from kagentbot.config.settings import Settings

# Feature modules that add subcommands: each has register(subparsers), setting func=run(args, settings).
COMMAND_MODULES: tuple[str, ...] = (
    "kagentbot.cli.kb", "kagentbot.cli.persona", "kagentbot.cli.tools", "kagentbot.cli.schedule",
    "kagentbot.eval.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kagentbot",
        description="A KwaiAgents-style planning agent for Slack, Discord, Telegram and the terminal.",
    )
    parser.add_argument("--config", type=Path, help="settings file (default: ./kagentbot.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="ask one question: prints each step and the answer")
    ask.add_argument("question")
    _add_user(ask)
    ask.add_argument("--quiet", action="store_true", help="print only the answer")
    ask.set_defaults(func=run_ask)

    chat = sub.add_parser("chat", help="an interactive conversation in the terminal")
    _add_user(chat)
    chat.set_defaults(func=run_chat)

    run = sub.add_parser(
        "run", help="start the bot on every chat platform that has credentials",
        description="Start the bot on every chat platform with credentials in the environment or "
                    "kagentbot.toml, and answer there until Ctrl-C: Slack (KAGENTBOT_SLACK__BOT_TOKEN and "
                    "KAGENTBOT_SLACK__APP_TOKEN, or MODE=http with SIGNING_SECRET), Discord "
                    "(KAGENTBOT_DISCORD__TOKEN), Telegram (KAGENTBOT_TELEGRAM__TOKEN). "
                    "`kagentbot doctor` checks the setup first.")
    run.set_defaults(func=run_platforms)

    doctor = sub.add_parser("doctor", help="check the LLM server, the model, the data directory and credentials")
    doctor.set_defaults(func=run_doctor)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _add_user(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=os_user(), help="whose memory and persona to use (default: your OS user)")



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.func is run_ask and not args.question.strip():
        parser.error("ask needs a question, e.g. kagentbot ask \"What day is it today?\"")
    from kagentbot.config.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 2
    _configure_logging("DEBUG" if args.verbose else settings.log_level, settings)
    _keep_data_private(settings)
    from kagentbot.memory.errors import StoreError
    from kagentbot.memory.startup.lazy_client import start_import

    if args.func in (run_ask, run_chat):
        start_import(settings)  # their first turn recalls from the store: LanceDB loads meanwhile
    from kagentbot.bot.replicas import SharedStateUnavailable
    from kagentbot.tools.catalog import CatalogError

    try:
        return asyncio.run(args.func(args, settings))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kagentbot tools list | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except (CatalogError, StoreError, SharedStateUnavailable) as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 2


def _configure_logging(level: str, settings: Settings) -> None:
    from kagentbot.config.logs import configure_logging
    from kagentbot.ops.logs import use_format

    configure_logging(level, settings)  # one redacting handler on the root logger
    use_format(settings.log.format)  # json: one object a line, through the same handler and its filters


def _keep_data_private(settings: Settings) -> None:
    """Files the bot writes from here on (memory, personas, schedules, LanceDB's own) are its OS
    user's alone; those already there are made so once."""
    from kagentbot.config.files import make_data_private

    os.umask(0o077)
    make_data_private(settings)


async def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    """One question (or command) through the Bot, as on every platform: 0 when it was answered."""
    from rich.console import Console

    from kagentbot.adapters.console_adapter import ConsoleAdapter
    from kagentbot.chat.commands import CommandError
    from kagentbot.memory.ingest import IngestError

    verbosity: Verbosity = "off" if args.quiet else "debug" if args.verbose else "thread"
    adapter = ConsoleAdapter(Console(highlight=False))
    try:
        message = _typed(args.question, args.user)
    except (IngestError, CommandError) as exc:  # a file named in /kb add that cannot be read
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 1
    async with await _terminal_bot(settings, adapter, verbosity) as bot:
        adapter.deliver(message)
        await bot.idle()
    return 0 if set(bot.finished) <= {"answered", "command"} and bot.finished else 1


async def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from kagentbot.adapters.console_adapter import ConsoleAdapter
    from kagentbot.chat.commands import CommandError
    from kagentbot.config.redact import redact_url
    from kagentbot.memory.ingest import IngestError

    console = Console(highlight=False)
    console.print(f"kagentbot chat with [bold]{settings.llm.model}[/] at {redact_url(settings.llm.host)}. Commands: /help. Empty line or Ctrl-D to quit.")
    adapter = ConsoleAdapter(console)
    async with await _terminal_bot(settings, adapter, "debug" if args.verbose else "thread") as bot:
        while (question := await _read_line(console)) not in ("", "exit", "quit", "/quit"):
            try:
                adapter.deliver(_typed(question, args.user))
            except (IngestError, CommandError) as exc:  # a file named in /kb add that cannot be read
                console.print(f"✗ {exc}", markup=False)
                continue
            await bot.idle()  # the answer ends before the next prompt
    return 0


async def _terminal_bot(settings: Settings, adapter: ConsoleAdapter, verbosity: Verbosity) -> Bot:
    """The Bot on the terminal alone: the steps shown as asked, no scheduled questions (they run
    under `kagentbot run`)."""
    from kagentbot.bot.app import Bot
    from kagentbot.bot.services import Services

    settings = settings.model_copy(update={"render": settings.render.model_copy(update={"verbosity": verbosity})})
    return Bot(await Services.open(settings, defer_memory=True), [adapter], schedule=False)


async def _read_line(console: Console) -> str:
    try:
        return (await asyncio.to_thread(console.input, "[bold green]you>[/] ")).strip()
    except EOFError:
        return ""


def _typed(text: str, user: str) -> IncomingMessage:
    """A line typed at the terminal; a command's file paths are read as its attachments."""
    from kagentbot.adapters.console_adapter import console_message
    from kagentbot.cli.kb import attach_local_files
    from kagentbot.chat.commands import CommandRouter

    message = console_message(text, user)
    return attach_local_files(message) if CommandRouter.is_command(text) else message


async def run_platforms(args: argparse.Namespace, settings: Settings) -> int:
    from kagentbot.cli.runner import run_bot

    return await run_bot(settings)


async def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from kagentbot.cli.doctor import diagnose

    return await diagnose(settings)

