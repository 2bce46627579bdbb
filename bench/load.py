"""The bot under load and under faults, in one run: the real Bot with the real LanceDB memory,
driven through an in-memory platform, against the fake Ollama server in a process of its own
(so its CPU is not counted as the bot's) with a fixed latency per call and a fixed number of
slots, which it enforces as Ollama's OLLAMA_NUM_PARALLEL does.

Phases, one after the other:
  calm      steady users (each asks every few seconds in their DM) and scheduled questions
  flood     the same, while one user sends hundreds of mentions in a channel and a few busy
            users each send dozens: steady waits side by side with calm, and Jain's fairness
            index over the backlogged users' answered turns while all of them were backlogged
  burst     hundreds of users ask once each at the same moment (that many conversations open
            at once): throughput against the LLM-bound ideal (slots ÷ latency), CPU per turn,
            peak RSS
  fault     the model server answers 500s, then 429s, then stalls, then trickles tokens, while
            steady users keep asking; then it recovers and every user asks again
Every question is accounted for: answered, failed with a message, or refused with a "slow down"
reply; anything else is lost (goal: 0).

    python bench/load.py [--quick] [--before] [--ahead N]
    (default ~2 min on 2 cores, --quick ~20 s; --before adds the flood on the bot as it was:
    one first-come-first-served line for model calls and no per-user caps; --ahead N adds
    calm, flood and burst with N calls more in flight than the server has slots)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.bot.app import Bot  # noqa: E402
from kagentbot.bot.services import Services  # noqa: E402
from kagentbot.chat.adapter import BaseAdapter, Capabilities, Destination, SentMessage  # noqa: E402
from kagentbot.chat.messages import IncomingMessage  # noqa: E402
from kagentbot.config.settings import LLMSettings, load_settings  # noqa: E402

THROUGHPUT_GOAL, WAIT_RATIO_GOAL, FAIRNESS_GOAL, RSS_GOAL_MB = 0.95, 2.0, 0.9, 1024
CURSOR = " ▍"
ANSWER = "answer to "
FAULTS = ("stall", "500", "429", "trickle")


@dataclass(frozen=True)
class Profile:
    slots: int
    latency: float  # seconds per model call
    steady_users: int
    steady_every: float  # seconds between one steady user's questions
    phase: float  # seconds of calm, of flood, and of faults
    flood: int  # mentions from the flood user
    busy_users: int
    busy_each: int
    burst: int  # users asking at once
    scheduled_every: float


DEFAULT = Profile(slots=8, latency=0.3, steady_users=6, steady_every=2.0, phase=10.0, flood=300,
                  busy_users=3, busy_each=30, burst=500, scheduled_every=2.0)
QUICK = Profile(slots=8, latency=0.15, steady_users=4, steady_every=1.0, phase=3.0, flood=150,
                busy_users=2, busy_each=15, burst=120, scheduled_every=1.0)


# -- the fake model, in its own process ------------------------------------------------------------
def serve_fake(slots: int, latency: float) -> None:
    """`load.py --serve-fake SLOTS LATENCY`: prints its URL, then serves until killed. POST
    /_bench/mode {"mode": ...} switches between answering and the faults; GET /_bench/stats."""
    from aiohttp import web

    from tests.fakes.ollama_server import FakeOllama, Scripted, complete

    mode = {"now": "ok"}

    def reply(body: dict) -> Scripted:
        planning = body.get("stream") is False
        asked = re.findall(r"question (\S+?):", body["messages"][-1]["content"])
        text = complete() if planning else ANSWER + (asked[-1] if asked else "?") + ". " + "All is well. " * 8
        if mode["now"] == "500":
            return Scripted(status=500, error="fake: internal server error", delay=0.05)
        if mode["now"] == "429":
            return Scripted(status=429, error="fake: too many requests, slow down", delay=0.05)
        if mode["now"] == "stall":
            return Scripted(text, delay=60.0)
        if mode["now"] == "trickle" and not planning:
            return Scripted(text, delay=latency, chunk=4, interval=0.3)
        return Scripted(text, delay=latency, chunk=48)

    async def set_mode(request: web.Request) -> web.Response:
        mode["now"] = (await request.json())["mode"]
        return web.json_response(mode)

    class TimedFake(FakeOllama):
        """Keeps when it worked on each call (perf_counter: the system's monotonic clock, the
        same in the bench's process), to tell the model's own time from the hand-overs."""

        worked: list[tuple[float, float]] = []

        async def _work(self, request, body, shape):
            started = time.perf_counter()
            try:
                return await super()._work(request, body, shape)
            finally:
                self.worked.append((started, time.perf_counter()))

    async def main() -> None:
        fake = TimedFake(parallel=slots)
        fake.responder = reply

        async def stats(request: web.Request) -> web.Response:
            return web.json_response({"calls": fake.calls, "max_in_flight": fake.max_in_flight, "worked": fake.worked})

        fake.app.router.add_post("/_bench/mode", set_mode)
        fake.app.router.add_get("/_bench/stats", stats)
        print(await fake.start(), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class FakeProcess:
    def __init__(self, slots: int, latency: float) -> None:
        self._process = subprocess.Popen([sys.executable, __file__, "--serve-fake", str(slots), str(latency)],
                                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.url = self._process.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.url.startswith("http"):
            raise RuntimeError("the fake model server did not start")

    async def call(self, session, path: str, body: dict | None = None) -> dict:
        request = session.post(self.url + path, json=body) if body is not None else session.get(self.url + path)
        async with request as response:
            return await response.json()

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)


class FifoGate:
    """The gate as it was: one first-come-first-served line for every call (for `--before`)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = asyncio.Semaphore(capacity)
        self._waiting = 0

    async def acquire(self, claim) -> None:
        self._waiting += 1
        try:
            await self._free.acquire()
        finally:
            self._waiting -= 1
        if claim.started is not None:
            claim.started.set()

    async def release(self, claim) -> None:
        self._free.release()

    async def position(self, turn: str) -> None:
        return None

    def in_use(self) -> int:
        return self.capacity - self._free._value

    def queue_length(self) -> int:
        return self._waiting

    async def close(self) -> None:
        pass


# -- the platform ---------------------------------------------------------------------------------
@dataclass
class Asked:
    message_id: str
    user: str
    role: str  # steady, scheduled, flood, busy, burst
    phase: str
    at: float


@dataclass
class BenchPlatform(BaseAdapter):
    """An in-memory platform keeping only what the bench needs: when each question's answer
    was complete, and which failed with a message (edits as cheap as a dict lookup)."""

    platform: str = "bench"
    capabilities: Capabilities = Capabilities(True, True, 4000, 0.0, 0.0, "plain")
    done: dict[str, float] = field(default_factory=dict)  # message id → answer complete
    answers: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notices: int = 0
    slow_downs: int = 0
    _threads: dict[str, str] = field(default_factory=dict)  # sent message id → thread
    _receive: object = None

    async def start(self, receive) -> None:
        self._receive = receive

    async def stop_receiving(self) -> None:
        self._receive = None

    async def stop(self) -> None:
        self._receive = None

    def deliver(self, message: IncomingMessage) -> None:
        self._receive(self, message)

    async def destination(self, message: IncomingMessage) -> Destination:
        return Destination(message.chat_id, message.message_id, message.message_id)

    async def send(self, where: Destination, text: str) -> SentMessage:
        sent_id = f"s{len(self._threads)}"
        self._threads[sent_id] = where.thread_id or where.reply_to
        self._note(self._threads[sent_id], text)
        return SentMessage(where.chat_id, sent_id, where.thread_id)

    async def edit(self, message: SentMessage, text: str) -> None:
        self._note(self._threads[message.message_id], text)

    async def delete(self, message: SentMessage) -> None:
        return None

    def _note(self, thread: str, text: str) -> None:
        if text.startswith(ANSWER) and not text.endswith(CURSOR):
            self.done[thread] = time.perf_counter()
            self.answers[thread] = text
        elif text.startswith("⚠️"):
            self.failed[thread] = text
        elif text.startswith("⏳"):
            self.notices += 1
        elif text.startswith("Slow down"):
            self.slow_downs += 1


# -- driving --------------------------------------------------------------------------------------
class Driver:
    def __init__(self, bot: Bot, platform: BenchPlatform) -> None:
        self.bot, self.platform = bot, platform
        self.asked: list[Asked] = []
        self.phase = ""
        self._ids = Counter()

    def ask(self, user: str, role: str, chat: str = "", scheduled: bool = False) -> None:
        self._ids[user] += 1
        message_id = f"{user}.{self._ids[user]}"
        dm = not chat
        message = IncomingMessage("bench", chat or f"dm-{user}", user, f"question {message_id}: how are things?",
                                  message_id=message_id, is_dm=dm, mentions_bot=not dm,
                                  schedule_id=f"job-{user}" if scheduled else "")
        self.asked.append(Asked(message_id, user, role, self.phase, time.perf_counter()))
        self.platform.deliver(message)

    async def steady(self, profile: Profile, seconds: float) -> None:
        """Steady users ask on a fixed beat (open loop, staggered), and scheduled questions fire."""
        started = time.perf_counter()
        beats = [(n * profile.steady_every / profile.steady_users, f"steady{n}", "steady")
                 for n in range(profile.steady_users)]
        beats += [(0.5, "owner0", "scheduled"), (0.5 + profile.scheduled_every / 2, "owner1", "scheduled")]
        while beats:
            beats.sort()
            at, user, role = beats.pop(0)
            if at >= seconds:
                continue
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            self.ask(user, role, scheduled=role == "scheduled")
            beats.append((at + (profile.steady_every if role == "steady" else profile.scheduled_every), user, role))

    async def drain(self, limit: float = 120.0) -> None:
        await asyncio.wait_for(self.bot.idle(), limit)

    def of(self, phase: str, *roles: str) -> list[Asked]:
        return [a for a in self.asked if a.phase == phase and (not roles or a.role in roles)]

    def waits(self, asked: list[Asked]) -> list[float]:
        return [self.platform.done[a.message_id] - a.at for a in asked if a.message_id in self.platform.done]


class Sampler:
    """Peaks, sampled while a phase runs: RSS, open conversations, LLM slots in use and waiting."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.peak = Counter()
        self.in_use: list[int] = []  # slots in use, each sample
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            slots = self.bot.services.slots
            now = {"rss_mb": _rss_mb(), "conversations": len(self.bot._conversations),
                   "slots_in_use": slots.in_use(), "slot_queue": slots.queue_length()}
            for key, value in now.items():
                self.peak[key] = max(self.peak[key], value)
            self.in_use.append(now["slots_in_use"])
            await asyncio.sleep(0.1)

    def __enter__(self) -> Sampler:
        self.peak.clear()
        self.in_use.clear()
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self._task.cancel()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- phases ---------------------------------------------------------------------------------------
async def calm(driver: Driver, profile: Profile) -> None:
    driver.phase = "calm"
    await driver.steady(profile, profile.phase)
    await driver.drain()


async def flood(driver: Driver, profile: Profile) -> None:
    driver.phase = "flood"
    for n in range(profile.flood):
        driver.ask("flooder", "flood", chat="flood-channel")
    for b in range(profile.busy_users):
        for n in range(profile.busy_each):
            driver.ask(f"busy{b}", "busy", chat=f"busy-channel-{b}")
    await driver.steady(profile, profile.phase)
    await driver.drain()


async def burst(driver: Driver, profile: Profile, fake: FakeProcess, session) -> dict:
    driver.phase = "burst"
    calls = (await fake.call(session, "/_bench/stats"))["calls"]
    cpu, started = time.process_time(), time.perf_counter()
    with Sampler(driver.bot) as sampler:
        for n in range(profile.burst):
            driver.ask(f"crowd{n}", "burst", chat=f"room-{n % 50}")
        await driver.drain()
    asked = driver.of("burst")
    finished = max((driver.platform.done.get(a.message_id, started) for a in asked), default=started)
    served = (await fake.call(session, "/_bench/stats"))["calls"] - calls
    answered = sum(a.message_id in driver.platform.done for a in asked)
    seconds = max(finished - started, 1e-9)
    held = statistics.fmean(sampler.in_use) / profile.slots if sampler.in_use else math.nan
    worked = [(a, b) for a, b in (await fake.call(session, "/_bench/stats"))["worked"] if a >= started]
    return {"throughput": served / seconds / (profile.slots / profile.latency), "held": held,
            "per_call_ms": held * profile.slots * seconds / max(served, 1) * 1000,
            "cpu_ms": (time.process_time() - cpu) * 1000 / max(answered, 1), "peak": dict(sampler.peak),
            "seconds": finished - started, **losses(worked, started, seconds, profile)}


def losses(worked: list[tuple[float, float]], started: float, seconds: float, profile: Profile) -> dict:
    """Where the burst's throughput short of the ideal went, as shares of the ideal: the wait
    for the first call (every turn's preparation at once), the fake model's own time over its
    nominal latency, and what is left: a server slot idle between one call's end and the next
    call's start (the bot and the server handing over)."""
    if not worked:
        return {}
    calls = len(worked)
    own = statistics.fmean(b - a for a, b in worked)
    first = min(a for a, _ in worked) - started
    busy = sum(b - a for a, b in worked) / (profile.slots * seconds)
    return {"first_call_s": first, "model_ms": own * 1000, "server_busy": busy,
            "lost_first": first / seconds, "lost_model": busy * (1 - profile.latency / own),
            "lost_handover": 1 - busy - first / seconds, "calls": calls}


async def fault(driver: Driver, profile: Profile, fake: FakeProcess, session) -> None:
    driver.phase = "fault"
    steady = asyncio.create_task(driver.steady(profile, profile.phase))
    for mode in FAULTS:
        await fake.call(session, "/_bench/mode", {"mode": mode})
        await asyncio.sleep(profile.phase / len(FAULTS))
    await steady
    await fake.call(session, "/_bench/mode", {"mode": "ok"})
    await driver.drain()
    driver.phase = "recovered"
    for n in range(profile.steady_users):
        driver.ask(f"steady{n}", "steady")
    await driver.drain()


# -- figures --------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if values and any(values) else math.nan


def fairness(driver: Driver) -> tuple[float, dict[str, int]]:
    """Jain's index over the backlogged users' answered turns, counted up to the moment the
    first of them ran out of questions (until then each could have used every slot)."""
    done = driver.platform.done
    users = {a.user for a in driver.of("flood", "flood", "busy")}
    last = {u: max(done[a.message_id] for a in driver.of("flood", "flood", "busy") if a.user == u and a.message_id in done)
            for u in users}
    window = min(last.values())
    served = {u: sum(1 for a in driver.of("flood", "flood", "busy") if a.user == u and done.get(a.message_id, math.inf) <= window)
              for u in users}
    return jain(list(served.values())), served


def accounting(driver: Driver) -> dict[str, int]:
    platform, bot = driver.platform, driver.bot
    answered = sum(a.message_id in platform.done for a in driver.asked)
    failed = sum(a.message_id in platform.failed and a.message_id not in platform.done for a in driver.asked)
    refused = sum(bot.refused.values())
    wrong = sum(1 for mid, text in platform.answers.items() if not text.startswith(f"{ANSWER}{mid}."))
    return {"asked": len(driver.asked), "answered": answered, "failed with a message": failed,
            "refused (slow down)": refused, "lost": len(driver.asked) - answered - failed - refused,
            "answered to the wrong question": wrong}


def report(profile: Profile, driver: Driver, burst_figures: dict, cpu_ms: float, before: Driver | None) -> None:
    ms = 1000
    columns = [("calm", driver, "calm"), ("flood", driver, "flood")]
    if before is not None:
        columns.append(("flood, before", before, "flood"))
    steady = [d.waits(d.of(phase, "steady")) for _, d, phase in columns]
    scheduled = [d.waits(d.of(phase, "scheduled")) for _, d, phase in columns]
    ratio = percentile(steady[1], 0.99) / percentile(steady[0], 0.99)
    peak = burst_figures["peak"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmodel: {profile.slots} slots × {profile.latency * ms:.0f} ms per call "
          f"(LLM-bound ideal {profile.slots / profile.latency:.1f} calls/s); 2 calls per turn (plan, answer)")
    print(f"{'':44}" + "".join(f"{name:>15}" for name, _, _ in columns) + "   goal")
    _row("steady users, wait ask→answer p50 (ms)", [percentile(w, .5) * ms for w in steady])
    _row("steady users, wait ask→answer p99 (ms)", [percentile(w, .99) * ms for w in steady],
         f"flood ≤ {WAIT_RATIO_GOAL:g}× calm: {ratio:.2f}× {_mark(ratio <= WAIT_RATIO_GOAL)}")
    _row("scheduled questions, wait p50 (ms)", [percentile(w, .5) * ms for w in scheduled])
    _row("steady questions answered", [len(w) for w in steady])
    indexes = [math.nan] + [fairness(d)[0] for _, d, _ in columns[1:]]
    _row("Jain's fairness index, backlogged users", indexes,
         f"≥ {FAIRNESS_GOAL} {_mark(indexes[1] >= FAIRNESS_GOAL)}", "{:15.3f}")
    served = fairness(driver)[1]
    print(f"   (flood: answered while all were backlogged: {', '.join(f'{u} {n}' for u, n in sorted(served.items()))})")
    print(f"\nburst of {profile.burst} users: throughput           {burst_figures['throughput']:.1%} of ideal   "
          f"≥ {THROUGHPUT_GOAL:.0%} {_mark(burst_figures['throughput'] >= THROUGHPUT_GOAL)}"
          f"   ({burst_figures['seconds']:.1f} s; peak {peak.get('conversations', 0)} open conversations, "
          f"{peak.get('slots_in_use', 0)} slots in use, {peak.get('slot_queue', 0)} calls queued for a slot; "
          f"slots held {burst_figures['held']:.1%} of the time, "
          f"{burst_figures['per_call_ms']:.0f} ms per call for a {profile.latency * ms:.0f} ms model)")
    if "server_busy" in burst_figures:
        f = burst_figures
        print(f"   short of the ideal: {f['lost_first']:.1%} waiting for the first call ({f['first_call_s']:.2f} s: every "
              f"turn prepared at once), {f['lost_model']:.1%} the fake model's own time ({f['model_ms']:.1f} ms a call), "
              f"{f['lost_handover']:.1%} a server slot idle between calls (server slots busy {f['server_busy']:.1%})")
    print(f"bot CPU per turn (LanceDB memory, fake apart) {burst_figures['cpu_ms']:.1f} ms in the burst, {cpu_ms:.1f} ms over the run")
    print(f"peak RSS                                     {rss:.0f} MiB   < {RSS_GOAL_MB} MiB at {peak.get('conversations', 0)} "
          f"open conversations {_mark(rss < RSS_GOAL_MB)}")
    print(f"queue notices shown                          {driver.platform.notices}; slow-down replies {driver.platform.slow_downs}")
    fault_report(driver)
    figures = accounting(driver)
    print("\nevery question: " + ", ".join(f"{k} {v}" for k, v in figures.items()) + f"   lost = 0 {_mark(figures['lost'] == 0)}")


def _row(label: str, values: list[float], goal: str = "", shape: str = "{:15.0f}") -> None:
    cells = "".join(" " * 15 if isinstance(v, float) and math.isnan(v) else shape.format(v) for v in values)
    print(f"{label:44}{cells}   {goal}")


def fault_report(driver: Driver) -> None:
    platform = driver.platform
    during = driver.of("fault")
    answered = [a for a in during if a.message_id in platform.done]
    failed = [a for a in during if a.message_id in platform.failed and a.message_id not in platform.done]
    after = driver.of("recovered")
    back = sum(a.message_id in platform.done for a in after)
    print(f"\nfaults ({' → '.join(FAULTS)}): {len(during)} asked, {len(answered)} answered, {len(failed)} failed with a message, "
          f"{len(during) - len(answered) - len(failed)} neither")
    for text in sorted({platform.failed[a.message_id].splitlines()[0][:150] for a in failed}):
        print(f"   {text}")
    print(f"after recovery, no restart: {back} of {len(after)} answered normally {_mark(back == len(after))}")


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


# -- the run --------------------------------------------------------------------------------------
def settings_for(url: str, profile: Profile, data: Path, ahead: int = 0, **limits):
    llm = {"host": url, "max_connections": profile.slots + ahead, "timeout": 2.0}
    if "call_deadline" in LLMSettings.model_fields:  # an overall cap per call, where the build has one
        llm["call_deadline"] = 5.0
    return load_settings(environ={}, data_dir=data, llm=llm, agent={"max_steps": 1}, render={"verbosity": "off"},
                         limits=limits)


async def started_bot(settings, gate=None) -> tuple[Bot, Driver]:
    platform = BenchPlatform()
    services = await Services.open(settings)
    if gate is not None:
        services.llm.slots = gate
    bot = Bot(services, [platform])
    await bot.start()
    driver = Driver(bot, platform)
    await warm_up(driver)
    return bot, driver


async def run(profile: Profile, before: bool, ahead: int = 0) -> None:
    import aiohttp

    fake = FakeProcess(profile.slots, profile.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bot, driver = await started_bot(settings_for(fake.url, profile, Path(tmp) / "now"))
            try:
                async with aiohttp.ClientSession() as session:
                    cpu, answered = time.process_time(), len(driver.platform.done)
                    for phase in (calm, flood):
                        print(f"{phase.__name__}…", flush=True)
                        await phase(driver, profile)
                    print("burst…", flush=True)
                    burst_figures = await burst(driver, profile, fake, session)
                    print("fault…", flush=True)
                    await fault(driver, profile, fake, session)
                    cpu_ms = (time.process_time() - cpu) * 1000 / max(len(driver.platform.done) - answered, 1)
            finally:
                await bot.stop()
            earlier = await flood_before(profile, fake, Path(tmp) / "before") if before else None
            queued = await with_ahead(profile, fake, Path(tmp) / "ahead", ahead) if ahead else None
            report(profile, driver, burst_figures, cpu_ms, earlier)
            if queued is not None:
                report_ahead(ahead, *queued)
    finally:
        fake.close()


async def flood_before(profile: Profile, fake: FakeProcess, data: Path) -> Driver:
    """The flood again, on the bot as it was: one first-come-first-served line for model calls
    and no per-user caps."""
    print("flood, before…", flush=True)
    no_caps = {"user_turns": 100_000, "user_queued": 100_000, "chat_share": 1.0}
    bot, driver = await started_bot(settings_for(fake.url, profile, data, **no_caps), FifoGate(profile.slots))
    try:
        await flood(driver, profile)
    finally:
        await bot.stop()
    return driver


async def with_ahead(profile: Profile, fake: FakeProcess, data: Path, ahead: int) -> tuple[Driver, dict]:
    """Calm, flood and burst again with `llm.max_connections` set `ahead` above the server's
    slots: that many calls wait in the server's own queue (as Ollama queues past
    OLLAMA_NUM_PARALLEL), so a slot freed there is taken at once, and are out of the fair
    gate's hands."""
    import aiohttp

    print(f"calm, flood and burst with {ahead} calls queued in the server…", flush=True)
    bot, driver = await started_bot(settings_for(fake.url, profile, data, ahead))
    try:
        async with aiohttp.ClientSession() as session:
            await calm(driver, profile)
            await flood(driver, profile)
            figures = await burst(driver, profile, fake, session)
    finally:
        await bot.stop()
    return driver, figures


def report_ahead(ahead: int, driver: Driver, figures: dict) -> None:
    calm_p99 = percentile(driver.waits(driver.of("calm", "steady")), 0.99)
    flood_p99 = percentile(driver.waits(driver.of("flood", "steady")), 0.99)
    print(f"\nwith llm.max_connections {ahead} above the server's slots (calls queued in the server): burst throughput "
          f"{figures['throughput']:.1%} of ideal (server slots busy {figures.get('server_busy', math.nan):.1%}); "
          f"steady p99 {calm_p99 * 1000:.0f} ms calm, {flood_p99 * 1000:.0f} ms flood = {flood_p99 / calm_p99:.2f}×; "
          f"Jain's index {fairness(driver)[0]:.3f}")


async def warm_up(driver: Driver) -> None:
    """A few turns first, not counted: imports, the embedding model, LanceDB's tables."""
    driver.phase = "warm-up"
    for n in range(3):
        driver.ask(f"warm{n}", "warm")
    await driver.drain()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-fake":
        serve_fake(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~20 s run with smaller phases")
    parser.add_argument("--before", action="store_true",
                        help="also run the flood on the bot as it was (one FIFO line, no per-user caps), side by side")
    parser.add_argument("--slots", type=int, help="the model server's parallel slots (and llm.max_connections)")
    parser.add_argument("--ahead", type=int, default=0,
                        help="also run calm, flood and burst with llm.max_connections this much above the server's "
                             "slots (calls queued in the server), side by side")
    parser.add_argument("--latency", type=float, help="seconds per model call")
    args = parser.parse_args()
    profile = QUICK if args.quick else DEFAULT
    overrides = {k: v for k, v in (("slots", args.slots), ("latency", args.latency)) if v}
    if overrides:
        from dataclasses import replace

        profile = replace(profile, **overrides)
    started = time.perf_counter()
    asyncio.run(run(profile, args.before, args.ahead))
    print(f"\n(run took {time.perf_counter() - started:.0f} s; {json.dumps(profile.__dict__)})")


if __name__ == "__main__":
    main()
