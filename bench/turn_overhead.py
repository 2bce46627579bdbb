"""What kagentbot itself costs per turn, with a model that answers instantly, and how long
`kagentbot ask` takes from a cold start to its first LLM request.

    python bench/turn_overhead.py [--turns 300] [--cold 5]
    python bench/turn_overhead.py --memory [--turns 600] [--rounds 3] [--compare OLD_CHECKOUT]

A turn is the seed showcase: plan `time_delta`, run it, plan `task_complete`, stream the answer.
Rows, side by side in one run:
  agent, in-process model    the loop, prompts, parsing and tool with a zero-latency LLMClient
  agent, fake Ollama (HTTP)  the same through the real ollama client to a loopback server
  bot + in-memory platform   router, per-conversation queue, renderer, adapter, in-process model
  bot + LanceDB memory       the same with the real memory store (recall and remember each turn),
                             turns back to back: the store's background writes and compactions
                             of one turn run during the next, so this row is throughput-bound
  … 50 ms between turns      the same turns with a 50 ms pause (untimed) after each, as when a
                             model takes time to answer: what one turn itself costs
And what the ops metrics cost a turn (`kagentbot run` with KAGENTBOT_OPS__PORT): the bot with an
in-memory platform, metrics off and on, in alternating batches; `--metrics-only` runs just that.

`--memory` runs only the two LanceDB rows, each in a fresh process and data directory, and adds
the process's CPU per turn (every thread: background writes and compactions included, counted
until they are flushed). The embedding model is loaded before timing, as `kagentbot run` does
at start (`warm`). `--compare DIR` runs the same rows, round after round in turn, with the
kagentbot package of another checkout (e.g. `git worktree add /tmp/base HEAD~3`): before and
after side by side on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if "--code" in sys.argv:  # --memory --compare: the child runs another checkout's kagentbot
    ROOT = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from kagentbot.agent.llm import ChatReply, ModelInfo, make_client  # noqa: E402
from kagentbot.agent.llm_meter import MeteredLLM  # noqa: E402
from kagentbot.agent.loop import Agent, TurnRequest  # noqa: E402
from kagentbot.agent.slots import FairGate  # noqa: E402
from kagentbot.bot.app import Bot  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.chat.messages import IncomingMessage  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.memory.types import Audience, ConversationBuffer  # noqa: E402
from kagentbot.ops import metrics  # noqa: E402
from kagentbot.tools.catalog import build_registry  # noqa: E402
from tests.bot.chat_adapter import ChatAdapter  # noqa: E402
from tests.fakes.ollama_server import FakeOllama, Scripted, complete, task  # noqa: E402

PLAN = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
DONE = complete()
ANSWER = "Messi is older than Antonela Roccuzzo by 247 days."
QUESTION = "How many days older is Messi than Antonela Roccuzzo?"


class InstantModel:
    """A zero-latency LLMClient: plan, complete, then stream the answer in a few pieces."""

    host = "in-process"

    def __init__(self) -> None:
        self._step = 0
        self.slots = FairGate(64)  # never waited at (calls go straight through), read by the meter

    async def complete(self, messages, *, model, options, tools=None, schema=None) -> ChatReply:
        self._step += 1
        return ChatReply(PLAN if self._step % 2 else DONE)

    async def stream(self, messages, *, model, options) -> AsyncIterator[str]:
        for i in range(0, len(ANSWER), 8):
            yield ANSWER[i : i + 8]

    async def describe(self, model: str) -> ModelInfo:
        return ModelInfo(model, 8192, False)

    async def list_models(self) -> list[str]:
        return ["kagentlm"]

    async def close(self) -> None:
        return None


def scripted(server: FakeOllama) -> None:
    server.responder = lambda body: Scripted(
        ANSWER if body.get("stream") else (DONE if '"total_days' in body["messages"][0]["content"] else PLAN), chunk=8
    )


async def time_turns(run_one, turns: int, pause: float = 0.0) -> list[float]:
    samples = []
    for _ in range(turns):
        started = time.perf_counter()
        await run_one()
        samples.append((time.perf_counter() - started) * 1000)
        if pause:
            await asyncio.sleep(pause)  # not timed: background work of the turn may finish
    return samples


async def agent_rows(settings, turns: int) -> dict[str, list[float]]:
    tools = build_registry(settings)
    rows = {}
    agent = Agent(settings, InstantModel(), tools, ConversationBuffer())
    request = TurnRequest(QUESTION, Audience("user:bench:1"))

    async def in_process() -> None:
        async for _ in agent.run(request):
            pass

    await time_turns(in_process, 20)  # warm-up: lazy imports, first prompt build
    rows["agent, in-process model"] = await time_turns(in_process, turns)
    async with FakeOllama() as server:
        scripted(server)
        http_settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"host": server.url})})
        client = make_client(http_settings.llm)
        over_http = Agent(http_settings, client, tools, ConversationBuffer())

        async def via_http() -> None:
            async for _ in over_http.run(request):
                pass

        await time_turns(via_http, 10)
        rows["agent, fake Ollama (HTTP)"] = await time_turns(via_http, turns)
        await client.close()
    return rows


async def bot_row(settings, turns: int, memory: str, pause: float = 0.0, cpu: list[float] | None = None) -> list[float]:
    services = await Services.open(settings)
    if memory == "buffer":
        await _use_buffer(services)
    elif cpu is not None:
        await warm(services.memory)
    services.llm = InstantModel()
    bot, one_turn = await _started_bot(services)
    await time_turns(one_turn, 20, pause)
    if cpu is not None:
        await services.memory.flush()
    started = time.process_time()
    samples = await time_turns(one_turn, turns, pause)
    if cpu is not None:
        await services.memory.flush()  # the turns' background writes and compactions count too
        cpu.append((time.process_time() - started) / turns * 1000)
    await bot.stop()
    return samples


async def metrics_overhead(settings, rounds: int, batch: int = 50) -> None:
    """Two bots on in-memory platforms, one plain and one with the LLM client metered and counting
    on, run batches of turns in turn (off, on, off, on...), so that the machine's load falls on
    both. Each batch is timed by the wall clock and by this process's CPU time: on a busy machine
    the CPU time is the steadier figure, since waiting for a core is not counted."""
    bots = {name: await _bench_bot(settings, metered=name == "on") for name in ("off", "on")}
    meters = metrics.enable()
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    for round_no in range(rounds + 1):
        for name in ("off", "on"):
            metrics.enable(meters) if name == "on" else metrics.disable()
            started = time.process_time()
            timed = await time_turns(bots[name][1], batch)
            if round_no:  # the first round warms both up
                wall[name].append(statistics.median(timed))
                cpu[name].append((time.process_time() - started) * 1000 / batch)
    metrics.disable()
    for bot, _ in bots.values():
        await bot.stop()
    replayed = _replay_cost(meters)
    wrapped = await _wrapper_cost(meters)
    print(f"\nmetrics cost per turn: bot + in-memory platform, {rounds} rounds of {batch} turns each way, alternating")
    print(f"{'metrics':8} {'wall ms (median of round medians)':>34} {'CPU ms per turn (median of rounds)':>36}")
    for name in ("off", "on"):
        print(f"{name:8} {statistics.median(wall[name]):34.3f} {statistics.median(cpu[name]):36.3f}")
    wall_diff = statistics.median(b - a for a, b in zip(wall["off"], wall["on"])) * 1000
    cpu_diff = statistics.median(b - a for a, b in zip(cpu["off"], cpu["on"])) * 1000
    print(f"on − off per turn: {cpu_diff:+.1f} µs CPU, {wall_diff:+.1f} µs wall (median of the rounds' differences)")
    best = (min(cpu["on"]) - min(cpu["off"])) * 1000
    quiet = (_low(cpu["on"]) - _low(cpu["off"])) * 1000
    print(f"on − off per turn, CPU of the quietest rounds: {best:+.1f} µs (fastest round each way), "
          f"{quiet:+.1f} µs (10th percentile)")
    print(f"its parts, timed alone: the metric calls of one turn {replayed:.1f} µs; the metered LLM client's "
          f"two plans and one streamed answer {wrapped:.1f} µs; together {replayed + wrapped:.1f} µs")
    print("goal: < 0.1 ms (100 µs) per turn")


async def _wrapper_cost(meters, repeats: int = 3000) -> float:
    """µs the metered LLM client adds to a turn's LLM calls (two plans, one streamed answer),
    its counting included: the same calls through the bare and the metered client, alternately."""
    async def calls(llm) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            await llm.complete([], model="m", options={})
            await llm.complete([], model="m", options={})
            async for _ in llm.stream([], model="m", options={}):
                pass
        return time.perf_counter() - started

    metrics.enable(meters)
    bare, metered = [], []
    for _ in range(7):
        bare.append(await calls(InstantModel()))
        metered.append(await calls(MeteredLLM(InstantModel())))
    metrics.disable()
    return (min(metered) - min(bare)) * 1e6 / repeats


def _low(values: list[float]) -> float:
    return sorted(values)[len(values) // 10]


async def _bench_bot(settings, metered: bool):
    services = await Services.open(settings)
    await _use_buffer(services)
    services.llm = MeteredLLM(InstantModel()) if metered else InstantModel()
    return await _started_bot(services)


class BufferMemory(ConversationBuffer):
    """The in-process buffer where the bot holds a store: nothing written behind, nothing to
    close, no documents to search."""

    async def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def for_audience(self, audience):
        return NoKnowledge(audience)

    async def private_matches(self, user_scope: str, query: str) -> bool:
        return False


class NoKnowledge:
    def __init__(self, audience) -> None:
        self.audience = audience

    async def search_knowledge(self, query: str, limit: int) -> list:
        return []


async def _use_buffer(services) -> None:
    """Swap the opened LanceDB memory for an in-process buffer (the bot's own cost, no store)."""
    await services.memory.close() if asyncio.iscoroutinefunction(services.memory.close) else services.memory.close()
    services.memory = BufferMemory()


async def _started_bot(services):
    """A running Bot on an in-memory platform, and a function that asks it one question in one
    of 50 DMs and waits until the answer is out."""
    chat = ChatAdapter()
    bot = Bot(services, [chat])
    await bot.start()
    counter = iter(range(10**9))

    async def one_turn() -> None:
        n = next(counter)
        chat.deliver(IncomingMessage("testchat", f"D{n % 50}", f"U{n % 50}", QUESTION, message_id=str(n), is_dm=True))
        await bot.idle()

    return bot, one_turn


def _replay_cost(meters, repeats: int = 2000) -> float:
    """µs the metric calls of one bench turn take by themselves (recorded from the counts)."""
    per_turn = {}
    for family in meters.registry.collect():
        for found in family.samples:
            if found.name.endswith("_total") or found.name.endswith("_count"):
                per_turn[found.name, tuple(sorted(found.labels.items()))] = found.value
    turns = sum(v for (name, _), v in per_turn.items() if name == "kagentbot_turns_total")
    calls = {key: round(v / turns) for key, v in per_turn.items()}
    sent = calls.get(("kagentbot_messages_sent_total", (("platform", "testchat"),)), 0)
    edits = calls.get(("kagentbot_message_edits_total", (("platform", "testchat"),)), 0)
    llm = {call: calls.get(("kagentbot_llm_calls_total", (("call", call), ("outcome", "ok"))), 0)
           for call in ("complete", "stream")}
    metrics.enable(meters)
    started = time.perf_counter()
    for _ in range(repeats):
        metrics.turn_finished("testchat", "answered", 0.001, 0.0005)
        metrics.tool_call("time_delta", True, 0.0001)
        for call, count in llm.items():
            for _ in range(count):
                metrics.llm_call(call, "ok", 0.0001)
        for _ in range(sent):
            metrics.message_sent("testchat")
        for _ in range(edits):
            metrics.message_edited("testchat")
    metrics.disable()
    return (time.perf_counter() - started) * 1e6 / repeats
async def warm(memory) -> None:
    """What `kagentbot run` does at start (`warm`: load the model), waited for here."""
    memory.warm()
    embed = getattr(memory, "_embedder", None)
    if embed is not None:
        await embed.embed(["warm up"])


async def memory_rows(turns: int) -> dict[str, dict[str, float]]:
    """The two LanceDB rows with CPU per turn, each in a fresh data directory."""
    rows = {}
    for name, pause in (("back to back", 0.0), ("50 ms between turns", 0.05)):
        with tempfile.TemporaryDirectory() as data:
            settings = load_settings(data_dir=Path(data), render={"verbosity": "thread"})
            cpu: list[float] = []
            median, p99 = summary(await bot_row(settings, turns, "lancedb", pause, cpu))
            rows[name] = {"median": median, "p99": p99, "cpu": cpu[0]}
    return rows


async def child(code: str, turns: int) -> dict[str, dict[str, float]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--memory-child", "--code", code, "--turns", str(turns),
        env={**os.environ, "PYTHONPATH": code}, stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])


async def compare_memory(turns: int, rounds: int, other: str | None) -> None:
    codes = {"this checkout": str(Path(__file__).resolve().parents[1])}
    if other:
        codes = {"compared checkout": str(Path(other).resolve()), **codes}
    results: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in codes}
    for _ in range(rounds):  # in turn, so that both see the same machine load
        for name, code in codes.items():
            results[name].append(await child(code, turns))
    print(f"bot + LanceDB memory, zero-latency model ({turns} turns per row, {rounds} rounds, each a fresh process)")
    print(f"{'code':18} {'row':22} {'median ms':>16} {'p99 ms':>16} {'CPU ms/turn':>16}")
    for name, runs in results.items():
        for row in runs[0]:
            cells = [" / ".join(f"{run[row][key]:.1f}" for run in runs) for key in ("median", "p99", "cpu")]
            print(f"{name:18} {row:22} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")
    print("goal: p99 < 50 ms back to back (each figure: one per round)")


# What `kagentbot ask` does before its first LLM request, step by step, in a fresh interpreter.
PHASES = """
import asyncio, sys, time
from pathlib import Path
t0 = time.perf_counter(); marks = []
def lap(name): marks.append((name, time.perf_counter()))
import kagentbot.cli; kagentbot.cli.build_parser()
from kagentbot.adapters.console_adapter import console_message; lap("import the CLI, build the parser")
from kagentbot.config.settings import load_settings
settings = load_settings(data_dir=Path(sys.argv[1])); lap("load settings")
async def main():
    from kagentbot.tools.catalog import build_registry
    from kagentbot.persona.store import PersonaStore
    from kagentbot.bot.services import Services
    build_registry(settings); await PersonaStore.open(settings); lap("import services, build tools, personas")
    from kagentbot.memory.startup.lazy_client import import_lancedb
    import_lancedb(); lap("import lancedb (third party; its REST client deferred)")
    from kagentbot.memory.store import MemoryStore
    from kagentbot.memory.types import Audience
    store = await MemoryStore.open(settings); lap("open the memory store")
    me = console_message("x", sys.argv[2]).audience  # whose documents the data directory holds
    await store.recall(me, "warm up", turns=4, limit=4); lap("first recall (loads the embedder)")
    await store.recall(me, "again", turns=4, limit=4); lap("a later recall")
    store.close()
asyncio.run(main())
last = t0
for name, at in marks:
    print(f"{(at - last) * 1000:.0f}\t{name}"); last = at
"""


async def phases(data: str, user: str) -> list[tuple[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PHASES, data, user, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    rows = [line.split("\t", 1) for line in out.decode().splitlines() if "\t" in line]
    return [(name, float(ms)) for ms, name in rows]


async def interpreter_start(runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await process.wait()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def report_cold_start(runs: int) -> None:
    """The spawned `kagentbot ask` runs of bench/cold_start.py, then where the time goes."""
    from bench import cold_start

    print(f"`kagentbot ask` cold start → first LLM request ({runs} runs each)")
    with tempfile.TemporaryDirectory(prefix="kagentbot-cold-") as tmp:
        root = Path(tmp)
        template = root / "seeded"
        await cold_start.seed(template)
        async with FakeOllama() as server:
            empty = await cold_start.series(server, runs, None, root / "empty")
            seeded = await cold_start.series(server, runs, template, root / "docs")
        print("  " + cold_start.line("empty data dir:", empty))
        print("  " + cold_start.line(f"data dir with 4 documents of {cold_start.USER}:", seeded))
        print(f"  python -c pass: median {await interpreter_start(runs):.0f} ms (the floor)")
        print("  where the time goes (one run, in-process marks, the data dir with documents):")
        for name, ms in await phases(str(template), cold_start.USER):
            print(f"    {ms:6.0f} ms  {name}")


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--metrics-rounds", type=int, default=20)
    parser.add_argument("--metrics-only", action="store_true", help="only the metrics on/off comparison")
    parser.add_argument("--memory", action="store_true", help="only the LanceDB rows, with CPU per turn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="DIR", help="also run the LanceDB rows with the code in DIR")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.metrics_only:
        with tempfile.TemporaryDirectory() as data:
            await metrics_overhead(load_settings(data_dir=Path(data), render={"verbosity": "thread"}), args.metrics_rounds)
        return
    if args.memory_child:
        print(json.dumps(await memory_rows(args.turns)))
        return
    if args.memory or args.compare:
        await compare_memory(args.turns, args.rounds, args.compare)
        return
    if args.cold:  # first: the LanceDB rows below leave background work that would share the CPU
        await report_cold_start(args.cold)
    with tempfile.TemporaryDirectory() as data:
        settings = load_settings(data_dir=Path(data), render={"verbosity": "thread"})
        rows = await agent_rows(settings, args.turns)
        rows["bot + in-memory platform"] = await bot_row(settings, args.turns, "buffer")
        rows["bot + LanceDB memory"] = await bot_row(settings, max(args.turns // 3, 30), "lancedb")
    with tempfile.TemporaryDirectory() as data:  # a fresh store: the same number of rows as above
        settings = load_settings(data_dir=Path(data), render={"verbosity": "thread"})
        rows["… 50 ms between turns"] = await bot_row(settings, max(args.turns // 3, 30), "lancedb", 0.05)
    base = statistics.median(rows["agent, in-process model"])
    print(f"\nper-turn overhead, zero-latency model ({args.turns} turns; 2-step task)")
    print(f"{'path':32} {'median ms':>10} {'p99 ms':>8} {'× agent':>8}")
    for name, samples in rows.items():
        median, p99 = summary(samples)
        print(f"{name:32} {median:10.2f} {p99:8.2f} {median / base:8.1f}")
    print("goal: median < 5 ms, p99 < 20 ms")
    with tempfile.TemporaryDirectory() as data:
        await metrics_overhead(load_settings(data_dir=Path(data), render={"verbosity": "thread"}), args.metrics_rounds)


if __name__ == "__main__":
    asyncio.run(main())
