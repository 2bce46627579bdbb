"""An in-memory platform for driving the real Bot in tests: it implements the Adapter
protocol and records what the bot sent, like errbot's test backend."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from kagentbot.chat.adapter import BaseAdapter, Capabilities, Destination, RateLimited, Receiver, SentMessage
from kagentbot.chat.messages import IncomingMessage


@dataclass
class Posted:
    where: Destination
    text: str
    message_id: str
    edits: list[str] = field(default_factory=list)

    @property
    def final(self) -> str:
        return self.edits[-1] if self.edits else self.text


class ChatAdapter(BaseAdapter):
    platform = "testchat"

    def __init__(self, capabilities: Capabilities | None = None, rate_limit_first: int = 0) -> None:
        self.capabilities = capabilities or Capabilities(True, True, 500, 0.0, 0.0, "plain", deletes=True)
        self.posted: list[Posted] = []
        self.deleted: list[Posted] = []  # what the bot took back, in order
        self._ids = itertools.count(1)
        self._receive: Receiver | None = None
        self._rate_limit_left = rate_limit_first

    async def start(self, receive: Receiver) -> None:
        self._receive = receive

    async def stop_receiving(self) -> None:
        self._receive = None

    async def stop(self) -> None:
        self._receive = None

    def deliver(self, message: IncomingMessage) -> None:
        assert self._receive is not None
        self._receive(self, message)

    async def destination(self, message: IncomingMessage) -> Destination:
        return Destination(message.chat_id, message.thread_id or message.message_id, message.message_id)

    async def send(self, where: Destination, text: str) -> SentMessage:
        if self._rate_limit_left:
            self._rate_limit_left -= 1
            raise RateLimited(0.01)
        posted = Posted(where, text, str(next(self._ids)))
        self.posted.append(posted)
        return SentMessage(where.chat_id, posted.message_id, where.thread_id)

    async def edit(self, message: SentMessage, text: str) -> None:
        next(p for p in self.posted if p.message_id == message.message_id).edits.append(text)

    async def delete(self, message: SentMessage) -> None:
        posted = next(p for p in self.posted if p.message_id == message.message_id)
        self.posted.remove(posted)
        self.deleted.append(posted)

    def in_chat(self, chat_id: str) -> list[Posted]:
        return [p for p in self.posted if p.where.chat_id == chat_id]
