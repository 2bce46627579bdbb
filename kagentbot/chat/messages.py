"""What adapters hand to the bot: one frozen, typed message per platform event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kagentbot.memory.types import Audience
from kagentbot.scope import Scope


class AttachmentError(ValueError):
    """An attachment could not be fetched (too large, gone, refused); the message says why."""


@dataclass(frozen=True)
class Attachment:
    name: str
    size: int  # bytes, as the platform reports it (0 if unknown)
    mime: str = ""
    fetch: Callable[[], Awaitable[bytes]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CommandHandle:
    """A platform command's own way back (Slack's response_url, Discord's deferred interaction),
    kept by its adapter under `key`: replies to the command go there, not into the chat."""

    key: str


@dataclass(frozen=True)
class IncomingMessage:
    platform: str  # "slack" | "discord" | "telegram" | "console"
    chat_id: str
    user_id: str
    text: str  # with the bot mention removed
    message_id: str = ""
    thread_id: str = ""  # the thread this belongs to, if any (Slack thread_ts, Telegram topic)
    user_name: str = ""
    attachments: tuple[Attachment, ...] = ()
    is_dm: bool = False
    mentions_bot: bool = False
    schedule_id: str = ""  # asked by this scheduled question, not typed by its owner
    command: CommandHandle | None = None  # a platform slash command (then there is no message_id)

    @property
    def user_key(self) -> str:
        """Platform-qualified user id, as KAGENTBOT_ADMINS lists them."""
        return f"{self.platform}:{self.user_id}"

    @property
    def audience(self) -> Audience:
        chat = "" if self.is_dm else str(Scope.chat(self.platform, self.chat_id))
        return Audience(user_scope=str(Scope.user(self.platform, self.user_id)), chat_scope=chat)
