"""A planning reply, read in the shape its prompt template asked for: KuaiAgent's JSON task (our
robust parser), ReAct and ToolLlama (`Thought:` / `Action:` / `Action Input:`), AutoGPT
(`{"thoughts": {...}, "command": {...}}`) and ModelScope (thought, then an `api_name` call)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kagentbot.agent.parsing import PlanParseError, parse_plan, strip_thinking


@dataclass(frozen=True)
class PlanGuess:
    thought: str
    tool: str
    args: dict[str, Any] = field(default_factory=dict)


_THOUGHT = re.compile(r"Thought\s*[:：]\s*(.*?)(?=\n\s*(?:Action|Final Answer)\s*[:：]|\Z)", re.S | re.I)
_ACTION = re.compile(r"Action\s*[:：]\s*(.+)", re.I)
_ACTION_INPUT = re.compile(r"Action[ _]Input\s*[:：]\s*(.*)", re.S | re.I)
_MODELSCOPE_CALL = re.compile(r"<\|startofthink\|>(.*?)(?:<\|endofthink\|>|\Z)", re.S)


def parse_for_template(template: str, reply: str) -> PlanGuess | None:
    """The plan in `reply`, or None when it holds none."""
    text = strip_thinking(reply or "")
    name = template.lower()
    if name in ("react", "toolllama", "toolllma"):
        return _react(text)
    if name == "modelscope":
        return _modelscope(text)
    if name == "autogpt":
        return _autogpt(text) or _json_task(text)
    return _json_task(text)


def _json_task(text: str) -> PlanGuess | None:
    try:
        plan = parse_plan(text)
    except PlanParseError:
        return None
    return PlanGuess(plan.task_name, plan.tool, plan.args)


def _react(text: str) -> PlanGuess | None:
    action = _ACTION.search(text)
    if action is None:
        return None
    thought = _THOUGHT.search(text)
    given = _ACTION_INPUT.search(text)
    args = _arguments(given.group(1)) if given else {}
    return PlanGuess(thought.group(1).strip() if thought else "", action.group(1).strip(), args)


def _modelscope(text: str) -> PlanGuess | None:
    call = _MODELSCOPE_CALL.search(text)
    body = _object(call.group(1) if call else text)
    if not isinstance(body, dict) or not body.get("api_name"):
        return None
    thought = text[: call.start()].strip() if call else ""
    args = body.get("parameters") or {}
    return PlanGuess(thought, str(body["api_name"]).strip(), args if isinstance(args, dict) else {})


def _autogpt(text: str) -> PlanGuess | None:
    body = _object(text)
    if not isinstance(body, dict) or not isinstance(body.get("command"), dict):
        return None
    thoughts = body.get("thoughts")
    if not isinstance(thoughts, dict):
        thoughts = {}
    command = body["command"]
    args = command.get("args") or {}
    thought = str(thoughts.get("text") or thoughts.get("reasoning") or "")
    return PlanGuess(thought.strip(), str(command.get("name") or "").strip(), args if isinstance(args, dict) else {})


def _arguments(text: str) -> dict[str, Any]:
    text = text.strip().split("\nObservation", 1)[0].strip()
    value = _object(text)
    return value if isinstance(value, dict) else ({} if not text else {"input": text})


def _object(text: str) -> Any:
    """The first JSON object in `text` (code fences and repairs allowed), or None."""
    start = text.find("{")
    if start < 0:
        return None
    import json_repair

    try:
        return json.loads(text[start : text.rfind("}") + 1])
    except json.JSONDecodeError:
        try:
            return json_repair.loads(text[start:])
        except (ValueError, RecursionError):
            return None
