"""A persona: who the agent is for a turn (KAgentSys' optional profile), and how persona files
and inline `key=value` fields become one, with errors that name the field and the reason."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class Persona(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="lowercase id, e.g. research")
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

FIELDS: tuple[str, ...] = tuple(Persona.model_fields)


class PersonaError(ValueError):
    """A persona file or field list that cannot become a Persona; the text says which field and why."""


def persona_from_mapping(data: dict[str, Any], source: str = "persona") -> Persona:
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        raise PersonaError(f"{source} is not a valid persona:\n{describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(file)"
        reason = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"• field '{where}': {reason}")
    return "\n".join(lines)


def persona_from_toml(text: str | bytes, source: str = "persona file") -> Persona:
    """A persona file: top-level TOML keys named like the Persona fields."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PersonaError(f"{source} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"{source} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or table
        raise PersonaError(f"{source} nests arrays or tables too deeply; a persona needs only a few levels") from None
    return persona_from_mapping(data, source)


def parse_fields(words: Iterable[str]) -> dict[str, Any]:
    """Inline fields as chat users type them: `name=x display_name="X Y" tools=a,b options.temperature=0.2`.
    Values are read as TOML scalars when they are one (numbers, true/false), else kept as text."""
    fields: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PersonaError(f"'{word}' is not a field: write key=value (fields: {', '.join(FIELDS)})")
        if key.startswith("options."):
            fields.setdefault("options", {})[key[len("options."):]] = _scalar(raw)
        elif key not in FIELDS or key == "options":
            raise PersonaError(f"field '{key}': unknown field (fields: {', '.join(FIELDS)}, options.NAME)")
        elif key == "tools":
            fields["tools"] = None if raw.strip() in ("", "all") else tuple(t.strip() for t in raw.split(",") if t.strip())
        elif key in ("model", "max_steps") and raw.strip() in ("", "none"):
            fields[key] = None
        else:
            fields[key] = _scalar(raw) if key == "max_steps" else raw
    return fields


def _scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    except RecursionError:
        raise PersonaError(f"the value {raw[:40]}… nests arrays or tables too deeply") from None


def persona_to_toml(persona: Persona) -> str:
    """A persona as a file an admin can edit and load back (strings escaped as TOML basic strings)."""
    lines = []
    for key, value in persona.model_dump().items():
        if value is None or (key == "options" and not value):
            continue
        if key == "options":
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    if persona.options:
        lines += ["", "[options]"] + [f"{k} = {_toml_value(v)}" for k, v in persona.options.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string
