"""Builds kagentbot's own KAgentBench-format set (kagentbot/eval/data/kagentbench_ours.jsonl) from
ourset_cases.py. Its `KuaiAgent` prompts come from our own prompt builder, so a score measures our
prompts too; a short ReAct prompt (our wording) exercises the ReAct reply shape. Rebuild with
`python -m kagentbot.eval.ourset`; a test checks the shipped file matches."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from kagentbot.agent import prompts
from kagentbot.eval import ourset_cases as cases
from kagentbot.eval.bench import OURSET
from kagentbot.memory.types import Recall, TaskRecord
from kagentbot.persona.model import DEFAULT_PERSONA, Persona
from kagentbot.tools.catalog import build_registry

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # every case is asked at this moment
MAX_STEPS = 5
BUDGET = 100_000  # the set's prompts are whole; `eval run` applies the input budget

REACT_INTRO = {
    "en": "Answer the question as well as you can. You may use these tools:",
    "zh": "尽你所能回答问题。你可以使用以下工具：",
}
REACT_FORMAT = (
    "Reply in this format, one step only:\n"
    "Thought: what you should do next and why\n"
    "Action: the tool to use, one of [{names}]\n"
    "Action Input: the tool's arguments as a JSON object\n"
)


def tool_specs() -> list[dict[str, Any]]:
    return [tool.function_spec() for tool in build_registry().tools()]


def language_of(case_id: str) -> str:
    return "zh" if "-zh-" in case_id else "en"


def records(done: list[tuple]) -> list[TaskRecord]:
    return [TaskRecord(name, {"name": tool, "args": args}, result) for name, tool, args, result in done]


def react_prompt(query: str, memory: str, language: str) -> str:
    specs = tool_specs()
    tools = "\n".join(f"{s['name']}: {s['description']} {json.dumps(s['parameters'], ensure_ascii=False)}" for s in specs)
    names = ", ".join(s["name"] for s in specs)
    history = f"\n{memory}\n" if memory else "\n"
    return (f"{REACT_INTRO[language]}\n{tools}\n\n{prompts.describe_now(NOW, language)}\n{history}\n"
            f"{REACT_FORMAT.format(names=names)}\nQuestion: {query}\n")


def planning_case(case: tuple, kind: str) -> dict[str, Any]:
    case_id, query, done, golden = case
    language = language_of(case_id)
    memory = prompts.memory_text(Recall(), records(done), language)
    kuai = prompts.planning_prompt(DEFAULT_PERSONA, tool_specs(), NOW, memory, query, MAX_STEPS, language).render(BUDGET)
    last = {"tool_name": done[-1][1], "tool_args": done[-1][2]} if done else {}
    return {
        "id": case_id, "query": query, "type": kind,
        "golden_result_list": [{"thought": t, "tool_name": n, "tool_args": a} for t, n, a in golden],
        "funcs": tool_specs(),
        "prompt_input": {"KuaiAgent": kuai, "ReACT": react_prompt(query, memory, language)},
        "memory": memory, "memory_type": "task", "memory_last_task": last,
    }


def conclusion_case(case: tuple) -> dict[str, Any]:
    case_id, query, done, golden = case
    language = language_of(case_id)
    memory = prompts.memory_text(Recall(), records(done), language)
    prompt = prompts.concluding_prompt(DEFAULT_PERSONA, NOW, memory, query, language).render(BUDGET)
    return {
        "id": case_id, "query": query, "type": "conclusion",
        "golden_result_list": [{"golden_result": text} for text in golden],
        "funcs": [], "prompt_input": {"KuaiAgent": prompt},
        "memory": memory, "memory_type": "task",
        "memory_last_task": {"tool_name": done[-1][1], "tool_args": done[-1][2]},
    }


def profile_case(case: tuple) -> dict[str, Any]:
    case_id, (name, bio, instructions), query, golden = case
    language = language_of(case_id)
    persona = Persona(name="eval", display_name=name, bio=bio, instructions=instructions)
    prompt = prompts.direct_prompt(persona, NOW, "", query, language).render(BUDGET)
    return {
        "id": case_id, "query": query, "type": "profile",
        "golden_result_list": [{"golden_result": text} for text in golden],
        "funcs": [], "prompt_input": {"prompt": prompt},
        "memory": "", "memory_type": "", "memory_last_task": {},
    }


def build() -> list[dict[str, Any]]:
    return ([planning_case(c, "plantooluse") for c in cases.PLAN_CASES]
            + [planning_case(c, "reflextion") for c in cases.REFLECTION_CASES]
            + [conclusion_case(c) for c in cases.CONCLUSION_CASES]
            + [profile_case(c) for c in cases.PROFILE_CASES])


def render() -> str:
    return "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in build())


if __name__ == "__main__":
    OURSET.write_text(render(), "utf-8")
    print(f"wrote {OURSET}")
