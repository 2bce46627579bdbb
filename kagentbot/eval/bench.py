"""KAgentBench's JSONL format: one case per line with `id`, `query`, `type`, `golden_result_list`,
`funcs`, `prompt_input` (one prompt per template; a `profile` case carries one `prompt`), `memory`,
`memory_type`, `memory_last_task`. Predictions are the same lines plus `model_predict`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OURSET = Path(__file__).parent / "data" / "kagentbench_ours.jsonl"  # our own set, shipped
TYPES = ("plantooluse", "reflextion", "conclusion", "profile")
REQUIRED = ("id", "query", "type", "golden_result_list", "prompt_input")
PROFILE_KEY = "prompt"  # the one prompt of a profile case


class BenchError(ValueError):
    """A data or prediction file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class BenchItem:
    """One case. `raw` is the line as read, kept whole so predictions keep every input field."""

    id: str
    type: str
    query: str
    prompts: tuple[tuple[str, str], ...]  # (template, prompt)
    raw: dict[str, Any]

    @property
    def golden(self) -> list[Any]:
        return list(self.raw.get("golden_result_list") or [])

    @property
    def memory(self) -> str:
        return str(self.raw.get("memory") or "")

    @property
    def last_task(self) -> dict[str, Any]:
        last = self.raw.get("memory_last_task")
        return last if isinstance(last, dict) else {}

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.prompts)


def item_from(raw: Any, where: str) -> BenchItem:
    if not isinstance(raw, dict):
        raise BenchError(f"{where}: a case must be a JSON object")
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise BenchError(f"{where}: missing {', '.join(missing)}")
    if raw["type"] not in TYPES:
        raise BenchError(f"{where}: type {raw['type']!r} is not one of {', '.join(TYPES)}")
    return BenchItem(str(raw["id"]), raw["type"], str(raw["query"]), _prompts(raw["prompt_input"], where), raw)


def _prompts(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):  # a profile case's single prompt, written bare
        return ((PROFILE_KEY, value),)
    if not isinstance(value, dict) or not value:
        raise BenchError(f"{where}: prompt_input must be an object of template → prompt")
    return tuple((str(name), str(prompt)) for name, prompt in value.items())


def read_jsonl(path: Path) -> Iterable[tuple[str, dict[str, Any] | None]]:
    """(where, object) per non-blank line; the object is None for a line that is not JSON."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError:
                yield f"{path}:{number}", None


def load_items(path: Path) -> list[BenchItem]:
    items, seen = [], set()
    for where, raw in read_jsonl(path):
        if raw is None:
            raise BenchError(f"{where}: not a JSON line")
        item = item_from(raw, where)
        if item.id in seen:
            raise BenchError(f"{where}: id {item.id!r} appears twice")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise BenchError(f"{path} holds no cases")
    return items


def select(items: Sequence[BenchItem], types: Sequence[str] = (), limit: int | None = None,
           templates: Sequence[str] = ()) -> list[BenchItem]:
    """The cases of `types` that have one of `templates` (profile cases have one prompt: always)."""
    chosen = [item for item in items if (not types or item.type in types)
              and (not templates or item.type == "profile" or any(t in templates for t in item.templates))]
    return chosen[:limit] if limit is not None else chosen


def prediction_line(item: BenchItem, predicted: dict[str, str]) -> str:
    """The input line with `model_predict` added: a dict per template, a string for profile."""
    value: Any = next(iter(predicted.values()), "") if item.type == "profile" else predicted  # whatever its key
    return json.dumps({**item.raw, "model_predict": value}, ensure_ascii=False)


def load_predictions(path: Path) -> dict[str, Any]:
    """id → model_predict. Lines that do not parse (a run cut off mid-write) are left out."""
    found: dict[str, Any] = {}
    for _, raw in read_jsonl(path):
        if isinstance(raw, dict) and "id" in raw and "model_predict" in raw:
            found[str(raw["id"])] = raw["model_predict"]
    return found
