"""The same prompt budget in both modes, measured at the fake server's wire; an answer cut at its
length limit shows the note but stores only the model's words."""

from __future__ import annotations

import pytest

from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import CUT_NOTE, Agent, TurnRequest, collect, final_answer
from kagentbot.memory.types import Audience, ConversationBuffer
from kagentbot.tools.registry import ToolRegistry
from kagentbot.tools.timetools import TIME_TOOLS
from tests.fakes.ollama_server import Scripted, complete, task

ME = Audience("user:console:alice")
BUDGET = 6000  # agent.prompt_budget_tokens' default: about 24,000 characters of English


def request_chars(body: dict) -> int:
    return sum(len(m.get("content") or "") for m in body["messages"])


@pytest.mark.parametrize("mode", ["kagent", "native"])
async def test_a_huge_earlier_message_is_trimmed_from_later_requests_in_both_modes(fake_ollama, make_settings, mode):
    settings = make_settings(llm={"host": fake_ollama.url, "mode": mode, "model": "qwen2.5"})
    memory = ConversationBuffer()
    agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), memory)
    fake_ollama.responder = lambda body: Scripted(complete() if "A new Task:" in body["messages"][-1]["content"] else "Noted.")
    await collect(agent.run(TurnRequest("Here is my whole log: " + "disk full, retrying. " * 4762, ME)))
    first = len(fake_ollama.chat_requests())
    # the next turn plans a step (its result joins the prompt), then answers
    fake_ollama.responder = None
    step = task("days", "time_delta", start_time="2026-01-01", end_time="2026-03-01")
    planned = Scripted(tool_calls=[{"name": "time_delta", "arguments": {"start_time": "2026-01-01",
                                                                         "end_time": "2026-03-01"}}])
    fake_ollama.script(*([step, complete(), "59 days."] if mode == "kagent" else [planned, "59 days."]))
    events = await collect(agent.run(TurnRequest("How many days from 2026-01-01 to 2026-03-01?", ME)))
    assert final_answer(events) == "59 days."
    sizes = [request_chars(body) for body in fake_ollama.chat_requests()[first:]]
    print(f"\n{mode}: request sizes after a 100,000-character message: {sizes}")
    assert len(sizes) >= 2 and max(sizes) <= BUDGET * 4 + 500
    assert any("trimmed to fit" in m["content"] for body in fake_ollama.chat_requests()[first:] for m in body["messages"])


@pytest.mark.parametrize("mode", ["kagent", "native"])
@pytest.mark.parametrize("server_cuts", [True, False], ids=["server-cut", "client-cut"])
async def test_the_cut_note_is_shown_but_not_remembered_as_the_models_words(fake_ollama, make_settings, mode,
                                                                            server_cuts):
    settings = make_settings(llm={"host": fake_ollama.url, "mode": mode, "answer_max_tokens": 40})
    memory = ConversationBuffer()
    agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), memory)
    rambling = Scripted("On and on it goes. " * 200, ignore_cap=not server_cuts)
    fake_ollama.script(*([complete()] if mode == "kagent" else []), rambling)
    answer = final_answer(await collect(agent.run(TurnRequest("Ramble.", ME))))
    assert answer.startswith("On and on it goes.") and answer.endswith(CUT_NOTE["en"])
    (stored,) = memory.turns[ME.conversation_key]
    assert stored.answer.startswith("On and on it goes.") and "cut off" not in stored.answer
    assert answer == stored.answer + CUT_NOTE["en"]
    assert len(stored.answer) <= 40 * 8
