"""Typed, frozen events the agent loop yields; renderers turn them into messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class StepPlanned:
    """The model planned one task that needs a tool."""

    index: int  # 1-based step number
    task_name: str
    tool: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanRejected:
    """A plan that could not be used: unparseable, unknown tool, or a repeat. The loop
    concludes with what it has."""

    index: int
    reason: str
    raw: str = ""


@dataclass(frozen=True)
class ToolStarted:
    index: int
    tool: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolFinished:
    index: int
    tool: str
    ok: bool
    result: str  # the text the model sees (already truncated)
    display: str  # a compact rendering for chat
    elapsed: float


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class AnswerDone:
    text: str
    steps: int
    elapsed: float


@dataclass(frozen=True)
class Failed:
    """The turn could not finish. `message` is safe to show to the user."""

    message: str
    error_id: str
    retryable: bool = False


AgentEvent = Union[StepPlanned, PlanRejected, ToolStarted, ToolFinished, AnswerDelta, AnswerDone, Failed]
