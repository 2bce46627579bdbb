"""The real Bot under load, through the in-memory platform and the real ollama client against
the fake Ollama server (answering slowly, with few slots): one user's flood does not starve
another, per-user caps end in a clear "slow down", and a turn kept waiting for a slot shows
where it stands."""

from __future__ import annotations

import asyncio

import pytest

from kagentbot.bot.app import Bot
from kagentbot.chat.commands import Command, CommandRouter, Reply
from kagentbot.chat.messages import IncomingMessage
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import Scripted


def mention(text: str, user: str, chat: str, message_id: str, **kw) -> IncomingMessage:
    return IncomingMessage("testchat", chat, user, text, message_id=message_id, mentions_bot=True, **kw)


@pytest.fixture
def slow_bot(fake_ollama, make_settings, start_bot):
    """A bot whose model takes `delay` seconds for every call and has `slots` slots; each turn
    is one model call (native mode, one step) answered with the question's own words."""

    async def start(delay: float, slots: int, router=None, **settings) -> tuple[Bot, ChatAdapter]:
        fake_ollama.responder = lambda body: Scripted("re: " + body["messages"][-1]["content"][-20:], delay=delay)
        chat = ChatAdapter()
        llm = {"host": fake_ollama.url, "mode": "native", "max_connections": slots}
        bot = await start_bot(make_settings(llm=llm, agent={"max_steps": 1}, **settings), [chat], router)
        return bot, chat

    return start


def answers(chat: ChatAdapter) -> list[str]:
    """Answers in the order they began to appear."""
    return [p.final for p in chat.posted if p.final.startswith("re: ")]


async def test_a_flood_from_one_user_does_not_starve_another(slow_bot):
    bot, chat = await slow_bot(delay=0.05, slots=2)
    for n in range(200):  # each mention opens its own thread: 200 conversations of one user
        chat.deliver(mention(f"flood question {n:03d}", "A", "C1", f"a{n}"))
    await asyncio.sleep(0.2)
    answered_before_b = len(answers(chat))
    chat.deliver(mention("a single question from B", "B", "C2", "b0"))
    await bot.idle()
    order = answers(chat)
    position = next(n for n, text in enumerate(order) if "from B" in text) - answered_before_b
    assert position <= 8, f"B's answer came after {position} of A's that were answered after B asked"


async def test_past_their_caps_a_user_is_told_to_slow_down_and_nothing_is_lost(slow_bot):
    bot, chat = await slow_bot(delay=0.05, slots=2, limits={"user_turns": 2, "user_queued": 5})
    for n in range(20):
        chat.deliver(mention(f"flood question {n:03d}", "A", "C1", f"a{n}"))
    chat.deliver(mention("a single question from B", "B", "C2", "b0"))
    await bot.idle()
    flood_answers = [a for a in answers(chat) if "flood" in a]
    assert len(flood_answers) == 7  # two running and five waiting were taken
    assert bot.refused["turn"] == 13  # every other one was refused, none dropped unseen
    slow_downs = [p for p in chat.posted if p.text.startswith("Slow down")]
    assert len(slow_downs) == 1  # once, not once per refused message
    assert slow_downs[0].where.private_to == "A" and "7 questions" in slow_downs[0].text
    assert any("from B" in a for a in answers(chat))
    assert not bot._conversations  # a refused message leaves nothing behind


async def test_commands_of_one_user_are_capped_too(slow_bot):
    running = 0
    peak = 0

    async def slow(context, args) -> Reply:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return Reply("done " + context.message.message_id)

    router = CommandRouter()
    router.add(Command("slow", "a slow command", "/slow", slow))
    bot, chat = await slow_bot(delay=0.05, slots=2, router=router,
                               limits={"user_commands": 2, "user_commands_queued": 3})
    for n in range(30):
        chat.deliver(mention("/slow", "A", "C1", f"c{n}"))
    await bot.idle()
    assert peak == 2
    assert len([p for p in chat.posted if p.text.startswith("done ")]) == 5
    assert bot.refused["command"] == 25
    assert [p.text for p in chat.posted if p.text.startswith("Slow down")][0].count("commands") == 2


async def test_a_waiting_turn_shows_where_it_stands_until_its_work_starts(slow_bot):
    bot, chat = await slow_bot(delay=0.6, slots=1, limits={"queue_notice_after": 0.2, "queue_notice_every": 0.1})
    for user in ("A", "B", "C"):
        chat.deliver(mention(f"question from {user}", user, f"chat-{user}", f"{user}1"))
        await asyncio.sleep(0.02)  # arrive in this order
    await bot.idle()
    notices = {p.where.chat_id: p for p in chat.deleted}
    assert set(notices) == {"chat-B", "chat-C"}  # A never waited
    assert notices["chat-B"].text == "⏳ Queued — you're next." and notices["chat-B"].edits == []
    assert notices["chat-C"].text == "⏳ Queued — 1 ahead of you."
    assert notices["chat-C"].edits == ["⏳ Queued — you're next."]  # updated in place
    assert [p.where.chat_id for p in chat.posted] == ["chat-A", "chat-B", "chat-C"]  # only answers remain


async def test_without_deleting_the_notice_is_replaced_when_work_starts(slow_bot):
    bot, chat = await slow_bot(delay=0.5, slots=1, limits={"queue_notice_after": 0.1, "queue_notice_every": 0.1})
    chat.delete = None  # a platform where the bot cannot delete its messages
    for user in ("A", "B"):
        chat.deliver(mention(f"question from {user}", user, f"chat-{user}", f"{user}1"))
        await asyncio.sleep(0.02)
    await bot.idle()
    notice = next(p for p in chat.in_chat("chat-B") if p.text.startswith("⏳"))
    assert notice.final == "▶️ Working on it now."


async def test_the_fake_model_server_works_on_as_many_requests_at_once_as_it_has_slots():
    import aiohttp

    from tests.fakes.ollama_server import FakeOllama

    async with FakeOllama(parallel=2) as server, aiohttp.ClientSession() as session:
        server.responder = lambda body: Scripted("ok", delay=0.05)

        async def call() -> int:
            body = {"model": "kagentlm", "messages": [{"role": "user", "content": "hi"}], "stream": False}
            async with session.post(server.url + "/api/chat", json=body) as response:
                return response.status

        assert await asyncio.gather(*(call() for _ in range(6))) == [200] * 6
        assert server.max_in_flight == 2 and server.calls == 6


async def test_scheduled_questions_wait_past_the_caps_but_are_never_refused(slow_bot):
    bot, chat = await slow_bot(delay=0.05, slots=1, limits={"user_turns": 1, "user_queued": 0})
    for n in range(3):
        bot.ask_as("testchat", mention(f"scheduled question {n}", "A", "C1", f"s{n}", schedule_id=f"job{n}"))
    await bot.idle()
    assert len([a for a in answers(chat) if "scheduled" in a]) == 3 and not bot.refused


async def test_a_burst_of_turns_reaches_the_model_before_every_turn_is_prepared(fake_ollama, make_settings, start_bot,
                                                                               weights_dir):
    """Each turn's memory recall embeds its question at the fake server (/api/embed), so the
    embeddings asked for before the first model call tell how many turns got ready first: a
    few (`limits.preparing`), not the whole burst."""
    from kagentbot.memory.ingest import from_text

    at_first_call: list[int] = []

    def reply(body: dict) -> Scripted:
        if not at_first_call:
            at_first_call.append(sum(path == "/api/embed" for path, _ in fake_ollama.requests))
        return Scripted("re: " + body["messages"][-1]["content"][-20:], delay=0.01)

    fake_ollama.responder = reply
    chat = ChatAdapter()
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native", "max_connections": 1},
                             agent={"max_steps": 1}, limits={"preparing": 2},
                             embed={"backend": "ollama", "model": "kagentlm", "weights_dir": weights_dir})
    bot = await start_bot(settings, [chat])
    await bot.services.memory.add_document(from_text("The office opens at nine.", settings.memory, title="hours"), "global")
    before = sum(path == "/api/embed" for path, _ in fake_ollama.requests)
    for n in range(20):
        chat.deliver(mention(f"when does the office open, asks user {n}?", f"U{n}", f"chat-{n}", f"m{n}"))
    await bot.idle()
    assert len(answers(chat)) == 20
    assert at_first_call[0] - before <= 4, f"{at_first_call[0] - before} turns recalled before the first model call"
