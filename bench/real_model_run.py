"""Ask a real model server a few questions through the real agent, in both modes, with and
without constrained planning, and print one table row per (mode, constraint, question).
Run by bench/real_model.sh, which starts the server; usable alone against any server:

    python bench/real_model_run.py --host http://127.0.0.1:8088 --model gemma3-270m \
        [--backend openai] [--out table.md] [--replies replies.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.agent.events import AnswerDone, Failed, PlanRejected, StepPlanned, ToolFinished  # noqa: E402
from kagentbot.agent.llm import ChatReply, make_client  # noqa: E402
from kagentbot.agent.loop import Agent, TurnRequest  # noqa: E402
from kagentbot.agent.parsing import PlanParseError, parse_plan  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.memory.types import Audience  # noqa: E402
from kagentbot.tools.registry import ToolRegistry  # noqa: E402
from kagentbot.tools.timetools import TIME_TOOLS  # noqa: E402

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)  # fixed, so "correct" does not drift
# (question, words any one of which in the answer counts as correct): offline tools only
QUESTIONS = [
    ("How many days are there from 2024-01-01 to 2024-03-01?", ("60",)),
    ("What day of the week is 2026-12-25?", ("friday",)),
    ("Say hello in French.", ("bonjour", "salut")),
]
VARIANTS = [("kagent", True), ("kagent", False), ("native", False)]


class TimedClient:
    """The real client, with the time spent waiting on the server and every planning reply kept."""

    def __init__(self, inner) -> None:
        self.inner, self.host = inner, inner.host
        self.seconds = 0.0
        self.replies: list[dict] = []

    async def complete(self, messages, **kw):
        started = time.perf_counter()
        try:
            reply = await self.inner.complete(messages, **kw)
        finally:
            self.seconds += time.perf_counter() - started
        self.replies.append({"constrained": kw.get("schema") is not None and not self.inner.schema_refused,
                             "raw": reply.content, "tool_calls": [c.name for c in reply.tool_calls]})
        return reply

    async def stream(self, messages, **kw):
        started = time.perf_counter()
        try:
            async for piece in self.inner.stream(messages, **kw):
                yield piece
        finally:
            self.seconds += time.perf_counter() - started

    async def stream_reply(self, messages, **kw):
        started = time.perf_counter()
        try:
            async for item in self.inner.stream_reply(messages, **kw):
                if isinstance(item, ChatReply):
                    self.replies.append({"constrained": False, "raw": item.content,
                                         "tool_calls": [c.name for c in item.tool_calls]})
                yield item
        finally:
            self.seconds += time.perf_counter() - started

    async def describe(self, model):
        return await self.inner.describe(model)

    async def list_models(self):
        return await self.inner.list_models()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Row:
    mode: str
    constrained: bool
    question: str
    completed: bool
    steps: int
    plans: int
    parsed: int  # planning replies the parser reads as a task (kagent mode)
    rejected: int  # plans the loop did not use: unparseable, unknown tool, or a repeat
    tools: str
    correct: bool
    seconds: float
    model_seconds: float
    answer: str


async def one_turn(args, mode: str, constrained: bool, question: str, expected: tuple[str, ...], data: Path,
                   log: list[dict]) -> Row:
    settings = load_settings(environ={}, data_dir=data, llm={
        "backend": args.backend, "host": args.host, "model": args.model, "mode": mode,
        "constrained_planning": constrained, "plan_max_tokens": args.plan_tokens,
        "answer_max_tokens": args.answer_tokens, "timeout": args.timeout, "num_ctx": args.num_ctx,
    }, agent={"max_steps": args.max_steps, "prompt_budget_tokens": max(512, args.num_ctx - args.answer_tokens - 200)})
    client = TimedClient(make_client(settings.llm))
    agent = Agent(settings, client, ToolRegistry(TIME_TOOLS))
    started = time.perf_counter()
    events = [e async for e in agent.run(TurnRequest(question, Audience("user:bench:real"), now=NOW))]
    elapsed = time.perf_counter() - started
    await client.close()
    done = [e for e in events if isinstance(e, AnswerDone)]
    failed = [e for e in events if isinstance(e, Failed)]
    answer = done[0].text if done else (failed[0].message if failed else "")
    rejected = sum(isinstance(e, PlanRejected) for e in events)
    plans = len(client.replies)
    parsed = sum(_parses(r["raw"]) for r in client.replies) if mode == "kagent" else plans
    tools = [f"{e.tool}({json.dumps(e.args, ensure_ascii=False)})" for e in events if isinstance(e, StepPlanned)]
    oks = [e.ok for e in events if isinstance(e, ToolFinished)]
    for reply in client.replies:
        log.append({"mode": mode, "question": question, **reply})
    return Row(mode, constrained, question, bool(done), len(oks), plans, parsed, rejected,
               "; ".join(f"{t}{'' if ok else ' ✗'}" for t, ok in zip(tools, oks)) or "-",
               bool(done) and any(w in answer.lower() for w in expected), elapsed, client.seconds,
               " ".join(answer.split())[:80])


def _parses(raw: str) -> bool:
    try:
        parse_plan(raw)
    except PlanParseError:
        return False
    return True


def table(rows: list[Row], note: str) -> str:
    lines = [note, "",
             "| mode | constrained | question | completed | steps | plans parsed | rejected | tools (args) | correct | s | model s | bot s | answer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cell = lambda t: t.replace("|", "\\|")  # noqa: E731
        lines.append(f"| {r.mode} | {'yes' if r.constrained else 'no'} | {cell(r.question)} | {'yes' if r.completed else 'no'} "
                     f"| {r.steps} | {r.parsed}/{r.plans} | {r.rejected} | {cell(r.tools)} | {'yes' if r.correct else 'no'} "
                     f"| {r.seconds:.1f} | {r.model_seconds:.1f} | {r.seconds - r.model_seconds:.2f} | {cell(r.answer)} |")
    for mode, constrained in VARIANTS:
        some = [r for r in rows if (r.mode, r.constrained) == (mode, constrained)]
        if some and mode == "kagent":
            lines.append(f"\n{mode}, constrained={'yes' if constrained else 'no'}: plans parsed "
                         f"{sum(r.parsed for r in some)}/{sum(r.plans for r in some)}, plans not used {sum(r.rejected for r in some)}, "
                         f"completed {sum(r.completed for r in some)}/{len(some)}, correct {sum(r.correct for r in some)}/{len(some)}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", default="openai", choices=["openai", "ollama"])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--plan-tokens", type=int, default=160)
    parser.add_argument("--answer-tokens", type=int, default=64)
    parser.add_argument("--num-ctx", type=int, default=4096)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--note", default="")
    parser.add_argument("--out")
    parser.add_argument("--replies", help="append every raw planning reply here (JSON lines)")
    args = parser.parse_args()
    rows: list[Row] = []
    log: list[dict] = []
    with tempfile.TemporaryDirectory() as data:
        for mode, constrained in VARIANTS:
            for question, expected in QUESTIONS[: args.questions]:
                row = await one_turn(args, mode, constrained, question, expected, Path(data), log)
                print(f"  {mode:6} constrained={'yes' if row.constrained else 'no ':3} parsed {row.parsed}/{row.plans} "
                      f"{row.seconds:6.1f} s  {question}", file=sys.stderr, flush=True)
                rows.append(row)
    text = table(rows, args.note)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.replies:
        with open(args.replies, "a") as handle:
            for entry in log:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
