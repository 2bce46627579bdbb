"""Turn a planning reply into one task. Models wrap the JSON in prose or code fences, think aloud
in `<think>` blocks, use single quotes, trailing commas or Python literals, name the arguments
`parameters` or `action_input`, or stop mid-object: find the first object that holds a task and
repair it before giving up."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

STOP_COMMANDS = frozenset({"task_complete", "do_nothing", "finish", "none", "final_answer"})
_FENCE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)(?:```|$)", re.S)
# Reasoning models (qwen3, deepseek-r1) think before they answer; drafts in there are not the plan.
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_CALL = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*\((.*)\)\s*$", re.S)
# Chinese keyboards type full-width punctuation; tried only when nothing else parses.
_FULL_WIDTH = str.maketrans({"：": ":", "，": ",", "“": '"', "”": '"', "‘": "'", "’": "'", "｛": "{", "｝": "}"})
_NAME_KEYS = ("name", "tool", "tool_name", "function", "command", "action")
_ARG_KEYS = ("args", "arguments", "parameters", "action_input", "tool_input", "input", "params")
# What a model copies instead of planning: the format line's `<…>` slots and date masks.
_PLACEHOLDER = re.compile(r"^\s*<[^<>]{0,60}>\s*$")
_FORMAT_MASK = re.compile(r"yyyy|YYYY|MM-dd|dd/MM|HH:mm|hh:mm|mm:ss")
_COMMAND_LINE = re.compile(r'^\s*\d+:\s*\{"name":.*"parameters":.*\}\s*$', re.M)
_SCHEMA_KEYS = frozenset({"type", "properties", "required", "description", "default", "enum", "items", "anyOf"})
_MAX_STARTS = 32  # objects tried per reply: a reply is short, but never scan without bound
_MAX_CHARS = 20_000  # a plan is a few hundred characters; a rambling reply is not read to its end


class PlanParseError(ValueError):
    """The reply holds no usable task; the message says why (shown to the user as a step)."""


@dataclass(frozen=True)
class Plan:
    task_name: str
    tool: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_stop(self) -> bool:
        return self.tool.lower().replace(" ", "_") in STOP_COMMANDS  # ReAct models write "Final Answer"


def parse_plan(reply: str) -> Plan:
    text = _THINK.sub("", reply).strip()[:_MAX_CHARS]
    text, echoed = _COMMAND_LINE.subn("", text)  # the prompt's `N: {spec}` lines, repeated back
    problems: list[str] = ["the model repeated the prompt's command list instead of planning a task"] if echoed else []
    for candidate in _candidates(text):
        obj = _load(candidate)
        if not isinstance(obj, dict) or not obj:
            continue
        try:
            return _from_object(obj)
        except PlanParseError as exc:  # an example object or a fragment: a later one may be the task
            problems.append(str(exc))
    call = _call_syntax(text)
    if call is not None:
        return Plan(task_name=call[0], tool=call[0], args=call[1])
    raise PlanParseError(problems[0] if problems else "the model's plan holds no JSON task")


def _from_object(obj: dict[str, Any]) -> Plan:
    """The task in `obj`, or in a wrapper's one object value: `{"next_task": {...}}`."""
    try:
        return _as_plan(obj)
    except PlanParseError:
        inner = [v for v in obj.values() if isinstance(v, dict)]
        if len(obj) == 1 and len(inner) == 1:
            return _as_plan(inner[0])
        raise


def _candidates(text: str) -> Iterator[str]:
    for match in _FENCE.finditer(text):
        if "{" in match.group(1):
            yield match.group(1).strip()
    yield from _objects(text)
    normalised = text.translate(_FULL_WIDTH)
    if normalised != text:
        yield from _objects(normalised)


def _objects(text: str) -> Iterator[str]:
    """Each brace-balanced object in order of its opening brace (outer objects before inner ones).
    An object cut off by the end of the reply is the last: every later start lies inside it, and
    repairing each of them would cost time quadratic in the reply's length."""
    start = text.find("{")
    for _ in range(_MAX_STARTS):
        if start < 0:
            return
        candidate = _balanced(text, start)
        yield candidate
        if not candidate.endswith("}"):
            return
        start = text.find("{", start + 1)


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
    _refuse_spec(obj)
    name, args = _command(obj)
    if isinstance(args, str):
        args = _string_args(args)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise PlanParseError(f"the arguments of {name!r} are not an object")
    task_name = str(obj.get("task_name") or obj.get("task") or obj.get("thought") or name)
    _refuse_copies(name, task_name, args)
    return Plan(task_name=task_name.strip(), tool=name, args=args)


def _refuse_spec(obj: dict[str, Any]) -> None:
    """A command's description from the prompt's list (`name`, `description`, `parameters`) is an
    echo of the prompt, not a task."""
    if "description" in obj and _is_schema(obj.get("parameters")) and "task_name" not in obj:
        raise PlanParseError("the model repeated a command's description from the prompt instead of planning a task")


def _is_schema(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("properties"), dict) and set(value) <= _SCHEMA_KEYS


def _refuse_copies(name: str, task_name: str, args: dict[str, Any]) -> None:
    if _is_schema(args):
        raise PlanParseError(f"the model wrote the argument schema of {name!r} instead of its arguments")
    values = [task_name, *(v for v in args.values() if isinstance(v, str))]
    for value in values:
        if _PLACEHOLDER.match(value):
            raise PlanParseError(f"the model copied the reply format's placeholder {value.strip()!r} instead of planning")
        if _FORMAT_MASK.search(value):
            raise PlanParseError(f"the model copied a format mask ({value!r}) instead of a real value")


def _command(obj: dict[str, Any]) -> tuple[str, Any]:
    """The tool name and raw arguments, whichever of the shapes models use the object has."""
    for key in ("command", "action", "tool", "tool_name", "function", "name"):
        value = obj.get(key)
        if isinstance(value, dict):  # {"command": {"name": ..., "args": ...}}
            return _named(value)
        if isinstance(value, str) and value.strip():  # {"command": "web_search", "args": {...}}
            call = _call_syntax(value) if not _has_args(obj) else None
            return call if call else (_tool_name(value), _args_of(obj))
    raise PlanParseError("the model's task has no command")


def _named(command: dict[str, Any]) -> tuple[str, Any]:
    for key in _NAME_KEYS:
        if isinstance(command.get(key), str) and command[key].strip():
            return _tool_name(command[key]), _args_of(command)
    if len(command) == 1:  # {"command": {"web_search": {"text": ...}}}
        (key, value), = command.items()
        if key not in _ARG_KEYS and (isinstance(value, (dict, str)) or value is None):
            return _tool_name(key), value
    raise PlanParseError("the model's task names no command")


def _has_args(obj: dict[str, Any]) -> bool:
    return any(key in obj for key in _ARG_KEYS)


def _args_of(obj: dict[str, Any]) -> Any:
    for key in _ARG_KEYS:
        if key in obj:
            return obj[key]
    return {}


def _tool_name(name: str) -> str:
    name = name.strip()
    if name.startswith("<") and name.endswith(">"):  # the format line echoed back: `"<command name>"`
        raise PlanParseError("the model repeated the reply format instead of planning a task")
    return name.removeprefix("functions.")  # OpenAI's namespace for function tools


def _string_args(text: str) -> Any:
    """Arguments sent as a string: JSON-encoded (OpenAI style) or a bare query."""
    if text.strip().startswith("{"):
        return _load(text)
    return {"text": text} if text.strip() else {}


def _call_syntax(text: str) -> tuple[str, dict[str, Any]] | None:
    """`web_search(text="Messi")`: a Python-style call with literal keyword arguments."""
    match = _CALL.match(text)
    if not match:
        return None
    try:
        call = ast.parse(text.strip(), mode="eval").body
        if not isinstance(call, ast.Call):
            return None
        args = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        if len(call.args) == 1 and not args:
            value = ast.literal_eval(call.args[0])
            args = value if isinstance(value, dict) else {"text": value}
        elif call.args:
            return None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return _tool_name(match.group(1)), args


def strip_thinking(text: str) -> str:
    """A whole reply without its `<think>` blocks."""
    return _THINK.sub("", text).strip()


class ThinkFilter:
    """Drops `<think>…</think>` from a streamed answer as it arrives; a tag may be split across
    chunks, so a possible start of one is held back until the next chunk decides."""

    _OPEN, _CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._pending = ""
        self._inside = False
        self._started = False  # leading blank lines after a think block are not shown

    def feed(self, chunk: str) -> str:
        self._pending += chunk
        out: list[str] = []
        while True:
            tag = self._CLOSE if self._inside else self._OPEN
            found = self._pending.find(tag)
            if found < 0:
                break
            if not self._inside:
                out.append(self._pending[:found])
            self._pending = self._pending[found + len(tag) :]
            self._inside = not self._inside
        held = _partial_tag(self._pending, self._CLOSE if self._inside else self._OPEN)
        if not self._inside:
            out.append(self._pending[: len(self._pending) - held])
        self._pending = self._pending[len(self._pending) - held :]
        return self._visible("".join(out))

    def flush(self) -> str:
        rest, self._pending = ("" if self._inside else self._pending), ""
        return self._visible(rest)

    def _visible(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        return text


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
