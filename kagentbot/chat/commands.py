"""Platform-agnostic chat commands (`/kb ...`, `/persona ...`, `/help`). Each feature registers
its handlers; adapters pass every command message to `CommandRouter.dispatch`.

A handler receives a `CommandContext[Deps]`: the message, whether its sender is an admin, and
the dependencies it was given, typed. Each feature names the slice it reads as a Protocol
(`KbServices`, `PersonaServices`...); the bot's Services provides them all, and a test can pass
just the slice."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kagentbot.chat.messages import AttachmentError, IncomingMessage
from kagentbot.memory.types import Audience


@dataclass(frozen=True)
class Reply:
    text: str
    private: bool = False  # show only to the asker where the platform allows (Slack ephemeral)


Deps = TypeVar("Deps", covariant=True)


@dataclass(frozen=True)
class CommandContext(Generic[Deps]):
    message: IncomingMessage
    services: Deps  # what the handler may use (the bot passes its Services)
    is_admin: bool

    @property
    def audience(self) -> Audience:
        return self.message.audience


# A handler names the dependencies it needs in its own signature (CommandContext[KbServices]);
# the router hands every handler the same context, as python-telegram-bot's CallbackContext.
Handler = Callable[[CommandContext[Any], list[str]], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    name: str  # "kb"
    summary: str  # one line for /help
    usage: str  # "/kb add|list|search|remove ..."
    handler: Handler


class CommandError(Exception):
    """A user mistake in a command; the message says what to do."""


class FileTooLarge(AttachmentError, CommandError):
    """An attachment is over the download limit; the message names the limit and the setting
    that raises it. Also a CommandError, so the router answers with the reason even where a
    command's handler lets it pass."""


class CommandRouter:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self.add(Command("help", "show what the bot can do", "/help", self._help))

    def add(self, command: Command) -> None:
        self._commands[command.name] = command

    def names(self) -> list[str]:
        return list(self._commands)

    def commands(self) -> list[Command]:
        return list(self._commands.values())

    @staticmethod
    def is_command(text: str) -> bool:
        return text.lstrip().startswith("/")

    async def dispatch(self, context: CommandContext[Any]) -> Reply:
        name, args = split_command(context.message.text)
        command = self._commands.get(name)
        if command is None:
            return Reply(f"Unknown command /{name}.\n\n{self.help_text(context.message.platform)}", private=True)
        try:
            return await command.handler(context, args)
        except CommandError as exc:
            return Reply(f"{exc}\nUsage: {command.usage}", private=True)

    def help_text(self, platform: str = "") -> str:
        console = platform == "console"
        lines = ["Type a question, or a command:" if console else "Mention me or DM me with a question. Commands:"]
        for c in self._commands.values():
            usage = c.usage.replace("(or attach files)", "(or a file path)") if console else c.usage
            lines.append(f"• {usage} — {c.summary}")
        return "\n".join(lines)

    async def _help(self, context: CommandContext[object], args: list[str]) -> Reply:
        return Reply(self.help_text(context.message.platform))


def split_command(text: str) -> tuple[str, list[str]]:
    """`/kb add "my file"` → ("kb", ["add", "my file"]). Unbalanced quotes fall back to spaces."""
    body = text.strip()[1:]
    try:
        words = shlex.split(body)
    except ValueError:
        words = body.split()
    if not words:
        return "help", []
    name = words[0].split("@", 1)[0].lower()  # Telegram sends /kb@BotName
    return name, words[1:]
