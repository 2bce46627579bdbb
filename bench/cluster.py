"""Three bot replicas as separate processes (`kagentbot run`) on one machine, on shared
loopback fakes (bench/cluster_fakes.py): a fake model with a fixed latency and one global cap that
logs every request, fake Slack with one Socket Mode connection per replica, random routing and
10 % redelivery, and Telegram's webhook behind a round-robin proxy. Its own redis-server too.

Without --cluster every replica runs in single-process mode (each its own data directory): the
figures show what running several replicas does today (duplicates, misorder). With --cluster each
replica gets KAGENTBOT_CLUSTER__ENABLED=true and the Redis URL, and the same run gives the
figures of the cluster mode.

Scenarios, one after the other:
  f  message → first step, median, on one replica, next to a lone single-process bot
  e  a persona picked with /persona use on one replica, seen by /persona on another: time
  a  N conversations × 3 turns sent close together: answered exactly once, in order, at most one
     turn in flight per conversation (from the model's log)
  d  throughput with 1, 2 and 3 replicas taking the events, as a share of the model cap's ideal
  c  kill -9 of one replica under load: turns lost, time to finish elsewhere (then restarted)
  b  J jobs firing every minute for --minutes, the leader (replica 0 without --cluster) killed
     at --kill-at: fires and duplicates (from the model's log)

    nice -n 10 python bench/cluster.py [--quick] [--cluster] [--minutes 10 --kill-at 5] [--keep]

Every wait has a timeout; what timed out is listed under the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.cluster_fakes import WEBHOOK_PATH, WEBHOOK_SECRET, RoutedSlack, TelegramFront  # noqa: E402
from tests.fakes.redis_server import RedisServer, free_port  # noqa: E402
from tests.slack import fake_slack as slack  # noqa: E402

READY_LINE = "kagentbot is running on"
BASELINE = 9  # the lone single-process replica of scenario f
S3_BUCKET = "kagentbot-bench"


@dataclass(frozen=True)
class Sizes:
    conversations: int
    turns: int
    burst: int  # one-turn conversations per throughput step
    kill_burst: int
    first_steps: int
    jobs: int
    cap: int
    latency: float  # seconds per model call


FULL = Sizes(conversations=500, turns=3, burst=240, kill_burst=150, first_steps=30, jobs=20, cap=8, latency=0.2)
QUICK = Sizes(conversations=40, turns=3, burst=64, kill_burst=40, first_steps=10, jobs=20, cap=8, latency=0.2)


@dataclass
class Row:
    scenario: str
    figure: str
    value: str
    goal: str = ""


@dataclass
class Notes:
    timeouts: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


# -- processes ------------------------------------------------------------------------------------
class FakeProcess:
    """One of bench/cluster_fakes.py's servers in a process of its own (its CPU is not the
    bots'); it prints its URL first."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "cluster_fakes.py"), *argv],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.url = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.url.startswith("http"):
            self.close()
            raise RuntimeError(f"the fake server {argv[0]} did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class ModelProcess(FakeProcess):
    """The logging fake model."""

    def __init__(self, cap: int, latency: float) -> None:
        super().__init__("model", str(cap), str(latency))
        self.entries: list[dict[str, Any]] = []

    async def refresh(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with session.get(f"{self.url}/_bench/log", params={"since": str(len(self.entries))}) as response:
            self.entries.extend((await response.json())["entries"])
        return self.entries

    async def set_latency(self, session: aiohttp.ClientSession, latency: float) -> None:
        async with session.post(f"{self.url}/_bench/config", json={"latency": latency}) as response:
            await response.read()


@dataclass
class Replica:
    index: int
    directory: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log_path: Path = Path()

    def start(self) -> None:
        self.log_path = self.directory / f"replica-{self.index}.{int(time.time())}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "kagentbot.cli", "run"], cwd=self.directory,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def ready(self, timeout: float, notes: Notes) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_path.read_text(errors="replace"):
                return True
            if self.process is None or self.process.poll() is not None:
                notes.other.append(f"replica {self.index} exited at start: {self.tail()}")
                return False
            await asyncio.sleep(0.2)
        notes.timeouts.append(f"replica {self.index} not running after {timeout:.0f} s: {self.tail()}")
        return False

    def tail(self, lines: int = 6) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.process.wait(10)  # type: ignore[union-attr]

    def stop(self) -> None:
        if not self.alive():
            return
        self.process.terminate()  # type: ignore[union-attr]
        try:
            self.process.wait(20)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            self.kill9()


# -- the world ------------------------------------------------------------------------------------
@dataclass
class World:
    sizes: Sizes
    cluster: bool
    lease: float
    directory: Path
    model: ModelProcess
    redis: RedisServer
    slack: RoutedSlack
    telegram: TelegramFront
    session: aiohttp.ClientSession
    s3: FakeProcess | None = None  # --s3: the replicas' memory in one bucket
    notes: Notes = field(default_factory=Notes)
    replicas: dict[int, Replica] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # question id → the chat it was asked in
    platform_ids: dict[str, str | int] = field(default_factory=dict)  # question id → Slack envelope / Telegram update id

    def replica_env(self, index: int, cluster: bool) -> dict[str, str]:
        """`kagentbot run`'s settings for replica `index`, all from the environment."""
        data = self.directory / f"data-{index}"
        data.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAGENTBOT_")}
        env.update({
            "PYTHONPATH": str(ROOT), "KAGENTBOT_DATA_DIR": str(data), "KAGENTBOT_LOG_LEVEL": "WARNING",
            "KAGENTBOT_LLM__HOST": self.model.url, "KAGENTBOT_LLM__MODEL": "kagentlm", "KAGENTBOT_LLM__MODE": "kagent",
            "KAGENTBOT_LLM__MAX_CONNECTIONS": str(self.sizes.cap), "KAGENTBOT_AGENT__MAX_STEPS": "1",
            "KAGENTBOT_EMBED__BACKEND": "ollama", "KAGENTBOT_EMBED__MODEL": "kagentlm",
            "KAGENTBOT_SCHEDULER__MIN_INTERVAL_MINUTES": "1",
        })
        env.update(self._slack_env(index) | self._telegram_env(index) | self._s3_env())
        if cluster:
            env.update({"KAGENTBOT_CLUSTER__ENABLED": "true", "KAGENTBOT_CLUSTER__REDIS_URL": self.redis.url,
                        "KAGENTBOT_CLUSTER__REPLICA_ID": f"r{index}", "KAGENTBOT_CLUSTER__LEASE_SECONDS": str(self.lease)})
        return env

    def _slack_env(self, index: int) -> dict[str, str]:
        return {"KAGENTBOT_SLACK__BOT_TOKEN": slack.BOT_TOKEN, "KAGENTBOT_SLACK__APP_TOKEN": slack.APP_TOKEN,
                "KAGENTBOT_SLACK__API_URL": self.slack.api_for(index),
                "KAGENTBOT_SLACK__SEND_INTERVAL": "0", "KAGENTBOT_SLACK__EDIT_INTERVAL": "0"}

    def _telegram_env(self, index: int) -> dict[str, str]:
        self.telegram.ports[index] = port = free_port()
        return {"KAGENTBOT_TELEGRAM__TOKEN": self.telegram.api.token, "KAGENTBOT_TELEGRAM__BASE_URL": self.telegram.api.base_url,
                "KAGENTBOT_TELEGRAM__MODE": "webhook", "KAGENTBOT_TELEGRAM__WEBHOOK_URL": f"https://bot.example.org/{WEBHOOK_PATH}",
                "KAGENTBOT_TELEGRAM__WEBHOOK_SECRET": WEBHOOK_SECRET, "KAGENTBOT_TELEGRAM__LISTEN": "127.0.0.1",
                "KAGENTBOT_TELEGRAM__PORT": str(port),
                "KAGENTBOT_TELEGRAM__SEND_INTERVAL": "0", "KAGENTBOT_TELEGRAM__EDIT_INTERVAL": "0"}

    def _s3_env(self) -> dict[str, str]:
        if self.s3 is None:
            return {}
        options = {"aws_endpoint": self.s3.url, "aws_region": "us-east-1", "allow_http": "true",
                   "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        return {"KAGENTBOT_MEMORY__URI": f"s3://{S3_BUCKET}/memory", "KAGENTBOT_MEMORY__STORAGE_OPTIONS": json.dumps(options)}

    async def start_replicas(self, indexes: list[int], cluster: bool) -> list[int]:
        for index in indexes:
            replica = self.replicas.get(index) or Replica(index, self.directory, self.replica_env(index, cluster))
            self.replicas[index] = replica
            replica.start()
        ready = await asyncio.gather(*(self.replicas[i].ready(120, self.notes) for i in indexes))
        for index in indexes:  # its Socket Mode connection opens during start; wait for it
            await wait_until(lambda i=index: i in self.slack.live(), 20, f"replica {index}'s Socket Mode connection", self.notes)
        return [i for i, ok in zip(indexes, ready) if ok]

    async def log(self) -> list[dict[str, Any]]:
        return await self.model.refresh(self.session)

    async def settle(self, quiet: float = 3.0, limit: float = 60.0) -> None:
        """Until the model has had no new request for `quiet` seconds (late duplicates land)."""
        deadline, seen, since = time.monotonic() + limit, -1, time.monotonic()
        while time.monotonic() < deadline:
            count = len(await self.log())
            if count != seen:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            await asyncio.sleep(0.5)
        self.notes.timeouts.append(f"the model was still busy {limit:.0f} s after a scenario")

    def answered_all(self, qids: list[str]) -> bool:
        return set(qids) <= self.answers().keys()

    def answers(self) -> Counter:
        return Counter(key for key, _ in self.slack.answered() + self.telegram.answered())

    def misplaced(self) -> int:
        """Answers posted in another chat than the question's."""
        return sum(1 for key, chat in self.slack.answered() + self.telegram.answered()
                   if key in self.where and self.where[key] != chat)

    def ideal_seconds(self, turns: int) -> float:
        return 2 * turns * self.sizes.latency / self.sizes.cap


class Dropped(logging.Handler):
    """Counts the requests to the fake platforms that their client dropped before the answer
    (aiohttp logs each with a traceback: an overloaded machine), instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def wait_until(condition, timeout: float, what: str, notes: Notes, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(poll)
    if condition():
        return True
    notes.timeouts.append(f"{what} (waited {timeout:.0f} s)")
    return False


# -- asking ---------------------------------------------------------------------------------------
def dm_event(qid: str, user: int) -> dict[str, Any]:
    return slack.event_callback(slack.direct_message(f"question {qid}: how are things?", user=f"U{user:06d}",
                                                     channel=f"D{user:06d}"))


async def ask_slack(world: World, qid: str, user: int, among: list[int] | None = None, redeliver: bool = True):
    world.where[qid] = f"D{user:06d}"
    sent = await world.slack.send(dm_event(qid, user), among=among, redeliver=redeliver)
    world.platform_ids[qid] = sent.envelope["envelope_id"]
    return sent


def ask_telegram(world: World, qid: str, user: int) -> None:
    world.where[qid] = str(user)
    world.platform_ids[qid] = world.telegram.send(f"question {qid}: how are things?", user)["update_id"]


async def command(world: World, text: str, user: str, replica: int | None, timeout: float = 10.0) -> tuple[str, float]:
    """A slash command (`/persona use research`) to one replica (None: routed at random); its
    reply and when it came (time.time()), or '' after `timeout`."""
    name, _, rest = text.partition(" ")
    url = world.slack.response_url()
    payload = slack.slash_command(name, rest, url, user=user, channel=f"D{user[1:]}")
    await world.slack.send(payload, kind="slash_commands", among=None if replica is None else [replica], redeliver=False)
    got = await wait_until(lambda: world.slack.replies_to(url), timeout, f"the reply to {text!r}", world.notes, 0.02)
    return (world.slack.replies_to(url)[0], time.time()) if got else ("", time.time())


async def warm_up(world: World, replicas: list[int]) -> None:
    """One turn on each replica first, not counted: imports, LanceDB's tables."""
    for n, replica in enumerate(replicas):
        await ask_slack(world, f"w{replica}x{n}", 900 + replica, among=[replica], redeliver=False)
    await wait_until(lambda: world.answered_all([f"w{r}x{n}" for n, r in enumerate(replicas)]), 90,
                     "warm-up turns", world.notes)


# -- f: message → first step ---------------------------------------------------------------------
async def first_steps(world: World, replica: int, turns: int) -> list[float]:
    await world.model.set_latency(world.session, 0.0)
    timings = []
    try:
        for n in range(-2, turns):
            event = slack.app_mention(f"<@{slack.BOT_USER_ID}> question f{replica}x{n + 2}: how many days?",
                                      user="U0FIRST", channel="C0FIRST")
            started = time.perf_counter()
            await world.slack.send(slack.event_callback(event), among=[replica], redeliver=False)
            if not await wait_until(lambda: world.slack.in_thread("C0FIRST", event["ts"]), 10,
                                    f"first step on replica {replica}", world.notes, 0.001):
                continue
            if n >= 0:
                timings.append(time.perf_counter() - started)
            await wait_until(lambda: f"f{replica}x{n + 2}" in world.answers(), 10, "a first-step turn's answer", world.notes, 0.01)
    finally:
        await world.model.set_latency(world.session, world.sizes.latency)
    return timings


async def baseline_first_steps(world: World) -> list[float]:
    """A lone single-process bot on the same fakes, measured before the replicas start."""
    started = await world.start_replicas([BASELINE], cluster=False)
    try:
        if not started:
            return []
        await warm_up(world, [BASELINE])
        return await first_steps(world, BASELINE, world.sizes.first_steps)
    finally:
        world.replicas.pop(BASELINE).stop()
        world.telegram.ports.pop(BASELINE, None)


def first_step_rows(single: list[float], here: list[float], cluster: bool) -> list[Row]:
    ms = lambda values: statistics.median(values) * 1000 if values else math.nan  # noqa: E731
    mode = "cluster" if cluster else "single-process"
    delta = ms(here) - ms(single)
    return [Row("f first step", "median, lone single-process bot (ms)", f"{ms(single):.1f} ({len(single)} turns)"),
            Row("f first step", f"median, replica 0, {mode} (ms)", f"{ms(here):.1f} ({len(here)} turns)"),
            Row("f first step", "difference (ms)", f"{delta:+.1f}", f"≤ +5 {mark(delta <= 5)}")]


# -- e: a persona change seen elsewhere -----------------------------------------------------------
async def persona_change(world: World, live: list[int], timeout: float = 10.0) -> list[Row]:
    if len(live) < 2:
        return [Row("e persona", "seen on another replica", "not run (fewer than 2 replicas)")]
    user = "U0PERSONA"
    await command(world, "/persona use assistant", user, live[0])
    reply, changed = await command(world, "/persona use research", user, live[0])
    if not reply:
        return [Row("e persona", "seen on another replica", "the change got no reply")]
    deadline, shown = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        shown, at = await command(world, "/persona", user, live[1], timeout=5)
        if "(research)" in shown:
            seconds = at - changed
            return [Row("e persona", f"/persona use on r{live[0]}, seen by /persona on r{live[1]} after (s)",
                        f"{seconds:.2f}", f"≤ 2 {mark(seconds <= 2)}")]
        await asyncio.sleep(0.1)
    return [Row("e persona", f"/persona use on r{live[0]}, seen by /persona on r{live[1]}",
                f"not within {timeout:.0f} s", f"≤ 2 s {mark(False)}"),
            Row("e persona", f"r{live[1]}'s last answer", shown.splitlines()[0][:40] if shown else "nothing")]


# -- a: conversations -----------------------------------------------------------------------------
async def conversations(world: World) -> list[Row]:
    sizes = world.sizes
    qids = [f"c{n}.t{k}" for n in range(sizes.conversations) for k in range(1, sizes.turns + 1)]
    gap = max(0.01, world.ideal_seconds(sizes.conversations * sizes.turns) / sizes.conversations / 2)
    tasks = [asyncio.create_task(_one_conversation(world, n, n * gap)) for n in range(sizes.conversations)]
    await asyncio.gather(*tasks)
    limit = 60 + 4 * world.ideal_seconds(len(qids))
    await wait_until(lambda: world.answered_all(qids), limit, "scenario a: every turn answered", world.notes, 0.5)
    await world.settle()
    return conversation_rows(world, qids, await world.log())


async def _one_conversation(world: World, n: int, delay: float) -> None:
    await asyncio.sleep(delay)
    for k in range(1, world.sizes.turns + 1):
        qid = f"c{n}.t{k}"
        if n % 4 == 3:
            ask_telegram(world, qid, 200_000 + n)
        else:
            await ask_slack(world, qid, 100_000 + n)
        await asyncio.sleep(0.03)


def conversation_rows(world: World, qids: list[str], log: list[dict[str, Any]]) -> list[Row]:
    answers = world.answers()
    once = sum(answers.get(q, 0) == 1 for q in qids)
    twice = sum(answers.get(q, 0) > 1 for q in qids)
    missing = sum(answers.get(q, 0) == 0 for q in qids)
    worked = Counter(e["q"] for e in log if e["kind"] == "answer")
    by_conversation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in log:
        if entry["q"] in set(qids):
            by_conversation[entry["q"].split(".")[0]].append(entry)
    in_order = sum(_in_order(entries) for entries in by_conversation.values())
    peaks = [_peak_in_flight(entries) for entries in by_conversation.values()]
    n = len({q.split(".")[0] for q in qids})
    total = len(qids)
    return [
        Row("a conversations", f"turns answered exactly once (of {total}; {n} conversations, ¼ on Telegram)",
            f"{once}/{total}", f"{total}/{total} {mark(once == total)}"),
        Row("a conversations", "turns answered twice or more / not at all", f"{twice} / {missing}", f"0 / 0 {mark(twice + missing == 0)}"),
        Row("a conversations", "turns the model answered more than once", str(sum(c > 1 for c in worked.values()))),
        Row("a conversations", "answers posted in another chat than the question's (whole run)", str(world.misplaced()),
            f"0 {mark(world.misplaced() == 0)}"),
        Row("a conversations", "conversations worked through in order", f"{in_order}/{n}", f"{n}/{n} {mark(in_order == n)}"),
        Row("a conversations", "conversations with 2+ turns in flight at once (most seen)",
            f"{sum(p > 1 for p in peaks)} ({max(peaks, default=0)})", f"0 {mark(not any(p > 1 for p in peaks))}"),
        Row("a conversations", "redeliveries sent (Slack / Telegram)", f"{world.slack.redelivered} / {world.telegram.redelivered}"),
        *stored_rows(world, qids, "a conversations"),
    ]


def stored_rows(world: World, qids: list[str], scenario: str) -> list[Row]:
    """How long the platforms waited for their acknowledgement (in cluster mode: until stored)."""
    slack_ids = [str(world.platform_ids[q]) for q in qids if isinstance(world.platform_ids.get(q), str)]
    telegram = [world.telegram.stored_after[i] for q in qids if isinstance(i := world.platform_ids.get(q), int)
                and i in world.telegram.stored_after]
    rows = []
    for name, seconds in (("Slack", world.slack.acked_after(slack_ids)), ("Telegram", telegram)):
        if seconds:
            cut = statistics.quantiles(seconds, n=100) if len(seconds) > 1 else seconds * 99
            rows.append(Row(scenario, f"{name}: event sent → acknowledged, p50 / p99 / max (ms; over 1 s: count)",
                            f"{cut[49] * 1000:.0f} / {cut[98] * 1000:.0f} / {max(seconds) * 1000:.0f} "
                            f"({sum(x > 1 for x in seconds)})"))
    overtaken = _overtaken(world, qids)
    rows.append(Row(scenario, "turns acknowledged before the turn sent before them (most ahead, ms)",
                    f"{len(overtaken)} ({max(overtaken, default=0) * 1000:.0f})"))
    return rows


def _overtaken(world: World, qids: list[str]) -> list[float]:
    """For each turn stored (acknowledged) before the previous turn of its conversation: by how
    long. Such a turn can be worked in order only by waiting that long for the earlier one."""
    def stored(qid: str) -> float | None:
        key = world.platform_ids.get(qid)
        return world.telegram.stored_at.get(key) if isinstance(key, int) else world.slack.acked_at(str(key))

    ahead = []
    for earlier, later in zip(qids, qids[1:]):
        if earlier.split(".")[0] != later.split(".")[0]:
            continue
        first, second = stored(earlier), stored(later)
        if first is not None and second is not None and second < first:
            ahead.append(first - second)
    return ahead


def _in_order(entries: list[dict[str, Any]]) -> bool:
    """Each turn's work (every request for it) starts after the previous turn's has ended."""
    turns: dict[int, list[float]] = {}
    for e in entries:
        k = int(e["q"].split(".t")[1])
        span = turns.setdefault(k, [e["start"], e["end"]])
        span[0], span[1] = min(span[0], e["start"]), max(span[1], e["end"])
    spans = [turns[k] for k in sorted(turns)]
    return all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def _peak_in_flight(entries: list[dict[str, Any]]) -> int:
    """Turns of one conversation being worked on at once: each working starts with a plan
    request and ends with its answer request."""
    edges = sorted([(e["start"], 1) for e in entries if e["kind"] == "plan"] +
                   [(e["end"], -1) for e in entries if e["kind"] == "answer"])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


# -- d: throughput --------------------------------------------------------------------------------
async def throughput(world: World, live: list[int]) -> list[Row]:
    rows = []
    for k in range(1, len(live) + 1):
        among = live[:k]
        qids = [f"d{k}x{n}" for n in range(world.sizes.burst)]
        started, cpu, retried = time.time(), cpu_now(world), world.slack.retried
        for n, qid in enumerate(qids):
            await ask_slack(world, qid, 300_000 + k * 10_000 + n, among=among)
        limit = 60 + 4 * world.ideal_seconds(len(qids))
        await wait_until(lambda: world.answered_all(qids), limit, f"scenario d with {k} replica(s)", world.notes, 0.2)
        await world.settle(quiet=2)
        used = [b - a for a, b in zip(cpu, cpu_now(world))]
        rows.append(_throughput_row(world, k, qids, started, await world.log()))
        rows.append(Row("d throughput", "   CPU per turn: replicas, fake model, fake Slack + Telegram (ms)",
                        ", ".join(f"{u * 1000 / len(qids):.0f}" for u in used)))
        rows.append(Row("d throughput", "   Slack envelopes sent again, not acknowledged within 3 s",
                        str(world.slack.retried - retried)))
    return rows


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now(world: World) -> tuple[float, float, float]:
    """CPU seconds so far of the live replicas, of the fake model, and of this process (the fake
    Slack and Telegram)."""
    replicas = sum(cpu_seconds(r.process.pid) for r in world.replicas.values() if r.alive())  # type: ignore[union-attr]
    return replicas, cpu_seconds(world.model.process.pid), time.process_time()


def _throughput_row(world: World, k: int, qids: list[str], started: float, log: list[dict[str, Any]]) -> Row:
    wanted = set(qids)
    first_answer: dict[str, float] = {}
    for e in log:
        if e["kind"] == "answer" and e["q"] in wanted:
            first_answer[e["q"]] = min(first_answer.get(e["q"], math.inf), e["end"])
    if not first_answer:
        return Row("d throughput", f"{k} replica(s)", "no turn answered")
    seconds = max(first_answer.values()) - started
    share = 2 * len(first_answer) / seconds / (world.sizes.cap / world.sizes.latency)
    return Row("d throughput", f"{k} replica(s): {len(qids)} turns at once, share of the cap's ideal",
               f"{share:.0%} ({seconds:.1f} s)", f"≥ 90 % {mark(share >= 0.9)}" if k == 3 else "")


# -- c: kill -9 under load ------------------------------------------------------------------------
async def kill_under_load(world: World, live: list[int]) -> list[Row]:
    victim = live[-1]
    qids = [f"k{n}" for n in range(world.sizes.kill_burst)]
    routed: dict[str, int] = {}
    sending = asyncio.create_task(_send_all(world, qids, routed))
    await asyncio.sleep(max(1.0, world.ideal_seconds(len(qids)) * 0.3))
    world.replicas[victim].kill9()
    killed = time.time()
    await sending
    limit = world.lease + 5 + 30 + 4 * world.ideal_seconds(len(qids))
    await wait_until(lambda: world.answered_all(qids), limit, "scenario c: every turn answered after the kill", world.notes, 0.5)
    await world.settle()
    rows = _kill_rows(world, victim, qids, routed, killed, await world.log())
    restarted = await world.start_replicas([victim], world.cluster)
    if not restarted:
        world.notes.other.append(f"replica {victim} did not come back after the kill")
    return rows


async def _send_all(world: World, qids: list[str], routed: dict[str, int]) -> None:
    for n, qid in enumerate(qids):
        sent = await ask_slack(world, qid, 400_000 + n)
        routed[qid] = sent.replica
        await asyncio.sleep(0.01)


def _kill_rows(world: World, victim: int, qids: list[str], routed: dict[str, int], killed: float,
               log: list[dict[str, Any]]) -> list[Row]:
    answers = world.answers()
    ended: dict[str, float] = {}
    for e in log:
        if e["kind"] == "answer" and e["q"] in routed:
            ended[e["q"]] = max(ended.get(e["q"], 0.0), e["end"])
    on_victim = [q for q in qids if routed.get(q) == victim]
    later = [ended[q] - killed for q in on_victim if q in answers and ended.get(q, 0) > killed]
    lost = [q for q in qids if q not in answers]
    goal = world.lease + 5
    slowest = max(later, default=0.0)
    finished = all(q in answers for q in on_victim) and slowest <= goal
    return [
        Row("c kill -9", f"turns sent ({len(on_victim)} first routed to the killed replica r{victim})", str(len(qids))),
        Row("c kill -9", "turns lost", str(len(lost)), f"0 {mark(not lost)}"),
        Row("c kill -9", "killed replica's turns answered after the kill: slowest (s after kill)",
            f"{len(later)}: {slowest:.1f}" if later else "none", f"all, ≤ lease + 5 = {goal:g} {mark(finished)}"),
        Row("c kill -9", "turns answered twice or more", str(sum(answers.get(q, 0) > 1 for q in qids))),
        Row("c kill -9", "Slack envelopes sent again, unacknowledged (run so far)", str(world.slack.retried)),
    ]


# -- b: scheduled jobs, the leader killed ---------------------------------------------------------
async def jobs(world: World, live: list[int], minutes: float, kill_at: float, everywhere: bool) -> list[Row]:
    """`everywhere`: each job made on every replica (as when every copy of the bot is given the
    same schedules); otherwise through one replica picked at random."""
    created = 0
    for n in range(world.sizes.jobs):
        made = [(await command(world, f'/schedule add "* * * * *" question j{n:02d}: status?', f"U0JOB{n:02d}", r))[0]
                for r in (live if everywhere else [None])]
        created += all(reply.startswith("Scheduled") for reply in made)
    started = time.time()
    end = started + minutes * 60
    await asyncio.sleep(max(0.0, started + kill_at * 60 - time.time()))
    leader = await find_leader(world, live)
    world.replicas[leader].kill9()
    await asyncio.sleep(max(0.0, end - time.time()) + 20)
    await world.settle()
    return job_rows(world, created, started, end, leader, kill_at, await world.log(), everywhere)


async def find_leader(world: World, live: list[int]) -> int:
    """In cluster mode, the replica named in the leader key; otherwise (or unknown) the first."""
    if world.cluster:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(world.redis.url, decode_responses=True)
        try:
            holder = str(await client.get("kagentbot:leader") or "")
        finally:
            await client.aclose()
        for index in live:
            if f"r{index}" in re.split(r"[^A-Za-z0-9_-]", holder):
                return index
        world.notes.other.append(f"leader key holds {holder!r}: killed replica {live[0]} instead")
    return live[0]


def job_rows(world: World, created: int, started: float, end: float, leader: int, kill_at: float,
             log: list[dict[str, Any]], everywhere: bool) -> list[Row]:
    boundaries = [m * 60.0 for m in range(math.floor(started / 60) + 1, math.floor(end / 60) + 1)]
    fires = Counter()
    for e in log:
        if e["kind"] == "plan" and e["q"].startswith("j") and boundaries and boundaries[0] <= e["start"] < boundaries[-1] + 60:
            fires[(e["q"], math.floor(e["start"] / 60))] += 1
    expected = created * len(boundaries)
    distinct = len(fires)
    duplicates = sum(n - 1 for n in fires.values())
    return [
        Row("b jobs", "jobs made with /schedule " + ("on every replica" if everywhere else "(each through a random replica)"),
            f"{created}/{world.sizes.jobs}"),
        Row("b jobs", f"fires over {len(boundaries)} minute(s), leader r{leader} killed at minute {kill_at:g}",
            f"{distinct}/{expected}", f"{expected}/{expected} {mark(distinct == expected)}"),
        Row("b jobs", "duplicate fires", str(duplicates), f"0 {mark(duplicates == 0)}"),
    ]


# -- the run --------------------------------------------------------------------------------------
def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def print_table(rows: list[Row], notes: Notes, args: argparse.Namespace, sizes: Sizes, seconds: float) -> None:
    mode = "cluster (Redis)" if args.cluster else "single-process replicas (no --cluster)"
    mode += "; memory in one S3 bucket (moto)" if args.s3 else "; memory: each replica its own LanceDB"
    print(f"\n3 replicas, {mode}; model: cap {sizes.cap} × {sizes.latency * 1000:.0f} ms per call "
          f"(ideal {sizes.cap / sizes.latency:.0f} calls/s, 2 calls per turn); {args.redelivery:.0%} redelivery")
    width = max((len(r.figure) for r in rows), default=20) + 2
    print(f"{'':17}{'figure':{width}}{'value':>22}   goal")
    for row in rows:
        print(f"{row.scenario:17}{row.figure:{width}}{row.value:>22}   {row.goal}")
    print("\ntimed out: " + ("; ".join(notes.timeouts) if notes.timeouts else "nothing"))
    for note in notes.other:
        print(f"note: {note}")
    print(f"(run took {seconds:.0f} s)")


async def scenarios(world: World, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    single: list[float] = []
    if "f" in args.only:
        print("f: the lone single-process bot…", flush=True)
        single = await baseline_first_steps(world)
    print("starting 3 replicas…", flush=True)
    live = await world.start_replicas([0, 1, 2], world.cluster)
    if not live:
        return rows
    await warm_up(world, live)
    steps: list[tuple[str, Any]] = [
        ("f", lambda: first_steps(world, live[0], world.sizes.first_steps)),
        ("e", lambda: persona_change(world, live)),
        ("a", lambda: conversations(world)),
        ("d", lambda: throughput(world, live)),
        ("c", lambda: kill_under_load(world, live)),
        ("b", lambda: jobs(world, live, args.minutes, args.kill_at, args.jobs_everywhere)),
    ]
    for name, step in steps:
        if name not in args.only:
            continue
        print(f"{name}…", flush=True)
        result = await guarded(world, name, step, args.minutes * 60 + 600 if name == "b" else 1800)
        if result is not None:
            rows += first_step_rows(single, result, world.cluster) if name == "f" else result
    return rows


async def guarded(world: World, name: str, step, limit: float) -> Any:
    """One scenario, within `limit` seconds; a failure or a timeout is noted and the run goes on."""
    try:
        return await asyncio.wait_for(step(), limit)
    except asyncio.TimeoutError:
        world.notes.timeouts.append(f"scenario {name} as a whole (waited {limit:.0f} s)")
    except Exception as exc:  # noqa: BLE001 — the other scenarios still run; the table says what failed
        world.notes.other.append(f"scenario {name} failed: {type(exc).__name__}: {exc}")
    return None


async def run(args: argparse.Namespace, sizes: Sizes, directory: Path) -> None:
    started = time.perf_counter()
    model = ModelProcess(sizes.cap, sizes.latency)
    redis = RedisServer(directory / "redis").start()
    s3 = FakeProcess("s3", S3_BUCKET) if args.s3 else None
    rows: list[Row] = []
    world = None
    dropped = Dropped()
    server_log = logging.getLogger("aiohttp.server")
    server_log.addHandler(dropped)
    server_log.propagate = False
    try:
        async with RoutedSlack(redelivery=args.redelivery) as api, aiohttp.ClientSession() as session:
            telegram = TelegramFront(redelivery=args.redelivery)
            await telegram.start()
            world = World(sizes, args.cluster, args.lease, directory, model, redis, api, telegram, session, s3)
            try:
                rows = await scenarios(world, args)
            finally:
                for replica in world.replicas.values():
                    replica.stop()
                await api.close()
                await telegram.stop()
    finally:
        redis.stop()
        model.close()
        if s3 is not None:
            s3.close()
    if world is not None and args.keep:
        (directory / "model-log.json").write_text(json.dumps(world.model.entries, indent=0))
    if world is not None:
        if dropped.count:
            world.notes.other.append(f"{dropped.count} requests to the fake platforms were dropped by the bot's client "
                                     "before the answer (an overloaded machine; the bot retries)")
        print_table(rows, world.notes, args, sizes, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (40 conversations; jobs still take --minutes)")
    parser.add_argument("--cluster", action="store_true", help="run the replicas in cluster mode (Redis)")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long the jobs run (the issue: 10)")
    parser.add_argument("--kill-at", type=float, default=1.0, help="minute at which the leader is killed (the issue: 5)")
    parser.add_argument("--redelivery", type=float, default=0.1, help="share of events the platforms send twice")
    parser.add_argument("--s3", action="store_true", help="the replicas' memory in one bucket on moto's S3 server (default: each its own data directory)")
    parser.add_argument("--jobs-everywhere", action="store_true",
                        help="b: make each job on every replica (single-process replicas given the same schedules)")
    parser.add_argument("--lease", type=float, default=5.0, help="cluster.lease_seconds of the replicas")
    parser.add_argument("--conversations", type=int, help="conversations in scenario a (default 500, --quick 40)")
    parser.add_argument("--only", default="feadcb", help="scenarios to run, e.g. 'ab' (default: all, in the order f e a d c b)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (replica logs, data)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.conversations:
        from dataclasses import replace

        sizes = replace(sizes, conversations=args.conversations)
    directory = Path(tempfile.mkdtemp(prefix="kagentbot-cluster-bench-"))
    try:
        asyncio.run(run(args, sizes, directory))
    finally:
        if args.keep:
            print(f"run directory kept: {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
