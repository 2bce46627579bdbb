"""Plan parsing against a corpus of model outputs seen in the wild: fences, prose, single quotes,
trailing commas, Python literals, truncation, Chinese, variant shapes, garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kagentbot.agent.parsing import PlanParseError, parse_plan

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "plan_corpus.jsonl").read_text().splitlines()]


def recovery_rate(corpus: list[dict]) -> tuple[int, int]:
    recovered = 0
    recoverable = [case for case in corpus if case["tool"] is not None]
    for case in recoverable:
        try:
            plan = parse_plan(case["raw"])
        except PlanParseError:
            continue
        recovered += (plan.tool, plan.args) == (case["tool"], case["args"])
    return recovered, len(recoverable)


@pytest.mark.parametrize("case", CORPUS, ids=[f"case{i}" for i in range(len(CORPUS))])
def test_corpus_case(case):
    if case["tool"] is None:
        with pytest.raises(PlanParseError):
            parse_plan(case["raw"])
        return
    plan = parse_plan(case["raw"])
    assert (plan.tool, plan.args) == (case["tool"], case["args"])
    assert plan.task_name


def test_corpus_is_large_and_fully_recovered():
    recovered, recoverable = recovery_rate(CORPUS)
    assert len(CORPUS) >= 40
    assert recovered == recoverable, f"recovered {recovered}/{recoverable}"


def test_stop_commands_are_stops():
    assert parse_plan('{"task_name": "f", "command": {"name": "task_complete", "args": {}}}').is_stop
    assert parse_plan('{"task_name": "f", "command": {"name": "do_nothing", "args": {}}}').is_stop
    assert not parse_plan('{"task_name": "f", "command": {"name": "web_search", "args": {"text": "x"}}}').is_stop
