"""The bot under a misbehaving model server and hostile input, through the real Bot (in-memory
chat adapter with Telegram's 4096-character limit) or the real agent, with the real `ollama`
client against the fake Ollama server:

1. 8 impossible `/schedule add "0 0 30 2 *" q` at once: the longest event-loop stall (a 10 ms
   timer's lateness), the time to answer all 8, and what they were told;
2. a server that trickles a token every 50 ms (each read far inside llm.timeout) for 20 s: how
   long the turn holds its LLM slot, and how it ends;
3. a 7.7 KB model error: the longest message posted for it (Telegram refuses over 4096);
4. after one 100,000-character message, the size of the next turn's requests, per mode;
5. a server that ignores the token cap and sends 500,000 characters: messages posted, per mode.

    python bench/faults.py

Runs on any revision of the code (the deadline settings are used where they exist), so the
same script gives the figures before and after a change.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.agent.events import Failed  # noqa: E402
from kagentbot.agent.llm import make_client  # noqa: E402
from kagentbot.agent.loop import Agent, TurnRequest, collect  # noqa: E402
from kagentbot.bot.app import Bot  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.chat.adapter import Capabilities  # noqa: E402
from kagentbot.chat.messages import IncomingMessage  # noqa: E402
from kagentbot.config.settings import AgentSettings, LLMSettings, load_settings  # noqa: E402
from kagentbot.memory.types import Audience, ConversationBuffer  # noqa: E402
from kagentbot.tools.registry import ToolRegistry  # noqa: E402
from kagentbot.tools.timetools import TIME_TOOLS  # noqa: E402
from tests.bot.chat_adapter import ChatAdapter  # noqa: E402
from tests.fakes.ollama_server import FakeOllama, Scripted, complete  # noqa: E402

ME = Audience("user:console:alice")
TELEGRAM_LIKE = Capabilities(True, True, 4096, 0.0, 0.0, "plain", deletes=True)
HAS_DEADLINES = "call_deadline" in LLMSettings.model_fields and "turn_deadline" in AgentSettings.model_fields
ERROR_BODY = ("llama runner process has terminated: error loading model: "
              + "".join(f"tensor 'blk.{n}.attn_q.weight' has wrong shape; " for n in range(90))
              + "\n" + "".join(f"  at ggml_backend_sched_graph_compute (frame {n})\n" for n in range(70)))


def settings_for(data: str, url: str, mode: str = "kagent", **llm):
    if not HAS_DEADLINES:
        llm.pop("call_deadline", None)
    return load_settings(environ={}, data_dir=Path(data), llm={"host": url, "mode": mode, "model": "qwen2.5", **llm})


async def with_bot(settings, work):
    chat = ChatAdapter(TELEGRAM_LIKE)
    bot = Bot(await Services.open(settings), [chat])
    await bot.start()
    try:
        return await work(bot, chat)
    finally:
        await bot.stop(grace=0)


async def impossible_schedules(fake: FakeOllama, data: str) -> None:
    async def work(bot, chat):
        stalls: list[float] = []
        loop = asyncio.get_running_loop()

        async def tick():
            while True:
                due = loop.time() + 0.01
                await asyncio.sleep(0.01)
                stalls.append(loop.time() - due)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        started = loop.time()
        for n in range(8):
            chat.deliver(IncomingMessage("testchat", f"C{n}", f"U{n}", '/schedule add "0 0 30 2 *" what day is it?',
                                         message_id=str(n + 1)))
        await bot.idle()
        took = loop.time() - started
        await asyncio.sleep(0.05)
        ticker.cancel()
        print(f"  longest event-loop stall {max(stalls) * 1000:6.0f} ms; all 8 answered in {took * 1000:6.0f} ms")
        print(f"  told: {chat.posted[0].final[:90]!r}")

    await with_bot(settings_for(data, fake.url), work)


async def trickle(fake: FakeOllama, data: str) -> None:
    settings = settings_for(data, fake.url, timeout=5.0, call_deadline=2.0, max_connections=1)
    agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS))
    fake.script(complete(), Scripted("word " * 2000, chunk=25, interval=0.05))
    started = time.perf_counter()
    try:
        events = await asyncio.wait_for(collect(agent.run(TurnRequest("Tell me a long story.", ME))), 30)
        end = events[-1]
        how = f"failed: {end.message[:70]!r}" if isinstance(end, Failed) else "answered in full"
    except TimeoutError:
        how = "still running at 30 s"
    print(f"  the turn held its LLM slot {time.perf_counter() - started:5.1f} s (trickle lasts 20 s); {how}")


async def long_error(fake: FakeOllama, data: str) -> None:
    async def work(bot, chat):
        fake.script(Scripted(status=500, error=ERROR_BODY))
        chat.deliver(IncomingMessage("testchat", "D1", "U1", "what's new?", message_id="1", is_dm=True))
        await bot.idle()
        longest = max(len(p.final) for p in chat.posted)
        print(f"  a {len(ERROR_BODY):,}-character error: {len(chat.posted)} message(s), the longest {longest:,} "
              f"characters ({'refused' if longest > 4096 else 'accepted'} by Telegram)")

    await with_bot(settings_for(data, fake.url), work)


async def request_sizes(fake: FakeOllama, data: str) -> None:
    for mode in ("kagent", "native"):
        settings = settings_for(data, fake.url, mode)
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), ConversationBuffer())
        fake.responder = lambda body: Scripted(complete() if "A new Task:" in body["messages"][-1]["content"] else "Noted.")
        await collect(agent.run(TurnRequest("Here is my whole log: " + "disk full, retrying. " * 4762, ME)))
        before = len(fake.chat_requests())
        await collect(agent.run(TurnRequest("And what now?", ME)))
        sizes = [sum(len(m.get("content") or "") for m in body["messages"]) for body in fake.chat_requests()[before:]]
        fake.responder = None
        print(f"  {mode:6}: the next turn's largest request {max(sizes):7,} characters")


async def runaway(fake: FakeOllama, data: str) -> None:
    for mode in ("kagent", "native"):
        async def work(bot, chat):
            fake.script(*([complete()] if mode == "kagent" else []),
                        Scripted("All work and no play makes a dull answer. " * 12_000, chunk=5000, ignore_cap=True))
            chat.deliver(IncomingMessage("testchat", "D1", "U1", "write forever", message_id="1", is_dm=True))
            await bot.idle()
            total = sum(len(p.final) for p in chat.posted)
            print(f"  {mode:6}: 504,000 characters sent → {len(chat.posted):4} messages posted ({total:,} characters)")

        await with_bot(settings_for(data, fake.url, mode), work)


async def main() -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # the errors provoked here are expected
    print(f"deadline settings present: {HAS_DEADLINES}")
    async with FakeOllama() as fake:
        for title, run in (("1. impossible schedules", impossible_schedules), ("2. trickling server", trickle),
                           ("3. long model error", long_error), ("4. prompt budget", request_sizes),
                           ("5. runaway answer", runaway)):
            print(title)
            with tempfile.TemporaryDirectory() as data:
                await run(fake, data)


if __name__ == "__main__":
    asyncio.run(main())
