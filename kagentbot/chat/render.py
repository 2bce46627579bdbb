"""Agent events → platform messages, in one place: steps as threaded replies (or one edited
summary), the answer streamed by paced edits and split at the platform's limit. Sends are
paced per chat and retried on 429s and transient failures, never silently dropped."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kagentbot.agent.events import (
    AgentEvent,
    AnswerDelta,
    AnswerDone,
    Failed,
    PlanRejected,
    StepPlanned,
    ToolFinished,
    ToolStarted,
)
from kagentbot.chat.adapter import Adapter, Destination, RateLimited, SentMessage, Undeliverable
from kagentbot.chat.markup import convert, split_text
from kagentbot.chat.recent import Recent
from kagentbot.ops import metrics

log = logging.getLogger(__name__)
Verbosity = Literal["thread", "summary", "off", "debug"]
MAX_ATTEMPTS = 5  # failures (network, 5xx) before a message is given up
MAX_RATE_WAIT = 300.0  # seconds of 429 waits one message may spend before it is given up
CURSOR = " ▍"
REMEMBERED = 2048  # messages whose last text and edit time the outbox keeps


RAW_CHARS = 300  # of a rejected plan's text, shown at the highest verbosity


def format_args(args: dict[str, Any]) -> str:
    """A tool call's arguments as one line: `city="Paris", days=3`."""
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())


class DeliveryFailed(Exception):
    """A message could not be delivered after every retry."""


class Outbox:
    """One per adapter: paces sends per chat and edits per message, retries what fails."""

    def __init__(self, adapter: Adapter, redact: Callable[[str], str] | None = None) -> None:
        self.adapter = adapter
        self._redact = redact or (lambda text: text)  # secrets never reach a chat, whoever wrote them
        # bounded to REMEMBERED entries: a long-running bot must not grow without bound
        self._next_send: Recent[str, float] = Recent(REMEMBERED)
        self._next_edit: Recent[str, float] = Recent(REMEMBERED)
        self._last_text: Recent[str, str] = Recent(REMEMBERED)
        self._paused: Recent[str, float] = Recent(REMEMBERED)  # chat → when its 429 wait ends: every write there waits

    async def send(self, where: Destination, text: str) -> SentMessage:
        text = self._redact(text)
        await self._wait(self._next_send, where.chat_id, self.adapter.capabilities.send_interval)
        sent = await self._retry(where.chat_id, lambda: self.adapter.send(where, text))
        metrics.message_sent(self.adapter.platform)
        self._last_text[sent.message_id] = text
        return sent

    async def edit(self, message: SentMessage, text: str) -> None:
        text = self._redact(text)
        if self._last_text.get(message.message_id) == text:
            return  # platforms reject identical edits (Telegram: "message is not modified")
        await self._wait(self._next_edit, message.message_id, self.adapter.capabilities.edit_interval)
        await self._retry(message.chat_id, lambda: self.adapter.edit(message, text))
        metrics.message_edited(self.adapter.platform)
        self._last_text[message.message_id] = text

    def ready_to_edit(self, message: SentMessage) -> bool:
        return time.monotonic() >= self._next_edit.get(message.message_id, 0.0)

    @staticmethod
    async def _wait(schedule: dict[str, float], key: str, interval: float) -> None:
        now = time.monotonic()
        start = max(now, schedule.pop(key, 0.0))
        schedule[key] = start + interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _retry(self, chat: str, attempt):
        """Run `attempt` until it goes through. A 429 pauses every write to that chat for its
        Retry-After and is not a failure (waits up to MAX_RATE_WAIT in all); network errors and
        5xx are retried MAX_ATTEMPTS times; a refusal for good is not retried."""
        delay, failures, rate_waited = 0.5, 0, 0.0
        while True:
            pause = self._paused.get(chat, 0.0) - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                return await attempt()
            except RateLimited as exc:
                metrics.rate_limited(self.adapter.platform)
                wait = max(exc.retry_after, 0.05)  # a "Retry-After: 0" must not spin
                rate_waited += wait
                if rate_waited > MAX_RATE_WAIT:
                    raise DeliveryFailed(f"{self.adapter.platform}: still rate limited after {rate_waited:.0f} s") from exc
                log.info("%s rate limited in %s; waiting %.1f s", self.adapter.platform, chat, wait)
                self._paused[chat] = max(self._paused.pop(chat, 0.0), time.monotonic() + wait)
            except Undeliverable as exc:
                raise DeliveryFailed(f"{self.adapter.platform}: {exc}") from exc
            except Exception as exc:  # network hiccups, 5xx: the SDKs raise many kinds
                failures += 1
                if failures == MAX_ATTEMPTS:
                    raise DeliveryFailed(f"{self.adapter.platform}: {exc}") from exc
                log.warning("%s send failed (%s); retry %d", self.adapter.platform, exc, failures)
                metrics.send_retried(self.adapter.platform)
                await asyncio.sleep(delay)
                delay *= 2


@dataclass
class TurnRenderer:
    outbox: Outbox
    where: Destination
    verbosity: Verbosity = "thread"
    broadcast: bool = False  # the answer's first message also shows in the channel
    _steps: dict[int, SentMessage] = field(default_factory=dict)
    _step_lines: dict[int, str] = field(default_factory=dict)
    _summary: SentMessage | None = None
    _answer: str = ""
    _answer_messages: list[SentMessage] = field(default_factory=list)
    _logged: bool = False  # a step line was logged (append-only displays)

    @property
    def caps(self):
        return self.outbox.adapter.capabilities

    async def render(self, events: AsyncIterator[AgentEvent]) -> bool:
        ok = False
        async for event in events:
            if isinstance(event, AnswerDelta):
                self._answer += event.text
                await self._stream_answer(final=False)
            elif isinstance(event, AnswerDone):
                self._answer = event.text or self._answer or "(no answer)"
                await self._stream_answer(final=True)
                if self.caps.append_only and self.verbosity != "off":
                    await self._log(f"{event.steps} step(s), {event.elapsed:.1f} s")
                ok = True
            elif isinstance(event, Failed):
                await self._failed(event)
            else:
                await self._step(event)
        return ok

    async def _failed(self, event: Failed) -> None:
        """Whatever part of the answer came stays, without the cursor; the reason follows, split
        at the platform's limit like any reply."""
        if self._answer_messages:
            await self._stream_answer(final=True)
        for piece in split_text(f"⚠️ {event.message}", int(self.caps.max_length * 0.85)):
            await self.outbox.send(self.where, convert(piece, self.caps.markup))

    async def _step(self, event: AgentEvent) -> None:
        if self.verbosity == "off":
            return
        if self.caps.append_only:
            await self._log_step(event)
            return
        if isinstance(event, StepPlanned):
            line = f"⏳ {event.index}. {event.task_name} → `{event.tool}({format_args(event.args)})`"
        elif isinstance(event, ToolFinished):
            mark = "✅" if event.ok else "❌"
            planned = self._step_lines.get(event.index, f"{event.index}.").replace("⏳", mark, 1)
            summary = (event.display.splitlines() or [""])[0][:300]
            line = f"{planned}\n> {summary}" if summary else planned
        elif isinstance(event, PlanRejected):
            line = f"⚠️ {event.index}. {event.reason}"
            if self.verbosity == "debug" and event.raw.strip():
                line += "\n> the model wrote: " + " ".join(event.raw.split())[:RAW_CHARS]
        else:
            return
        await self._show_step(event.index, line)

    async def _log_step(self, event: AgentEvent) -> None:
        """Where nothing shown can change (a terminal), each step event is a line of its own."""
        line = log_line(event, debug=self.verbosity == "debug")
        if line:
            await self._log(line)
            self._logged = True

    async def _log(self, line: str) -> None:
        await self.outbox.send(self.where, convert(line, self.caps.markup))

    async def _show_step(self, index: int, line: str) -> None:
        self._step_lines[index] = line
        if self.verbosity == "summary":
            text = convert("\n".join(self._step_lines[i] for i in sorted(self._step_lines)), self.caps.markup)
            text = split_text(text, self.caps.max_length)[-1]
            if self._summary is None or not self.caps.edits:
                self._summary = await self.outbox.send(self.where, text)
            else:
                await self.outbox.edit(self._summary, text)
            return
        text = split_text(convert(line, self.caps.markup), self.caps.max_length)[0]
        if index in self._steps and self.caps.edits:
            await self.outbox.edit(self._steps[index], text)
        else:
            self._steps[index] = await self.outbox.send(self.where, text)

    async def _stream_answer(self, final: bool) -> None:
        if not final:
            if not self.caps.edits or not self._answer.strip():
                return  # without edits, send once at the end
            if self._answer_messages and not self.outbox.ready_to_edit(self._answer_messages[-1]):
                return
        budget = int(self.caps.max_length * 0.85) - len(CURSOR)  # markup can lengthen the text
        pieces = [convert(p, self.caps.markup) for p in split_text(self._answer, budget)]
        if not final:
            pieces[-1] += CURSOR
        for i, piece in enumerate(pieces):
            if i < len(self._answer_messages):
                await self.outbox.edit(self._answer_messages[i], piece)
            else:
                if self._logged and not self._answer_messages:
                    await self._log("")  # a blank line between the step log and the answer
                where = replace(self.where, broadcast=self.broadcast and not self._answer_messages)
                self._answer_messages.append(await self.outbox.send(where, piece))


def log_line(event: AgentEvent, debug: bool = False) -> str:
    """One step event as a line of a log: the task, the tool call, its outcome."""
    if isinstance(event, StepPlanned):
        return f"{event.index}. {event.task_name}"
    if isinstance(event, ToolStarted):
        return f"   → {event.tool}({format_args(event.args)})"
    if isinstance(event, ToolFinished):
        first = event.display.splitlines()[0] if event.display else ""
        return f"   {'✓' if event.ok else '✗'} {first[:160]} ({event.elapsed:.2f} s)"
    if isinstance(event, PlanRejected):
        line = f"{event.index}. plan not usable: {event.reason}"
        if debug and event.raw.strip():
            line += "\n   the model wrote: " + " ".join(event.raw.split())[:RAW_CHARS]
        return line
    return ""
