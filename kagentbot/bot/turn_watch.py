"""The one hook the bot calls per turn: it names the turn (an id for the log lines written
while it runs), watches its events go by on their way to the renderer (first step shown, tool
runs, the answer or a failure) and records how it ended."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from kagentbot.agent.events import AgentEvent, AnswerDone, Failed, ToolFinished
from kagentbot.ops import logs, metrics

log = logging.getLogger("kagentbot.turn")
Render = Callable[[AsyncIterator[AgentEvent]], Awaitable[bool]]


class _Watch:
    __slots__ = ("started", "first_step", "steps", "failed")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_step: float | None = None
        self.steps = 0
        self.failed = False

    async def events(self, events: AsyncIterator[AgentEvent]) -> AsyncIterator[AgentEvent]:
        async for event in events:
            if self.first_step is None:
                self.first_step = time.perf_counter() - self.started
            if isinstance(event, ToolFinished):
                self.steps += 1
                metrics.tool_call(event.tool, event.ok, event.elapsed)
            elif isinstance(event, Failed):
                self.failed = True
            elif isinstance(event, AnswerDone):
                self.steps = event.steps
            yield event


async def observe_turn(platform: str, events: AsyncIterator[AgentEvent], render: Render) -> bool:
    """`render(events)`, observed. Outcomes: answered, failed (the agent said it could not
    answer: the model unreachable, a timeout), error (an exception: a message that could not be
    delivered, our own fault), cancelled (shutdown)."""
    watch = _Watch()
    token = logs.enter_turn(os.urandom(6).hex(), platform)
    outcome = "error"
    try:
        ok = await render(watch.events(events))
        outcome = "answered" if ok and not watch.failed else "failed"
        return ok
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        seconds = time.perf_counter() - watch.started
        metrics.turn_finished(platform, outcome, seconds, watch.first_step)
        if log.isEnabledFor(logging.INFO):
            first = None if watch.first_step is None else round(watch.first_step * 1000, 1)
            log.info("turn %s in %.0f ms", outcome, seconds * 1000, extra={
                "outcome": outcome, "turn_ms": round(seconds * 1000, 1), "first_step_ms": first, "steps": watch.steps})
        logs.leave_turn(token)
