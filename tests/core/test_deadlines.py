"""Deadlines on the whole of an LLM call and of a turn, not on each read: a server that trickles
a token every so often (each read well within llm.timeout) is cut off, the user is told why,
and the LLM slot is free for the next call. The real clients against trickling fake servers."""

from __future__ import annotations

import asyncio

import pytest

from kagentbot.agent.events import AnswerDelta, AnswerDone, Failed
from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import Agent, TurnRequest, collect
from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from kagentbot.chat.messages import IncomingMessage
from kagentbot.memory.types import Audience
from kagentbot.tools.registry import ToolRegistry
from kagentbot.tools.timetools import TIME_TOOLS
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import Scripted, complete, task
from tests.fakes.openai_server import FakeOpenAI

ME = Audience("user:console:alice")
# Each piece comes 50 ms after the last, far inside the per-read timeout: without a deadline
# on the whole call, this answer takes 60 s and holds its LLM slot all the while.
TRICKLE = Scripted("word " * 6000, chunk=5, interval=0.05)
PATIENCE = 15.0  # seconds a test waits for an outcome the deadline gives in about one


async def turn(agent: Agent, question: str) -> list:
    return await asyncio.wait_for(collect(agent.run(TurnRequest(question, ME))), PATIENCE)


@pytest.fixture(params=["ollama", "openai"])
async def server(request, fake_ollama):
    if request.param == "ollama":
        yield "ollama", fake_ollama
        return
    async with FakeOpenAI() as openai_server:
        yield "openai", openai_server


def trickling_agent(make_settings, backend: str, url: str, **agent) -> Agent:
    settings = make_settings(llm={"backend": backend, "host": url, "timeout": 0.5, "call_deadline": 1.0,
                                  "max_connections": 1}, agent=agent)
    return Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS))


async def test_a_trickling_answer_stops_at_the_call_deadline_and_frees_the_slot(server, make_settings):
    backend, fake = server
    fake.script(complete(), TRICKLE, complete(), "Fine.")
    agent = trickling_agent(make_settings, backend, fake.url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await turn(agent, "Tell me a long story.")
    print(f"\n{backend}: trickling answer ended after {loop.time() - started:.2f} s (llm.call_deadline 1 s)")
    assert any(isinstance(e, AnswerDelta) for e in events)  # it was answering, slowly
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.retryable
    assert "llm.call_deadline" in failed.message and "KAGENTBOT_LLM__CALL_DEADLINE" in failed.message
    # the only LLM slot (llm.max_connections = 1) is free again: the next turn is answered
    assert isinstance((await turn(agent, "Are you there?"))[-1], AnswerDone)


async def test_a_trickling_plain_reply_stops_at_the_call_deadline(server, make_settings):
    """A call that is not streamed can trickle too: its JSON body, a few bytes at a time."""
    backend, fake = server
    fake.script(Scripted(task("count", "time_delta", start_time="2026-01-01", end_time="2026-03-01") + " " * 3000,
                         chunk=5, interval=0.05),
                complete(), "Fine.")
    agent = trickling_agent(make_settings, backend, fake.url)
    failed = (await turn(agent, "How many days?"))[-1]
    assert isinstance(failed, Failed) and "llm.call_deadline" in failed.message
    assert isinstance((await turn(agent, "Are you there?"))[-1], AnswerDone)


async def test_a_turn_of_steady_calls_stops_at_the_turn_deadline(fake_ollama, make_settings):
    """Every call within its own deadline, the turn as a whole past its own: stopped, with a
    message that names the setting."""
    settings = make_settings(llm={"host": fake_ollama.url, "call_deadline": 30.0, "max_connections": 1},
                             agent={"turn_deadline": 1.0})
    agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS))
    fake_ollama.script(complete(), TRICKLE, complete(), "Fine.")
    failed = (await turn(agent, "Tell me a long story."))[-1]
    assert isinstance(failed, Failed)
    assert "agent.turn_deadline" in failed.message and "KAGENTBOT_AGENT__TURN_DEADLINE" in failed.message
    assert isinstance((await turn(agent, "Are you there?"))[-1], AnswerDone)


async def test_the_user_sees_why_a_turn_stopped_and_the_next_question_is_answered(fake_ollama, make_settings):
    settings = make_settings(llm={"host": fake_ollama.url, "max_connections": 1}, agent={"turn_deadline": 1.0})
    chat = ChatAdapter()
    bot = Bot(await Services.open(settings), [chat])
    await bot.start()
    try:
        fake_ollama.script(complete(), TRICKLE)
        chat.deliver(IncomingMessage("testchat", "D1", "U1", "Tell me a long story.", message_id="1", is_dm=True))
        await asyncio.wait_for(bot.idle(), PATIENCE)
        answer, notice = chat.posted
        assert answer.final.startswith("word word") and not answer.final.endswith("▍")  # what came stays, finished
        assert "agent.turn_deadline" in notice.text
        fake_ollama.script(complete(), "Fine.")
        chat.deliver(IncomingMessage("testchat", "D1", "U1", "Are you there?", message_id="2", is_dm=True))
        await asyncio.wait_for(bot.idle(), PATIENCE)
        assert chat.posted[-1].final == "Fine."
    finally:
        await bot.stop(grace=0)
