"""A persona: who the agent is for a turn (KAgentSys' optional profile)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Persona(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$", description="lowercase id, e.g. research")
    display_name: str = Field(min_length=1, max_length=80)
    bio: str = Field("", max_length=2000)
    instructions: str = Field("", max_length=4000)
    language: Literal["auto", "en", "zh"] = "auto"
    tools: tuple[str, ...] | None = None  # None: every enabled tool
    model: str | None = None  # overrides settings.llm.model
    options: dict[str, Any] = Field(default_factory=dict)  # sampling overrides (temperature, top_p, ...)
    max_steps: int | None = Field(None, ge=1, le=20)


DEFAULT_PERSONA = Persona(
    name="assistant",
    display_name="KAgent",
    bio="A helpful assistant that plans step by step and uses tools to find facts.",
    instructions="Answer accurately and cite where facts came from when it helps.",
)
