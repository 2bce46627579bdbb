"""Telegram: update arrival → first threaded step visible, through the real python-telegram-bot
(long polling against a loopback fake of the Bot API) and the real Bot, with a zero-latency
fake Ollama. Side by side in one run: the same turn through the in-memory test adapter, so the
ratio shows what the Telegram path adds. Goal: < 300 ms to the first step.

    python bench/telegram_latency.py [--turns 30]
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

from kagentbot.adapters.telegram_adapter import TelegramAdapter  # noqa: E402
from kagentbot.bot.app import Bot  # noqa: E402
from kagentbot.bot.messages import IncomingMessage  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from tests.bot.chat_adapter import ChatAdapter  # noqa: E402
from tests.fakes.ollama_server import FakeOllama, complete, task  # noqa: E402
from tests.telegram import updates as tg  # noqa: E402
from tests.telegram.fake_bot_api import FakeBotAPI  # noqa: E402

STEP = task("count days", "time_delta", start_time="1987-06-24", end_time="1988-02-26")


async def telegram_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as api:
        settings = load_settings(environ={}, data_dir=data, llm={"host": ollama.url, "mode": "kagent"},
                                 telegram={"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0})
        bot = Bot(await Services.open(settings), [TelegramAdapter(settings)])
        await bot.start()
        timings = []
        try:
            for turn in range(turns):
                ollama.script(STEP, complete(), "247 days.")
                started = time.perf_counter()
                asked = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, f"question {turn}")))["message"]
                await api.wait_for(lambda: any(p.get("reply_parameters", {}).get("message_id") == asked["message_id"]
                                               for p in api.called("sendMessage")))
                timings.append(time.perf_counter() - started)
                await bot.idle()
        finally:
            await bot.stop()
    return timings


async def memory_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    settings = load_settings(environ={}, data_dir=data, llm={"host": ollama.url, "mode": "kagent"})
    chat = ChatAdapter()
    bot = Bot(await Services.open(settings), [chat])
    await bot.start()
    timings = []
    try:
        for turn in range(turns):
            ollama.script(STEP, complete(), "247 days.")
            started = time.perf_counter()
            before = len(chat.posted)
            chat.deliver(IncomingMessage("testchat", "C1", "U1", f"question {turn}", message_id=f"m{turn}", is_dm=True))
            while len(chat.posted) == before:
                await asyncio.sleep(0.0005)
            timings.append(time.perf_counter() - started)
            await bot.idle()
    finally:
        await bot.stop()
    return timings


def describe(name: str, timings: list[float]) -> float:
    ms = sorted(t * 1000 for t in timings)
    median = statistics.median(ms)
    print(f"{name:<28} median {median:7.1f} ms   p95 {ms[int(len(ms) * 0.95) - 1]:7.1f} ms   max {ms[-1]:7.1f} ms")
    return median


async def main(turns: int) -> None:
    async with FakeOllama() as ollama:
        with tempfile.TemporaryDirectory() as data:
            memory = describe("in-memory adapter", await memory_turns(ollama, Path(data) / "m", turns))
            telegram = describe("telegram (polling, loopback)", await telegram_turns(ollama, Path(data) / "t", turns))
    print(f"telegram / in-memory: {telegram / memory:.2f}x   goal: first step < 300 ms -> {'met' if telegram < 300 else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    asyncio.run(main(parser.parse_args().turns))
