"""Turn a planning reply into one task. Models wrap the JSON in prose or code fences, use single
quotes, trailing commas or Python literals, or stop mid-object: find the first object and
repair it before giving up."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

STOP_COMMANDS = frozenset({"task_complete", "do_nothing", "finish", "none", ""})
_FENCE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)(?:```|$)", re.S)


class PlanParseError(ValueError):
    """The reply holds no usable task; the message says why (shown to the user as a step)."""


@dataclass(frozen=True)
class Plan:
    task_name: str
    tool: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_stop(self) -> bool:
        return self.tool in STOP_COMMANDS


def parse_plan(reply: str) -> Plan:
    obj = _first_object(reply)
    return _as_plan(obj)


def _first_object(reply: str) -> dict[str, Any]:
    for candidate in _candidates(reply):
        obj = _load(candidate)
        if isinstance(obj, dict) and obj:
            return obj
    raise PlanParseError("the model's plan holds no JSON task")


def _candidates(reply: str) -> list[str]:
    text = reply.strip()
    found = [m.group(1) for m in _FENCE.finditer(text)]
    start = text.find("{")
    if start >= 0:
        found.append(_balanced(text, start))
    return [c.strip() for c in found if "{" in c]


def _balanced(text: str, start: int) -> str:
    """The object starting at `start`, up to its closing brace (or the end if truncated)."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def _load(candidate: str) -> Any:
    candidate = candidate[candidate.find("{") :]
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(candidate)  # Python literals: single quotes, True/None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    import json_repair

    try:
        return json_repair.loads(candidate)
    except (ValueError, RecursionError):
        return None


def _as_plan(obj: dict[str, Any]) -> Plan:
    command = obj.get("command", obj.get("action"))
    if isinstance(command, dict):
        name = command.get("name") or command.get("tool") or ""
        args = command.get("args", command.get("arguments", {}))
    elif isinstance(command, str):  # {"command": "web_search", "args": {...}}
        name, args = command, obj.get("args", obj.get("arguments", {}))
    elif "name" in obj:  # a bare function call object
        name, args = obj["name"], obj.get("args", obj.get("arguments", {}))
    else:
        raise PlanParseError("the model's task has no command")
    if isinstance(args, str):
        args = _load(args) if args.strip().startswith("{") else {"text": args}
    if not isinstance(args, dict):
        raise PlanParseError(f"the arguments of {name!r} are not an object")
    task_name = str(obj.get("task_name") or obj.get("task") or obj.get("thought") or name)
    return Plan(task_name=task_name.strip(), tool=str(name).strip(), args=args or {})
