"""The terminal: `kagentbot ask` and `kagentbot chat` render agent events with rich."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from rich.console import Console
from rich.markup import escape

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
from kagentbot.chat.render import RAW_CHARS, format_args


class ConsoleRenderer:
    """Steps as they happen, then the answer as it streams. Returns whether the turn succeeded."""

    def __init__(self, console: Console, *, show_steps: bool = True, show_raw: bool = False) -> None:
        self.console = console
        self.show_steps = show_steps
        self.show_raw = show_raw  # -v: a rejected plan's own text under its step

    async def render(self, events: AsyncIterator[AgentEvent]) -> bool:
        ok = False
        streaming = False
        async for event in events:
            if isinstance(event, AnswerDelta):
                if not streaming and self.show_steps:
                    self.console.print()  # a blank line between the steps and the answer
                streaming = True
                self.console.out(event.text, end="", highlight=False)
            elif isinstance(event, AnswerDone):
                self.console.print()
                if self.show_steps:  # --quiet: the answer alone, for scripts
                    self.console.print(f"[dim]{event.steps} step(s), {event.elapsed:.1f} s[/dim]")
                ok = True
            elif isinstance(event, Failed):
                self.console.print(f"[bold red]error:[/] {escape(event.message)}")
            elif self.show_steps:
                self._step(event)
        return ok

    def _step(self, event: AgentEvent) -> None:
        # one line per step, left for the terminal to wrap: Rich's own wrapping (80 columns when
        # piped) broke a tool's JSON result away from its ✓ mark
        print_ = functools.partial(self.console.print, soft_wrap=True)
        if isinstance(event, StepPlanned):
            print_(f"[bold cyan]{event.index}.[/] {escape(event.task_name)}")
        elif isinstance(event, ToolStarted):
            print_(f"   [dim]→ {event.tool}({escape(format_args(event.args))})[/dim]")
        elif isinstance(event, ToolFinished):
            mark = "[green]✓[/]" if event.ok else "[red]✗[/]"
            first = escape(event.display.splitlines()[0] if event.display else "")
            print_(f"   {mark} [dim]{first[:160]} ({event.elapsed:.2f} s)[/dim]")
        elif isinstance(event, PlanRejected):
            print_(f"[yellow]{event.index}. plan not usable:[/] {escape(event.reason)}")
            if self.show_raw and event.raw.strip():
                print_(f"   [dim]the model wrote: {escape(' '.join(event.raw.split())[:RAW_CHARS])}[/dim]")
