"""The terminal as a platform: `kagentbot ask` and `kagentbot chat` hand what is typed to the Bot
like any adapter, and the shared renderer's sends and edits are printed.

A terminal only appends, so it declares `Capabilities.append_only`: the renderer logs each step
as its own line, and the answer, streamed by edits that only ever extend it, is printed as it
grows (the edit's new tail is written; the cursor the renderer adds is not)."""

from __future__ import annotations

import itertools

from rich.console import Console

from kagentbot.chat.adapter import BaseAdapter, Capabilities, Destination, Receiver, SentMessage
from kagentbot.chat.messages import IncomingMessage
from kagentbot.chat.recent import Recent
from kagentbot.chat.render import CURSOR

PLATFORM = "console"
REMEMBERED = 256  # messages whose printed text is kept, to print only what an edit adds


class ConsoleAdapter(BaseAdapter):
    """Lifecycle: `start(receive)` → `deliver(message)` per line typed → `stop()`."""

    platform = PLATFORM
    capabilities = Capabilities(
        threads=False, edits=True, max_length=1_000_000, send_interval=0.0, edit_interval=0.0,
        markup="plain", append_only=True, operator=True,
    )

    def __init__(self, console: Console) -> None:
        self.console = console
        self._receive: Receiver | None = None
        self._ids = itertools.count(1)
        self._shown: Recent[str, str] = Recent(REMEMBERED)  # message id → the text printed for it so far
        self._open: str = ""  # the message whose line is still being written (a streaming answer)

    async def start(self, receive: Receiver) -> None:
        self._receive = receive

    async def stop_receiving(self) -> None:
        self._receive = None

    async def stop(self) -> None:
        self._receive = None
        self._end_line()

    def deliver(self, message: IncomingMessage) -> None:
        """What was typed (a `console_message`), handed to the bot."""
        if self._receive is None:
            raise RuntimeError("the console adapter is not started")
        self._receive(self, message)

    async def destination(self, message: IncomingMessage) -> Destination:
        return Destination(message.chat_id)

    async def send(self, where: Destination, text: str) -> SentMessage:
        self._end_line()
        sent = SentMessage(where.chat_id, str(next(self._ids)))
        self._shown[sent.message_id] = ""
        self._write(sent.message_id, text)
        return sent

    async def edit(self, message: SentMessage, text: str) -> None:
        shown = self._shown.get(message.message_id)
        if shown is None or self._open != message.message_id or not _body(text).startswith(shown):
            self._end_line()  # not a growing answer: the new text goes on its own line
            self._shown[message.message_id] = ""
        self._write(message.message_id, text)

    def _write(self, message_id: str, text: str) -> None:
        body, shown = _body(text), self._shown[message_id]
        self.console.out(body[len(shown):], end="", highlight=False)
        self._shown[message_id] = body
        self._open = message_id
        if not text.endswith(CURSOR):  # complete: the line ends here
            self._end_line()

    def _end_line(self) -> None:
        if self._open:
            self.console.out("", highlight=False)
            self._open = ""


def _body(text: str) -> str:
    return text.removesuffix(CURSOR)


def console_message(text: str, user: str) -> IncomingMessage:
    """A question typed at the terminal: a DM between the bot and the OS user (or `--user`)."""
    return IncomingMessage(platform=PLATFORM, chat_id=user, user_id=user, text=text, is_dm=True, user_name=user)
