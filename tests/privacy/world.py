"""A small world of users and chats around the real Bot on the in-memory platform, the fake
Ollama (chat and embeddings) at the wire and a real LanceDB store. The scripted model looks
things up with kb_search on every turn, so each turn exercises recall, the tool, task history
and conversation history; what reached the model is read back from the fake's request log."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kagentbot.bot.app import Bot
from kagentbot.chat.messages import IncomingMessage
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import FakeOllama, Scripted, task

PLATFORM = "testchat"
MARKER = re.compile(r"zq[a-z0-9]+")


@dataclass(frozen=True)
class Chat:
    name: str
    chat_id: str
    thread_id: str = ""
    is_dm: bool = False
    place: str = ""  # chats that share memory (a channel and its public threads) share a place

    @property
    def where(self) -> str:
        return self.place or self.chat_id


def scripted_model(body: dict[str, Any]) -> Scripted:
    """Plans kb_search for the marker in the goal (the same plan again is refused by the loop, so
    the turn then concludes), and answers naming that marker."""
    prompt = body["messages"][-1]["content"]
    goals = re.findall(r"GOAL: (.*)", prompt) or [prompt.strip().splitlines()[-1]]
    found = MARKER.findall(goals[-1])
    marker = found[0] if found else "none"
    if "A new Task:" in prompt:
        return Scripted(task("look up the locker code", "kb_search", query=f"locker code {marker}"))
    # the answer quotes what the lookup found, as a model would
    done = prompt[prompt.rfind("* Complete tasks"):]
    quoted = " ".join(sorted(set(re.findall(r"zqdoc[a-z0-9]+", done))))
    name = f"zqa{marker.removeprefix('zq')}" if found else "unmarked"
    return Scripted(f"The locker answer ({name}) is in: {quoted or 'nothing found'}.")


@dataclass
class Turn:
    """What one delivered message caused: the model requests and the posts."""

    requests: list[dict[str, Any]]
    posts: list[Any]

    @property
    def prompts(self) -> list[str]:
        return ["\n".join(m.get("content") or "" for m in body["messages"]) for body in self.requests]

    @property
    def wire(self) -> str:
        return json.dumps(self.requests, ensure_ascii=False)

    @property
    def replies(self) -> str:
        return "\n".join(p.final for p in self.posts)

    def section(self, title: str) -> str:
        """Every memory section whose heading starts with `title`, from every request."""
        found = []
        for prompt in self.prompts:
            for part in re.split(r"\n(?=\* (?:Knowledge|Related|Complete|Conversation))", prompt):
                if part.startswith(title):
                    found.append(part)
        return "\n".join(found)


@dataclass
class World:
    bot: Bot
    adapter: ChatAdapter
    fake: FakeOllama
    ids: Any = field(default_factory=lambda: itertools.count(1000))

    def message(self, user: str, chat: Chat, text: str) -> IncomingMessage:
        return IncomingMessage(PLATFORM, chat.chat_id, user, text, message_id=str(next(self.ids)),
                               thread_id=chat.thread_id, user_name=user.title(), is_dm=chat.is_dm, mentions_bot=True)

    async def send(self, user: str, chat: Chat, text: str) -> Turn:
        requests, posts = len(self.fake.requests), len(self.adapter.posted)
        self.adapter.deliver(self.message(user, chat, text))
        await self.bot.idle()
        await self.bot.services.memory.flush()  # what this turn stored is committed
        return self._since(requests, posts)

    async def fire(self, job_id: str) -> Turn:
        requests, posts = len(self.fake.requests), len(self.adapter.posted)
        await self.bot.services.scheduler.run_job(job_id)
        await self.bot.idle()
        await self.bot.services.memory.flush()
        return self._since(requests, posts)

    def _since(self, requests: int, posts: int) -> Turn:
        chats = [body for path, body in self.fake.requests[requests:] if path == "/api/chat"]
        return Turn(chats, self.adapter.posted[posts:])


def world_settings(make_settings, fake: FakeOllama, **overrides):
    """kagent planning on the fake, its embeddings too (fast, deterministic), and an admin."""
    return make_settings(
        llm={"host": fake.url, "mode": "kagent"},
        embed={"backend": "ollama", "model": "kagentlm"},
        agent={"max_steps": 1},
        admins="testchat:ADMIN",
        **overrides,
    )


async def open_world(make_settings, start_bot, fake: FakeOllama, **overrides) -> World:
    fake.responder = scripted_model
    adapter = ChatAdapter()
    bot = await start_bot(world_settings(make_settings, fake, **overrides), [adapter])
    return World(bot, adapter, fake)


def doc_id(reply: str) -> str:
    match = re.search(r" as ([0-9a-f]+)", reply)
    assert match, reply
    return match.group(1)
