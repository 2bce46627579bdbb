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
    assert parse_plan('{"action": "Final Answer", "action_input": "42"}').is_stop  # ReAct-trained models


def test_a_command_without_a_name_is_refused_not_taken_for_a_stop():
    with pytest.raises(PlanParseError, match="names no command"):
        parse_plan('{"task_name": "search", "command": {"args": {"text": "x"}}}')


def test_the_draft_inside_a_think_block_is_not_the_plan():
    reply = ('<think>maybe {"name": "web_search", "args": {"text": "draft"}}</think>\n'
             '{"task_name": "t", "command": {"name": "encyclopedia", "args": {"query": "final"}}}')
    assert (parse_plan(reply).tool, parse_plan(reply).args) == ("encyclopedia", {"query": "final"})


def test_a_long_garbage_reply_is_refused():
    with pytest.raises(PlanParseError):
        parse_plan("{ not json " * 2000)


@pytest.mark.parametrize("text,shown", [
    ("<think>\nplan {x}\n</think>\n\nThe answer.", "The answer."),
    ("No thinking, a < b and <b>bold</b>, ends with <thi", "No thinking, a < b and <b>bold</b>, ends with <thi"),
    ("<think>cut off before it closed", ""),
    ("one <think>x</think>two", "one two"),
])
@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_think_filter_on_any_chunking(text, shown, size):
    from kagentbot.agent.parsing import ThinkFilter

    thinking = ThinkFilter()
    out = "".join(thinking.feed(text[i : i + size]) for i in range(0, len(text), size)) + thinking.flush()
    assert out == shown
