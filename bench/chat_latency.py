"""Chat platforms, side by side in one run, each through its real SDK against a loopback fake
(Slack: slack-bolt in Socket Mode and HTTP mode; Telegram: python-telegram-bot polling; Discord:
discord.py on dpytest) and the real Bot with the real LanceDB memory and a fake Ollama:

1. message arrival → first threaded step visible, zero-latency model (goal < 300 ms), next to
   the same turn through the in-memory test adapter, so the ratio shows what each platform adds;
2. Slack acknowledgement time: signed HTTP event → 200, and Socket Mode envelope → ack
   (goal < 100 ms);
3. many conversations at once with a 200 ms model, each getting a question and a follow-up in
   its thread: throughput against the ideal (every model call overlapping), answers in order
   within each conversation, peak RSS of the whole process, fakes included
   (goals: ≥ 95 % of ideal at 500 conversations, order kept, RSS < 1 GiB).

    python bench/chat_latency.py [--turns 30] [--conversations 500] [--only slack,telegram,discord]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import discord.ext.test as dpytest  # noqa: E402

from kagentbot.adapters.slack_adapter import SlackAdapter  # noqa: E402
from kagentbot.adapters.telegram_adapter import TelegramAdapter  # noqa: E402
from kagentbot.bot.app import Bot, default_router  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.chat.messages import IncomingMessage  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from tests.bot.chat_adapter import ChatAdapter  # noqa: E402
from tests.discord.harness import start_discord_bot, until  # noqa: E402
from tests.fakes.ollama_server import FakeOllama, Scripted, task  # noqa: E402
from tests.slack import fake_slack as slack  # noqa: E402
from tests.slack.fake_slack import FakeSlack  # noqa: E402
from tests.telegram import updates as tg  # noqa: E402
from tests.telegram.fake_bot_api import FakeBotAPI  # noqa: E402

STEP = task("count days", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
MODEL_DELAY = 0.2
QUESTION = re.compile(r"question \d{5}-\d")
WARM_UP = 2  # untimed turns first: the second loads the embedding model, as a running bot has done
FIRST_STEP_GOAL_MS, ACK_GOAL_MS, THROUGHPUT_GOAL, RSS_GOAL_MB = 300, 100, 0.95, 1024


def settings_for(ollama: FakeOllama, data: Path, mode: str = "kagent", **platform):
    quiet = {"send_interval": 0, "edit_interval": 0}
    sections = {name: {**quiet, **values} for name, values in platform.items()}
    return load_settings(environ={}, data_dir=data, llm={"host": ollama.url, "mode": mode}, agent={"max_steps": 1},
                         **sections)


def slack_section(api: FakeSlack, **extra) -> dict:
    return {"bot_token": slack.BOT_TOKEN, "app_token": slack.APP_TOKEN, "api_url": api.api_url, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def signed_post(session: aiohttp.ClientSession, port: int, payload: dict) -> float:
    raw = json.dumps(payload).encode()
    started = time.perf_counter()
    async with session.post(f"http://127.0.0.1:{port}/slack/events", data=raw, headers=slack.signed_headers(raw)) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"the events endpoint answered {r.status}")
    return time.perf_counter() - started


# -- 1. arrival → first step -----------------------------------------------------------------------
async def timed_turns(ollama: FakeOllama, bot: Bot, turns: int, ask, shown) -> list[float]:
    """WARM_UP untimed turns, then `turns` timed ones: `await ask(n)` sends question n, and
    `await shown(asked)` returns once the first step in reply to it is visible."""
    timings = []
    for turn in range(-WARM_UP, turns):
        ollama.script(STEP, "247 days.")  # max_steps=1: plan, run, conclude
        started = time.perf_counter()
        await shown(await ask(turn))
        if turn >= 0:
            timings.append(time.perf_counter() - started)
        await bot.idle()
    return timings


async def in_memory_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    chat = ChatAdapter()
    bot = Bot(await Services.open(settings_for(ollama, data)), [chat])
    await bot.start()

    async def ask(turn: int) -> int:
        before = len(chat.posted)
        chat.deliver(IncomingMessage("testchat", "C1", "U1", f"question {turn}", message_id=f"m{turn}", mentions_bot=True))
        return before

    async def shown(before: int) -> None:
        while len(chat.posted) == before:
            await asyncio.sleep(0.0005)

    try:
        return await timed_turns(ollama, bot, turns, ask, shown)
    finally:
        await bot.stop()


async def slack_turns(ollama: FakeOllama, data: Path, turns: int, mode: str) -> tuple[list[float], list[float]]:
    """First-step times and acknowledgement times, Socket Mode or HTTP."""
    async with FakeSlack() as api, aiohttp.ClientSession() as session:
        extra = {"mode": "http", "signing_secret": slack.SIGNING_SECRET, "listen": "127.0.0.1", "port": free_port()} if mode == "http" else {}
        settings = settings_for(ollama, data, slack=slack_section(api, **extra))
        bot = Bot(await Services.open(settings), [SlackAdapter(settings)])
        await bot.start()
        acks: list = []  # seconds (HTTP), or (envelope id, time sent) to look up (Socket Mode)

        async def ask(turn: int) -> dict:
            event = slack.app_mention(f"<@{slack.BOT_USER_ID}> question {turn}")
            sent = time.perf_counter()
            if mode == "http":
                acks.append(await signed_post(session, settings.slack.port, slack.event_callback(event)))
            else:
                acks.append((await api.push(slack.event_callback(event)), sent))
            return event

        async def shown(event: dict) -> None:
            await api.wait_for(lambda: api.in_thread(event["channel"], event["ts"]))

        try:
            firsts = await timed_turns(ollama, bot, turns, ask, shown)
        finally:
            await bot.stop()
    acks = acks[WARM_UP:]
    return firsts, acks if mode == "http" else [api.acks[envelope][0] - sent for envelope, sent in acks]


async def telegram_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as api:
        settings = settings_for(ollama, data, telegram={"token": api.token, "base_url": api.base_url})
        bot = Bot(await Services.open(settings), [TelegramAdapter(settings)])
        await bot.start()

        async def ask(turn: int) -> dict:
            return api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, f"question {turn}")))["message"]

        async def shown(asked: dict) -> None:
            await api.wait_for(lambda: any(p.get("reply_parameters", {}).get("message_id") == asked["message_id"]
                                           for p in api.called("sendMessage")))

        try:
            return await timed_turns(ollama, bot, turns, ask, shown)
        finally:
            await bot.stop()


async def discord_turns(ollama: FakeOllama, data: Path, turns: int) -> list[float]:
    h = await start_discord_bot(settings_for(ollama, data, discord={"token": "bench-token"}), default_router())

    async def ask(turn: int):
        return await dpytest.message(f"{h.mention()} question {turn}", channel=h.channel, member=h.alice)

    async def shown(asked) -> None:
        await until(lambda: any(channel == asked.id for channel, _ in h.http.sent_payloads), step=0.0005)

    try:
        return await timed_turns(ollama, h.bot, turns, ask, shown)
    finally:
        await h.bot.stop()


# -- 3. many conversations at once ---------------------------------------------------------------
def answering(body: dict) -> Scripted:
    """The 200 ms model: answers each question by name, so order can be checked per thread."""
    asked = QUESTION.findall(body["messages"][-1]["content"])
    return Scripted(f"answer to {asked[-1] if asked else '?'}", delay=MODEL_DELAY)


async def slack_concurrent(ollama: FakeOllama, data: Path, conversations: int, turns: int) -> tuple[float, float, bool]:
    """Each conversation a mention in its own channel plus follow-ups in its thread, all sent at
    once over Socket Mode. Returns delivery time, time until every answer is final, order kept."""
    ollama.responder = answering
    async with FakeSlack() as api:
        settings = settings_for(ollama, data, mode="native", slack=slack_section(api))
        bot = Bot(await Services.open(settings), [SlackAdapter(settings)])
        await bot.start()
        try:
            started = time.perf_counter()
            threads = []
            for n in range(conversations):
                channel = f"C{n:06d}"
                first = slack.app_mention(f"<@{slack.BOT_USER_ID}> question {n:05d}-0", channel=channel)
                threads.append((channel, first["ts"]))
                await api.push(slack.event_callback(first))
                for t in range(1, turns):
                    follow = slack.app_mention(f"<@{slack.BOT_USER_ID}> question {n:05d}-{t}", channel=channel, thread_ts=first["ts"])
                    await api.push(slack.event_callback(follow))
            delivered = time.perf_counter() - started
            await api.wait_for(lambda: len(api.messages) >= conversations * turns, timeout=600)
            await bot.idle()
            elapsed = time.perf_counter() - started
        finally:
            await bot.stop()
            ollama.responder = None
        wrong = [(n, [m.text[:80] for m in api.in_thread(channel, ts)]) for n, (channel, ts) in enumerate(threads)
                 if [m.text for m in api.in_thread(channel, ts)] != [f"answer to question {n:05d}-{t}" for t in range(turns)]]
    for n, texts in wrong[:3]:
        print(f"  conversation {n} got: {texts}")
    return delivered, elapsed, not wrong


async def discord_concurrent(ollama: FakeOllama, data: Path, conversations: int) -> tuple[float, float, bool]:
    """Each conversation one mention in its own channel (dpytest delivers one message at a time)."""
    ollama.responder = answering
    h = await start_discord_bot(settings_for(ollama, data, mode="native", discord={"token": "bench-token"}),
                                default_router(), text_channels=conversations)
    try:
        started = time.perf_counter()
        asked = [await dpytest.message(f"{h.mention()} question {n:05d}-0", channel=channel, member=h.alice)
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


# -- report ----------------------------------------------------------------------------------------
def describe(name: str, timings: list[float]) -> float:
    ms = sorted(t * 1000 for t in timings)
    median = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"  {name:<34} median {median:7.1f} ms   p99 {p99:7.1f} ms   max {ms[-1]:7.1f} ms")
    return median


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def throughput(name: str, conversations: int, turns: int, delivered: float, elapsed: float, ordered: bool,
               in_flight: int) -> None:
    """Two ideals: every model call overlapping (what the goal names), and the best the default
    limit on requests in flight to the model server allows (llm.max_connections)."""
    ideal = delivered + turns * MODEL_DELAY  # each conversation's turns in sequence, all conversations at once
    capped = max(ideal, delivered + conversations * turns * MODEL_DELAY / in_flight)
    share = ideal / elapsed
    print(f"  {name}: {conversations} conversations × {turns} turns, delivered in {delivered:.2f} s, all answered "
          f"after {elapsed:.2f} s ({conversations * turns / elapsed:.0f} turns/s); answers in order in every thread: {ordered}")
    print(f"    ideal with every model call at once {ideal:.2f} s → {share:.0%} ({verdict(share >= THROUGHPUT_GOAL)}); "
          f"best with {in_flight} model requests in flight {capped:.2f} s → {capped / elapsed:.0%}")


async def main(turns: int, conversations: int, only: set[str]) -> None:
    async with FakeOllama() as ollama:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            print(f"1. arrival → first threaded step, zero-latency model, {turns} turns each (goal < {FIRST_STEP_GOAL_MS} ms)")
            base = describe("in-memory adapter", await in_memory_turns(ollama, data / "m", turns))
            medians, acks = {}, {}
            if "slack" in only:
                for mode in ("socket", "http"):
                    firsts, acks[mode] = await slack_turns(ollama, data / f"s-{mode}", turns, mode)
                    medians[f"slack ({mode})"] = describe(f"slack ({mode} mode)", firsts)
            if "telegram" in only:
                medians["telegram"] = describe("telegram (polling)", await telegram_turns(ollama, data / "t", turns))
            if "discord" in only:
                medians["discord"] = describe("discord (dpytest, new thread)", await discord_turns(ollama, data / "d", turns))
            for name, median in medians.items():
                print(f"  {name} / in-memory: {median / base:.2f}x   {verdict(median < FIRST_STEP_GOAL_MS)}")
            if acks:
                print(f"2. Slack acknowledgement (goal < {ACK_GOAL_MS} ms)")
                for mode, timings in acks.items():
                    label = "HTTP: signed event → 200" if mode == "http" else "Socket Mode: envelope → ack"
                    median = describe(label, timings)
                    print(f"    {verdict(max(timings) * 1000 < ACK_GOAL_MS)} (max against the goal; median {median:.1f} ms)")
            print(f"3. many conversations at once, {MODEL_DELAY * 1000:.0f} ms model")
            in_flight = load_settings(environ={}).llm.max_connections
            if "slack" in only:
                throughput("slack (socket)", conversations, 2, *await slack_concurrent(ollama, data / "sc", conversations, 2),
                           in_flight)
            if "discord" in only:
                throughput("discord (dpytest)", conversations, 1, *await discord_concurrent(ollama, data / "dc", conversations),
                           in_flight)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (bot, fakes and LanceDB together): {rss_mb:.0f} MB ({verdict(rss_mb < RSS_GOAL_MB)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--only", default="slack,telegram,discord", help="comma-separated platforms")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.conversations, set(args.only.split(","))))
