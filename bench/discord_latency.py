"""Discord: message arrival → first threaded step visible, through the real discord.py client on
dpytest's fake Discord (MESSAGE_CREATE parsed by discord.py, the thread created on the message,
the step posted into it) and the real Bot, with a zero-latency fake Ollama. Side by side in one
run: the same turn through the in-memory test adapter, so the ratio shows what the Discord path
adds. Then many conversations at once (one channel each) with a 200 ms model: throughput against
the ideal of all of them running in parallel. Goals: first step < 300 ms; >= 95 % of ideal.

    python bench/discord_latency.py [--turns 30] [--conversations 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discord.ext.test as dpytest  # noqa: E402

from kagentbot.bot.app import Bot, default_router  # noqa: E402
from kagentbot.bot.messages import IncomingMessage  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from tests.bot.chat_adapter import ChatAdapter  # noqa: E402
from tests.discord.harness import start_discord_bot, until  # noqa: E402
from tests.fakes.ollama_server import FakeOllama, Scripted, complete, task  # noqa: E402

STEP = task("count days", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
MODEL_DELAY = 0.2


def discord_settings(ollama: FakeOllama, data: Path, **llm):
    return load_settings(environ={}, data_dir=data, llm={"host": ollama.url, "mode": "kagent", **llm},
                         agent={"max_steps": 1}, discord={"token": "bench-token", "send_interval": 0, "edit_interval": 0})


async def discord_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    h = await start_discord_bot(discord_settings(ollama, data), default_router())
    timings = []
    try:
        for turn in range(turns):
            ollama.script(STEP, complete(), "247 days.")
            started = time.perf_counter()
            asked = await dpytest.message(f"{h.mention()} question {turn}", channel=h.channel, member=h.alice)
            await until(lambda: any(channel == asked.id for channel, _ in h.http.sent_payloads), step=0.0005)
            timings.append(time.perf_counter() - started)
            await h.bot.idle()
    finally:
        await h.bot.stop()
    return timings


async def memory_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    settings = load_settings(environ={}, data_dir=data, llm={"host": ollama.url, "mode": "kagent"}, agent={"max_steps": 1})
    chat = ChatAdapter()
    bot = Bot(await Services.open(settings), [chat])
    await bot.start()
    timings = []
    try:
        for turn in range(turns):
            ollama.script(STEP, complete(), "247 days.")
            started = time.perf_counter()
            before = len(chat.posted)
            chat.deliver(IncomingMessage("testchat", "C1", "U1", f"question {turn}", message_id=f"m{turn}", mentions_bot=True))
            while len(chat.posted) == before:
                await asyncio.sleep(0.0005)
            timings.append(time.perf_counter() - started)
            await bot.idle()
    finally:
        await bot.stop()
    return timings


async def concurrent(ollama: FakeOllama, data: Path, conversations: int) -> tuple[float, float, bool]:
    """Every conversation in its own channel; one 200 ms model call per turn (native mode).
    Returns the time to deliver every message, the time until every answer is posted, and
    whether each was answered in its own thread."""
    ollama.responder = lambda body: Scripted("answer to " + body["messages"][-1]["content"][-12:], delay=MODEL_DELAY)
    h = await start_discord_bot(discord_settings(ollama, data, mode="native"), default_router(),
                                text_channels=conversations)
    try:
        started = time.perf_counter()
        asked = [await dpytest.message(f"{h.mention()} question {n:05d}", channel=channel, member=h.alice)
                 for n, channel in enumerate(h.channels)]
        delivered = time.perf_counter() - started
        await h.bot.idle()
        elapsed = time.perf_counter() - started
        answered = {channel for channel, _ in h.http.sent_payloads}
        ok = all(message.id in answered for message in asked)
    finally:
        await h.bot.stop()
        ollama.responder = None
    return delivered, elapsed, ok


def describe(name: str, timings: list[float]) -> float:
    ms = sorted(t * 1000 for t in timings)
    median = statistics.median(ms)
    print(f"{name:<30} median {median:7.1f} ms   p95 {ms[int(len(ms) * 0.95) - 1]:7.1f} ms   max {ms[-1]:7.1f} ms")
    return median


async def main(turns: int, conversations: int) -> None:
    async with FakeOllama() as ollama:
        with tempfile.TemporaryDirectory() as data:
            memory = describe("in-memory adapter", await memory_turns(ollama, Path(data) / "m", turns))
            discord_ms = describe("discord (dpytest, thread)", await discord_turns(ollama, Path(data) / "d", turns))
            print(f"discord / in-memory: {discord_ms / memory:.2f}x   goal: first step < 300 ms -> "
                  f"{'met' if discord_ms < 300 else 'MISSED'}")
            delivered, elapsed, ok = await concurrent(ollama, Path(data) / "c", conversations)
    # ideal: the model calls all overlap, so the last answer lands one model delay after the last arrival
    ideal = delivered + MODEL_DELAY
    print(f"{conversations} conversations at once, {MODEL_DELAY * 1000:.0f} ms model: all delivered in {delivered:.2f} s, "
          f"all answered after {elapsed:.2f} s (ideal {ideal:.2f} s): {ideal / elapsed:.0%} of ideal throughput; "
          f"every one answered in its own thread: {ok}")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--conversations", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.conversations))
