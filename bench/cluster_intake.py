"""What sharing conversations through Redis costs a message: from the platform's delivery to
the bot's first post, one process against one cluster-mode replica (a loopback redis-server),
side by side in alternating rounds, with a fake Ollama that answers at once.

    python bench/cluster_intake.py [--messages 100] [--rounds 3]

In cluster mode the adapter awaits the intake (dedupe and store in one script) before it would
acknowledge the platform, then the replica takes the conversation's lease, reads its head and
progress, and checks the lease before each post. Each message is its own conversation, sent
after the previous one was answered: latency, not throughput."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.bot.app import Bot  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.chat.adapter import Destination, SentMessage  # noqa: E402
from kagentbot.chat.messages import IncomingMessage  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from tests.bot.chat_adapter import ChatAdapter  # noqa: E402
from tests.fakes.ollama_server import FakeOllama, Scripted  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402


class Timed(ChatAdapter):
    """Notes when the first post for each chat goes out."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[str, float] = {}
        self.answered: dict[str, asyncio.Event] = {}

    async def send(self, where: Destination, text: str) -> SentMessage:
        sent = await super().send(where, text)
        self.first.setdefault(where.chat_id, time.perf_counter())
        self.answered.setdefault(where.chat_id, asyncio.Event()).set()
        return sent


async def run(bot: Bot, chat: Timed, tag: str, messages: int) -> list[float]:
    took = []
    for n in range(messages):
        chat_id = f"{tag}-{n}"
        message = IncomingMessage("testchat", chat_id, "U1", "hello", message_id=str(1000 + n), is_dm=True)
        chat.answered[chat_id] = asyncio.Event()
        began = time.perf_counter()
        if chat.intake is not None:
            await chat.intake.take(chat, message)  # as an adapter does before it acknowledges
        else:
            chat.deliver(message)
        await chat.answered[chat_id].wait()
        took.append((chat.first[chat_id] - began) * 1000)
        await bot.idle()
    return took


async def start(settings_for, cluster: dict | None) -> tuple[Bot, Timed]:
    chat = Timed()
    bot = Bot(await Services.open(settings_for(cluster)), [chat])  # as `kagentbot run` builds it
    await bot.start()
    return bot, chat


async def main(messages: int, rounds: int) -> None:
    async with FakeOllama() as model:
        model.responder = lambda body: Scripted("Hi.")
        with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as redis:
            def settings_for(cluster: dict | None):
                extra = {"cluster": cluster} if cluster else {}
                return load_settings(environ={}, data_dir=Path(tmp) / ("c" if cluster else "s"),
                                     llm={"host": model.url, "mode": "native"}, **extra)

            cluster = {"enabled": True, "redis_url": redis.url, "replica_id": "bench", "key_prefix": "bench"}
            single, clustered = await start(settings_for, None), await start(settings_for, cluster)
            await run(*single, "warm-s", 5)
            await run(*clustered, "warm-c", 5)
            times: dict[str, list[float]] = {"one process": [], "cluster (1 replica, Redis)": []}
            for r in range(rounds):
                times["one process"] += await run(*single, f"s{r}", messages)
                times["cluster (1 replica, Redis)"] += await run(*clustered, f"c{r}", messages)
            for bot, _ in (single, clustered):
                await bot.stop()
    base = statistics.median(times["one process"])
    print(f"message → first post, {messages} messages × {rounds} rounds (ms)")
    print(f"{'mode':<28}{'median':>9}{'p90':>9}{'vs one process':>16}")
    for mode, values in times.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        median = statistics.median(values)
        print(f"{mode:<28}{median:>9.2f}{p90:>9.2f}{median - base:>+15.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))
