"""`kagentbot eval e2e`: end-to-end task accuracy. Each question runs through the whole loop
(memory recall, planning, tools, concluding) against the configured model; network tools answer
from the recorded fixtures served on loopback (kagentbot/eval/replay.py), the knowledge-base
questions from documents added to a throwaway store, so runs are repeatable offline. A question
counts as right when the answer holds one of its accepted values (numbers, dates, names)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagentbot.agent.events import AnswerDone, Failed, PlanRejected, StepPlanned, ToolFinished
from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import Agent, TurnRequest
from kagentbot.config.settings import Settings
from kagentbot.eval.bench import BenchError, read_jsonl
from kagentbot.memory.types import Audience
from kagentbot.persona.model import DEFAULT_PERSONA
from kagentbot.scope import Scope

if TYPE_CHECKING:
    from kagentbot.memory.store import MemoryStore

DATA = Path(__file__).parent / "data"
E2E_SET = DATA / "e2e.jsonl"
KB_DOCUMENTS = DATA / "e2e_kb"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # the fixtures' "today"
WEB = "{web}"  # stands for the replay server's address in questions and plans


@dataclass(frozen=True)
class E2ECase:
    id: str
    lang: str
    category: str
    question: str
    expect: tuple[str, ...]  # any one of these in the answer makes it right
    evidence: str = ""  # how the fact reads in a tool's result (checks the fixtures hold it)
    plan: tuple[dict[str, Any], ...] = ()  # a reference plan: {"task_name", "tool", "args"}
    answer: str = ""  # a reference answer


def load_cases(path: Path, web_base: str = "") -> list[E2ECase]:
    cases = []
    for where, raw in read_jsonl(path):
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("question") or not raw.get("expect"):
            raise BenchError(f"{where}: an e2e case needs id, question and expect")
        if web_base:
            raw = json.loads(json.dumps(raw, ensure_ascii=False).replace(WEB, web_base))
        cases.append(E2ECase(
            str(raw["id"]), raw.get("lang", "en"), raw.get("category", ""), raw["question"], tuple(raw["expect"]),
            raw.get("evidence", ""), tuple(raw.get("plan") or ()), raw.get("answer", ""),
        ))
    if not cases:
        raise BenchError(f"{path} holds no cases")
    return cases


def _pattern(value: str) -> re.Pattern[str]:
    """A number must stand alone (22 is not in 2022); other text matches case-insensitively."""
    escaped = re.escape(value)
    before = r"(?<![\d.\-])" if value[:1].isdigit() else r"(?<![\d.])" if value[:1] == "-" else ""
    after = r"(?!\.?\d)" if value[-1:].isdigit() else ""
    return re.compile(before + escaped + after, re.I)


def is_correct(answer: str, expect: Sequence[str]) -> bool:
    text = " ".join(answer.replace("−", "-").split())
    return any(_pattern(value).search(text) for value in expect)


@dataclass(frozen=True)
class Outcome:
    id: str
    category: str
    question: str
    expect: tuple[str, ...]
    answer: str
    correct: bool
    steps: int
    tool_calls: int
    tool_failures: int
    parse_failures: int
    other_rejections: int  # unknown tools, repeated steps
    grounded: bool  # the evidence showed up in a tool's result
    seconds: float
    error: str = ""
    trace: tuple[str, ...] = ()


@dataclass
class _Tally:
    steps: int = 0
    calls: int = 0
    tool_failures: int = 0
    parse_failures: int = 0
    other: int = 0
    answer: str = ""
    error: str = ""
    results: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)

    def add(self, event: Any) -> None:
        if isinstance(event, StepPlanned):
            self.steps += 1
            self.trace.append(f"step {event.index}: {event.tool} {json.dumps(event.args, ensure_ascii=False)}")
        elif isinstance(event, ToolFinished):
            self.calls += 1
            self.tool_failures += not event.ok
            self.results.append(event.result)
            self.trace.append(f"  {'ok' if event.ok else 'FAILED'}: {' '.join(event.result.split())[:300]}")
        elif isinstance(event, PlanRejected):
            parse = "unknown tool" not in event.reason and "would repeat" not in event.reason
            self.parse_failures += parse
            self.other += not parse
            self.trace.append(f"plan rejected: {event.reason} {event.raw[:200]!r}")
        elif isinstance(event, AnswerDone):
            self.answer = event.text
        elif isinstance(event, Failed):
            self.error = event.message


async def ask(agent: Agent, case: E2ECase) -> Outcome:
    tally = _Tally()
    started = time.perf_counter()
    request = TurnRequest(case.question, Audience(user_scope=str(Scope.user("eval", case.id))), DEFAULT_PERSONA, now=NOW)
    async for event in agent.run(request):
        tally.add(event)
    grounded = bool(case.evidence) and any(case.evidence in result for result in tally.results)
    return Outcome(
        case.id, case.category, case.question, case.expect, tally.answer, is_correct(tally.answer, case.expect),
        tally.steps, tally.calls, tally.tool_failures, tally.parse_failures, tally.other, grounded,
        time.perf_counter() - started, tally.error, tuple(tally.trace),
    )


def offline_settings(settings: Settings, data_dir: Path, web_base: str) -> Settings:
    """The configured model and embedder, with a throwaway data dir and every network tool
    pointed at the replay server."""
    tools = settings.tools.model_copy(update={
        "wikipedia_url": web_base + "/wiki/{lang}", "open_meteo_url": web_base + "/meteo",
        "open_meteo_archive_url": web_base + "/archive", "geocoding_url": web_base + "/geo",
        "searxng_url": web_base + "/searx", "search_backend": "searxng", "search_backoff": 0.01,
        "browse_allowlist": ["127.0.0.1"], "enabled": [],
    })
    # the builtin embedder's unpacked weights stay where the user's runs keep them
    embed = settings.embed.model_copy(update={"weights_dir": settings.embed.weights_dir or settings.data_dir / "models"})
    memory = settings.memory.model_copy(update={"uri": ""})
    return settings.model_copy(update={"data_dir": data_dir, "tools": tools, "embed": embed, "memory": memory})


@contextlib.asynccontextmanager
async def offline_world(settings: Settings) -> AsyncIterator[tuple[Agent, str]]:
    """An agent on the real loop, tools, memory and LLM client, with the replay server running
    and the e2e documents in a fresh knowledge base; everything is removed afterwards."""
    import aiohttp

    from kagentbot.eval.replay import ReplayWeb
    from kagentbot.memory.ingest import from_path
    from kagentbot.memory.store import MemoryStore
    from kagentbot.tools.catalog import build_registry

    data_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="kagentbot-e2e-"))
    try:
        async with ReplayWeb() as web, aiohttp.ClientSession(headers={"User-Agent": settings.tools.user_agent}) as http:
            local = offline_settings(settings, data_dir, web.base)
            store = await MemoryStore.open(local)
            llm = make_client(local.llm)
            try:
                for path in sorted(KB_DOCUMENTS.iterdir()):
                    await store.add_document(await from_path(path, local.memory), str(Scope.GLOBAL))
                agent = Agent(local, llm, build_registry(local), store, http=http, knowledge=store.for_audience)
                yield agent, web.base
            finally:
                await _close(store, llm)
    finally:
        await asyncio.to_thread(shutil.rmtree, data_dir, True)


async def _close(store: MemoryStore, llm: Any) -> None:
    await store.flush()
    store.close()
    await llm.close()


@dataclass(frozen=True)
class E2EReport:
    outcomes: tuple[Outcome, ...]
    elapsed: float

    @property
    def accuracy(self) -> float:
        return sum(o.correct for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def mean(self, name: str) -> float:
        return sum(getattr(o, name) for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def total(self, name: str) -> int:
        return sum(getattr(o, name) for o in self.outcomes)


async def run_e2e(settings: Settings, path: Path = E2E_SET, *, limit: int | None = None,
                  categories: Sequence[str] = (), on_done: Callable[[Outcome], None] | None = None) -> E2EReport:
    started = time.perf_counter()
    async with offline_world(settings) as (agent, base):
        cases = [c for c in load_cases(path, base) if not categories or c.category in categories][:limit]
        gate = asyncio.Semaphore(settings.eval.concurrency)

        async def one(case: E2ECase) -> Outcome:
            async with gate:
                outcome = await ask(agent, case)
            if on_done:
                on_done(outcome)
            return outcome

        outcomes = await asyncio.gather(*(one(case) for case in cases))
    return E2EReport(tuple(outcomes), time.perf_counter() - started)
