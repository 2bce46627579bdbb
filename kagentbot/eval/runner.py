"""`kagentbot eval run`: send every case's prompts to the configured model and write the replies
as `model_predict`, one line per case as soon as it is done, so a run cut short resumes where it
stopped (ids already in the output are skipped)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kagentbot.agent.llm import LLMClient
from kagentbot.agent.prompts import detect_language, estimate_tokens, trim_middle
from kagentbot.config.settings import Settings
from kagentbot.eval.bench import BenchItem, load_predictions, prediction_line

CUT_MARK = "\n…\n"


def eval_options(settings: Settings) -> dict[str, Any]:
    """KAgentLM's sampling for every benchmark call (never the persona's or the chat's)."""
    e = settings.eval
    return {"temperature": e.temperature, "top_p": e.top_p, "top_k": e.top_k,
            "num_ctx": settings.llm.num_ctx, "num_predict": e.max_output_tokens}


def fit_prompt(prompt: str, memory: str, budget: int) -> str:
    """A prompt over `budget` tokens loses the middle of its memory text first; if that is not
    enough (or the prompt holds no memory), the middle of the prompt itself."""
    if estimate_tokens(prompt) <= budget:
        return prompt
    if memory and memory in prompt:
        room = budget - (estimate_tokens(prompt) - estimate_tokens(memory))
        if room > estimate_tokens(CUT_MARK):
            prompt = prompt.replace(memory, trim_middle(memory, room, detect_language(prompt)), 1)
            if estimate_tokens(prompt) <= budget:
                return prompt
    return cut_middle(prompt, budget)


def cut_middle(text: str, budget: int) -> str:
    """Keep the start and the end of `text`, in equal parts, within `budget` tokens."""
    keep = len(text)
    while keep > 0 and estimate_tokens(text[: keep // 2] + CUT_MARK + text[len(text) - keep // 2 :]) > budget:
        keep = int(keep * min(0.95, budget / estimate_tokens(text[: keep // 2] + text[len(text) - keep // 2 :])))
    half = keep // 2
    return text[:half] + CUT_MARK + (text[-half:] if half else "")


@dataclass(frozen=True)
class RunResult:
    written: int  # cases answered in this run
    skipped: int  # cases already in the output
    elapsed: float  # seconds
    calls: int  # model calls made


class PredictionWriter:
    """Appends one whole line per case; a line cut off by an earlier crash is dropped first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    def prepare(self) -> set[str]:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", "utf-8")
            return set()
        done = load_predictions(self.path)
        text = self.path.read_text("utf-8")
        if text and (not text.endswith("\n") or len(done) != sum(1 for line in text.splitlines() if line.strip())):
            self._keep_whole_lines(done)
        return set(done)

    def _keep_whole_lines(self, done: dict[str, Any]) -> None:
        import json

        kept = []
        for line in self.path.read_text("utf-8").splitlines():
            try:
                if str(json.loads(line).get("id")) in done:
                    kept.append(line)
            except (json.JSONDecodeError, AttributeError):
                continue
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), "utf-8")
        tmp.replace(self.path)

    def write(self, line: str) -> asyncio.Task[None]:
        """Starts the write as a task of its own, so a run stopped by another case's failure
        still keeps every case already answered (see `settle`)."""
        task = asyncio.ensure_future(self._write(line))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _write(self, line: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    async def settle(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


@dataclass
class BenchRun:
    settings: Settings
    llm: LLMClient
    templates: Sequence[str] = ()  # empty: every template a case has
    on_done: Callable[[BenchItem], None] | None = None
    calls: int = 0

    async def predict(self, item: BenchItem) -> dict[str, str]:
        wanted = [(t, p) for t, p in item.prompts if not self.templates or t in self.templates or item.type == "profile"]
        replies = await asyncio.gather(*(self._ask(item, prompt) for _, prompt in wanted))
        return {template: reply for (template, _), reply in zip(wanted, replies)}

    async def _ask(self, item: BenchItem, prompt: str) -> str:
        text = fit_prompt(prompt, item.memory, self.settings.eval.max_input_tokens)
        self.calls += 1
        reply = await self.llm.complete([{"role": "user", "content": text}], model=self.settings.llm.model,
                                        options=eval_options(self.settings))
        return reply.content

    async def run(self, items: Sequence[BenchItem], out: Path) -> RunResult:
        started = time.perf_counter()
        writer = PredictionWriter(out)
        done = await asyncio.to_thread(writer.prepare)
        todo = [item for item in items if item.id not in done]
        gate = asyncio.Semaphore(self.settings.eval.concurrency)

        async def one(item: BenchItem) -> None:
            async with gate:
                predicted = await self.predict(item)
            await asyncio.shield(writer.write(prediction_line(item, predicted)))
            if self.on_done:
                self.on_done(item)

        try:
            async with asyncio.TaskGroup() as group:
                for item in todo:
                    group.create_task(one(item))
        except BaseExceptionGroup as failed:  # the first failure stops the rest; its own error is the news
            raise _first(failed) from None
        finally:
            await writer.settle()
        return RunResult(len(todo), len(items) - len(todo), time.perf_counter() - started, self.calls)


def _first(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
