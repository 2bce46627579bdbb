"""Scripted models for the eval instrument's own checks, served by the fake LLM servers: a
perfect model that answers each prompt with its case's golden answer in the template's shape
(or, end to end, follows each question's reference plan and gives its reference answer), and a
model that answers garbage."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from kagentbot.eval.bench import PROFILE_KEY, BenchItem
from kagentbot.eval.e2e import WEB, E2ECase
from tests.fakes.ollama_server import Scripted, complete, task

GARBAGE = "lorem ipsum dolor sit amet"


def garbage(body: dict[str, Any]) -> Scripted:
    return Scripted(GARBAGE)


def in_template(template: str, golden: dict[str, Any]) -> str:
    """A golden answer written the way `template` asks a model to reply."""
    thought, tool, args = golden["thought"], golden["tool_name"], golden.get("tool_args") or {}
    call = json.dumps(args, ensure_ascii=False)
    if template in ("ReACT", "ToolLlama"):
        return f"Thought: {thought}\nAction: {tool}\nAction Input: {call}"
    if template == "AutoGPT":
        return json.dumps({"thoughts": {"text": thought, "reasoning": "", "plan": ""},
                           "command": {"name": tool, "args": args}}, ensure_ascii=False)
    if template == "ModelScope":
        body = json.dumps({"api_name": tool, "parameters": args}, ensure_ascii=False)
        return f"{thought}<|startofthink|>```JSON\n{body}\n```<|endofthink|>"
    return task(thought, tool, **args)


def best_golden(item: BenchItem) -> Any:
    last = item.last_task
    for golden in item.golden:
        if not last or (golden.get("tool_name"), golden.get("tool_args")) != (last.get("tool_name"), last.get("tool_args")):
            return golden
    return item.golden[0]


def perfect_reply(item: BenchItem, template: str) -> str:
    golden = best_golden(item)
    if item.type in ("conclusion", "profile"):
        return golden["golden_result"] if isinstance(golden, dict) else golden
    return in_template(template, golden)


class PerfectBench:
    """Knows every prompt of the set; answers each with its case's golden answer."""

    def __init__(self, items: Sequence[BenchItem]) -> None:
        self.by_prompt = {prompt: (item, template) for item in items for template, prompt in item.prompts}

    def __call__(self, body: dict[str, Any]) -> Scripted:
        item, template = self.by_prompt[body["messages"][-1]["content"]]
        return Scripted(perfect_reply(item, template if item.type != "profile" else PROFILE_KEY))


_GOAL = re.compile(r"^GOAL: (.*)$", re.M)
_BASE = re.compile(r"http://127\.0\.0\.1:\d+")
_DONE_TITLES = ("* Complete tasks", "* 已完成的任务")


class PerfectAgent:
    """Follows each question's reference plan one task per planning prompt, then concludes with
    its reference answer. Which question a prompt is for is read from its GOAL line; cases are
    loaded without the replay server's address, which is read back from the question."""

    def __init__(self, cases: Sequence[E2ECase]) -> None:
        self.cases = {case.question: case for case in cases}

    def __call__(self, body: dict[str, Any]) -> Scripted:
        prompt = body["messages"][-1]["content"]
        goal = _GOAL.findall(prompt)[-1].strip()
        base = _BASE.search(goal)
        case = self.cases[_BASE.sub(WEB, goal)]
        if prompt.rstrip().endswith(("A new Task:", "新任务：")):
            done = _finished(prompt)
            if done < len(case.plan):
                step = json.loads(json.dumps(case.plan[done]).replace(WEB, base.group(0) if base else WEB))
                return Scripted(task(step["task_name"], step["tool"], **step["args"]))
            return Scripted(complete())
        return Scripted(case.answer)


def _finished(prompt: str) -> int:
    """Tasks listed between the Complete tasks title and the GOAL (the reply format after it
    shows a `"task_name"` too)."""
    start = max(prompt.rfind(title) for title in _DONE_TITLES)
    return prompt[start : prompt.rfind("\nGOAL: ")].count('"task_name"') if start >= 0 else 0
