"""The small contract every platform adapter keeps: start, stop, send, edit, capabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from kagentbot.chat.commands import Command
from kagentbot.chat.intake import Intake
from kagentbot.chat.messages import CommandHandle, IncomingMessage

Markup = Literal["slack", "discord", "telegram", "plain"]


@dataclass(frozen=True)
class Capabilities:
    threads: bool  # replies can go into a thread under the user's message
    edits: bool  # sent messages can be edited (for streaming)
    max_length: int  # characters per message
    send_interval: float  # seconds between messages to one chat the platform tolerates
    edit_interval: float  # seconds between edits of one message
    markup: Markup = "plain"
    reorder_window: float = 0.0  # seconds one message may overtake an earlier one on its way in
    # with replicas, one conversation's messages can reach different replicas (Slack's
    # connections, a webhook behind a load balancer): each first turn waits for stragglers
    scattered: bool = False
    typing: bool = False  # shows "typing…" while a turn runs (Adapter.typing does something)
    deletes: bool = False  # can delete the bot's own messages (Adapter.delete works)
    # what is shown can only grow (a terminal): steps are logged line by line, never edited,
    # and an edit only ever extends the message it edits (the streamed answer)
    append_only: bool = False
    operator: bool = False  # whoever writes here runs the bot (the terminal): an admin


@dataclass(frozen=True)
class Destination:
    """Where replies to one message go."""

    chat_id: str
    thread_id: str = ""  # Slack thread_ts, Discord thread channel id, Telegram topic id
    reply_to: str = ""  # the message to reply to, where the platform threads by reply
    broadcast: bool = False  # also show a threaded reply in the channel (Slack reply_broadcast)
    private_to: str = ""  # show only to this user where the platform can (Slack ephemeral messages)
    command: CommandHandle | None = None  # answer through this slash command's own reply channel


@dataclass(frozen=True)
class SentMessage:
    chat_id: str
    message_id: str
    thread_id: str = ""


class RateLimited(Exception):
    """The platform asked us to slow down (HTTP 429); adapters raise it with the wait."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:g} s")
        self.retry_after = retry_after


class Undeliverable(Exception):
    """The platform refused the message for good (no such chat, no permission, the bot was
    removed or blocked): retrying cannot help, so the outbox gives up at once."""


class ChatMoved(Undeliverable):
    """The chat has a new id now (a Telegram group upgraded to a supergroup): this message is
    lost, but what the chat owns follows it, so nothing about it should be paused or dropped."""


Receiver = Callable[["Adapter", IncomingMessage], None]
ChatMovedHandler = Callable[["Adapter", str, str], None]  # (adapter, old chat id, new chat id)


class Adapter(Protocol):
    platform: str
    capabilities: Capabilities
    # set by the runner: called with a reason when the adapter can no longer work
    on_fatal: Callable[[str], None] | None
    # set by the Bot: called when the platform gives a chat a new id (a Telegram group upgraded
    # to a supergroup), so that what the chat owns follows it; never blocks
    on_chat_moved: ChatMovedHandler | None
    # set by the Bot when replicas share the work: the adapter awaits `intake.take` before it
    # acknowledges an event, instead of calling `receive`; None in one process
    intake: Intake | None

    @property
    def private_pointer(self) -> str:
        """Posted in the chat instead of a private reply the platform could not deliver ("" for
        none: the reply is then lost, and the failure logged)."""

    async def start(self, receive: Receiver) -> None:
        """Connect and begin delivering messages to `receive` (which never blocks)."""

    async def stop_receiving(self) -> None:
        """Take no new messages; sending still works, so turns under way can finish. Where the
        platform keeps what is not fetched (Telegram) or retries what is not taken (Slack), those
        messages are answered after the next start instead of being dropped now."""

    async def stop(self) -> None: ...

    async def send(self, where: Destination, text: str) -> SentMessage: ...

    async def edit(self, message: SentMessage, text: str) -> None: ...

    async def destination(self, message: IncomingMessage) -> Destination:
        """Where the steps and the answer to `message` go: a thread where the platform has them
        (Discord creates one here), else a reply to the message."""

    # -- optional abilities: `capabilities` says which work; BaseAdapter has the defaults ------
    async def typing(self, where: Destination) -> None:
        """Show "typing…" in `where` for a few seconds (when capabilities.typing)."""

    async def delete(self, message: SentMessage) -> None:
        """Delete one of the bot's messages (when capabilities.deletes)."""

    async def connected(self) -> bool | None:
        """Whether the platform connection is up now; None where there is none to report."""

    def offer_commands(self, commands: Sequence[Command]) -> None:
        """The bot's chat commands, for platforms with a command menu (called before start;
        commands given to the adapter when it was made win)."""

    async def set_leading(self, leading: bool) -> None:
        """With replicas: whether this one does the platform's one-per-bot work (Telegram
        polling, Discord command sync); told before start and whenever it changes."""


class BaseAdapter:
    """What an adapter without the optional abilities does: subclass it and override what the
    platform offers (and say so in `capabilities`)."""

    on_fatal: Callable[[str], None] | None = None
    on_chat_moved: ChatMovedHandler | None = None
    intake: Intake | None = None

    @property
    def private_pointer(self) -> str:
        return ""

    async def typing(self, where: Destination) -> None:
        return None

    async def delete(self, message: SentMessage) -> None:
        raise Undeliverable("this platform cannot delete messages")

    async def connected(self) -> bool | None:
        return None

    def offer_commands(self, commands: Sequence[Command]) -> None:
        return None

    async def set_leading(self, leading: bool) -> None:
        return None
