"""What the figures count, driven through the real Bot and the in-memory platform with the real
ollama client against the fake Ollama server."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from kagentbot.agent.llm import make_client
from kagentbot.chat.messages import IncomingMessage
from kagentbot.ops import metrics
from kagentbot.ops.slots import llm_slots
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import Scripted, complete, task
from tests.ops.test_endpoints import sample


@pytest.fixture
def counting():
    meters = metrics.enable()
    yield meters
    metrics.disable()


@pytest.fixture
def running(fake_ollama, make_settings, start_bot):
    async def start(adapter: ChatAdapter | None = None, **llm):
        chat = adapter or ChatAdapter()
        bot = await start_bot(make_settings(llm={"host": fake_ollama.url, **llm}), [chat])
        return bot, chat

    return start


def ask(text: str, message_id: str = "m1") -> IncomingMessage:
    return IncomingMessage("testchat", "C1", "U1", text, message_id=message_id, mentions_bot=True)


async def test_a_planned_turn_counts_its_llm_calls_tool_messages_and_429s(counting, running, fake_ollama):
    fake_ollama.script(task("age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26"),
                       complete(), "Older by 247 days.")
    bot, chat = await running(ChatAdapter(rate_limit_first=2))
    chat.deliver(ask("How many days older is Messi?"))
    await bot.idle()
    assert chat.posted[-1].final == "Older by 247 days."
    text = generate_latest(counting.registry).decode()
    assert sample(text, "kagentbot_turns_total", platform="testchat", outcome="answered") == 1
    assert sample(text, "kagentbot_llm_calls_total", call="complete", outcome="ok") == 2  # the task, then "done"
    assert sample(text, "kagentbot_llm_calls_total", call="stream", outcome="ok") == 1  # the answer
    assert sample(text, "kagentbot_llm_tokens_total", direction="prompt") == 30  # the fake reports 10 a call
    assert sample(text, "kagentbot_tool_calls_total", tool="time_delta", outcome="ok") == 1
    assert sample(text, "kagentbot_tool_seconds_count", tool="time_delta") == 1
    assert sample(text, "kagentbot_rate_limited_total", platform="testchat") == 2
    assert sample(text, "kagentbot_messages_sent_total", platform="testchat") == len(chat.posted) == 2
    assert sample(text, "kagentbot_message_edits_total", platform="testchat") == sum(len(p.edits) for p in chat.posted)
    assert "U1" not in text and "C1" not in text and "m1" not in text  # no user, chat or message ids


async def test_a_turn_without_its_model_is_failed_and_says_why(counting, running, fake_ollama):
    bot, chat = await running(mode="native")
    await fake_ollama.stop()
    chat.deliver(ask("hello"))
    await bot.idle()
    assert chat.posted[-1].text.startswith("⚠️ cannot reach the model server")
    assert counting.turns.values == {("testchat", "failed"): 1}
    assert counting.llm_calls.values == {("stream_reply", "unavailable"): 1}


async def test_counting_off_leaves_the_llm_client_bare_and_counts_nothing(running, fake_ollama):
    fake_ollama.script(Scripted("hi"))
    bot, chat = await running(mode="native")
    assert type(bot.services.llm).__name__ == "OllamaClient"
    chat.deliver(ask("hello"))
    await bot.idle()
    assert metrics.live() is None and chat.posted[-1].final == "hi"


async def test_slots_in_use_and_waiting_are_read_from_the_llm_gate(make_settings, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("slow", delay=0.5)
    client = make_client(make_settings(llm={"host": fake_ollama.url, "max_connections": 1}).llm)
    try:
        assert llm_slots(client.slots) == (0, 0)
        calls = [asyncio.create_task(client.complete([{"role": "user", "content": "x"}], model="kagentlm", options={}))
                 for _ in range(3)]
        await asyncio.sleep(0.2)
        assert llm_slots(client.slots) == (1, 2)
        await asyncio.gather(*calls)
        assert llm_slots(client.slots) == (0, 0)
    finally:
        await client.close()


async def test_a_scheduled_run_is_counted(counting, running, fake_ollama):
    bot, chat = await running(mode="native")
    chat.deliver(IncomingMessage("testchat", "D1", "U1", "/schedule add every day at 08:30 hello", message_id="m1",
                                 is_dm=True))
    await bot.idle()
    (spec,) = bot.services.scheduler.book.file.jobs.values()
    fake_ollama.script(Scripted("good morning"))
    await bot.services.scheduler.run_job(spec.id)
    await bot.idle()
    assert counting.scheduled.values == {("started",): 1}
    assert counting.turns.values == {("testchat", "answered"): 1}


def test_histograms_are_cumulative_with_their_sum():
    meters = metrics.Meters()
    meters.turn_seconds.observe(("slack",), 0.3)
    meters.turn_seconds.observe(("slack",), 3.0)
    meters.turn_seconds.observe(("slack",), 500.0)
    text = generate_latest(meters.registry).decode()
    bucket = "kagentbot_turn_seconds_bucket"
    assert sample(text, bucket, platform="slack", le="0.25") == 0
    assert sample(text, bucket, platform="slack", le="0.5") == 1
    assert sample(text, bucket, platform="slack", le="5.0") == 2
    assert sample(text, bucket, platform="slack", le="300.0") == 2
    assert sample(text, bucket, platform="slack", le="+Inf") == 3
    assert sample(text, "kagentbot_turn_seconds_sum", platform="slack") == pytest.approx(503.3)
