"""Native mode streams a direct answer: the planning call (tools offered) is itself streamed, so
an answer written instead of a tool call reaches the user while the model is still writing it,
on both backends, at the fake servers' wire. A tool call still plans a step."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone

import pytest

from kagentbot.agent.events import AnswerDelta, AnswerDone, StepPlanned, ToolFinished
from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import Agent, TurnRequest, collect, final_answer
from kagentbot.memory.types import Audience, ConversationBuffer
from kagentbot.tools.registry import ToolRegistry
from kagentbot.tools.timetools import TIME_TOOLS
from tests.fakes.ollama_server import Scripted
from tests.fakes.openai_server import FakeOpenAI

ME = Audience("user:console:alice")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)
HELLO = "Bonjour ! Comment allez-vous aujourd'hui ?"


@contextlib.asynccontextmanager
async def native_server(backend: str, fake_ollama, make_settings):
    if backend == "ollama":
        yield fake_ollama, make_settings(llm={"host": fake_ollama.url, "mode": "native"})
        return
    async with FakeOpenAI() as server:
        yield server, make_settings(llm={"backend": "openai", "host": server.url, "mode": "native"})


def wire_bodies(server) -> list[dict]:
    return server.chat_requests() if hasattr(server, "chat_requests") else server.requests


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_a_direct_native_answer_reaches_the_user_while_the_model_still_writes_it(backend, fake_ollama,
                                                                                     make_settings):
    async with native_server(backend, fake_ollama, make_settings) as (server, settings):
        hold = asyncio.Event()  # the server sends one piece, then waits until the user has seen it
        server.script(Scripted(HELLO, chunk=5, hold=hold))
        memory = ConversationBuffer()
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), memory)
        events = agent.run(TurnRequest("Say hello in French", ME, now=NOW))
        first = await asyncio.wait_for(anext(events), 10)  # would hang here if the reply were read whole
        assert first == AnswerDelta(HELLO[:5])
        hold.set()
        rest = await collect(events)
        body = wire_bodies(server)[0]
        assert body["stream"] is True and body["tools"]  # one streamed call, tools offered
        assert len(wire_bodies(server)) == 1  # no second call to write the answer again
        deltas = [first, *(e for e in rest if isinstance(e, AnswerDelta))]
        assert len(deltas) > 1 and "".join(d.text for d in deltas) == HELLO
        assert final_answer(rest) == HELLO
        (stored,) = memory.turns[ME.conversation_key]
        assert stored.answer == HELLO


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_a_streamed_tool_call_still_plans_a_step(backend, fake_ollama, make_settings):
    async with native_server(backend, fake_ollama, make_settings) as (server, settings):
        args = {"start_time": "1987-06-24", "end_time": "1988-02-26"}
        server.script(Scripted(tool_calls=[{"name": "time_delta", "arguments": args}], chunk=4),
                      Scripted("Messi is older by 247 days.", chunk=4))
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS))
        events = await collect(agent.run(TurnRequest("How many days older is Messi than Antonela?", ME, now=NOW)))
        (step,) = [e for e in events if isinstance(e, StepPlanned)]
        assert step.tool == "time_delta" and step.args == args
        assert any(e.ok and "247" in e.result for e in events if isinstance(e, ToolFinished))
        assert final_answer(events) == "Messi is older by 247 days."
        assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "Messi is older by 247 days."
        assert [b["stream"] for b in wire_bodies(server)] == [True, True]
        assert isinstance(events[-1], AnswerDone)


async def test_words_streamed_before_a_tool_call_stay_in_the_answer_and_name_the_step(fake_ollama, make_settings):
    """What the user saw is never taken back: a preamble is kept, the answer follows on its own lines."""
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native", "model": "qwen2.5"})
    args = {"start_time": "1987-06-24", "end_time": "1988-02-26"}
    fake_ollama.script(Scripted("<think>dates</think>Let me count the days.",
                                tool_calls=[{"name": "time_delta", "arguments": args}]),
                       "Messi is older by 247 days.")
    agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS))
    events = await collect(agent.run(TurnRequest("How many days older is Messi than Antonela?", ME, now=NOW)))
    (step,) = [e for e in events if isinstance(e, StepPlanned)]
    assert step.task_name == "Let me count the days." and step.tool == "time_delta"
    shown = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert shown == final_answer(events) == "Let me count the days.\n\nMessi is older by 247 days."


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_a_native_reply_is_logged_at_debug_even_when_the_cap_stops_the_reading(backend, fake_ollama,
                                                                                     make_settings, caplog):
    async with native_server(backend, fake_ollama, make_settings) as (server, settings):
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"answer_max_tokens": 40})})
        server.script(Scripted("On and on it goes. " * 200, ignore_cap=True))
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS))
        with caplog.at_level("DEBUG", logger="kagentbot.agent.llm"):
            await collect(agent.run(TurnRequest("Ramble.", ME, now=NOW)))
        (line,) = [r.getMessage() for r in caplog.records if "replied" in r.getMessage()]
        assert "(cut at the cap)" in line and "On and on it goes." in line
