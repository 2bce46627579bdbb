"""`kagentbot eval e2e` through the whole loop (real agent, tools, LanceDB memory, LLM client)
against the fake model server, with network tools answered by the replay server: a scripted
perfect model gets every question right with every fact found in a tool's result; a garbage
model gets none right; the report names model, settings and failures."""

from __future__ import annotations

import json

import pytest

from kagentbot.eval.e2e import E2E_SET, is_correct, load_cases
from tests.eval.scripted import PerfectAgent, garbage


@pytest.fixture
def e2e_env():
    return {"KAGENTBOT_EMBED__BACKEND": "ollama", "KAGENTBOT_EMBED__MODEL": "kagentlm", "KAGENTBOT_EVAL__CONCURRENCY": "8"}


def test_the_set_has_forty_checkable_bilingual_questions():
    cases = load_cases(E2E_SET)
    assert len(cases) >= 40
    assert sum(c.lang == "zh" for c in cases) >= 15 and sum(c.lang == "en" for c in cases) >= 15
    assert {"date arithmetic", "lunar", "solar terms", "holidays", "knowledge base", "weather", "encyclopedia"} <= {c.category for c in cases}
    assert all(is_correct(c.answer, c.expect) for c in cases)  # each reference answer passes its own check


def test_the_answer_check():
    assert is_correct("Messi is 247 days older.", ["247"])
    assert not is_correct("It was 2470 days.", ["247"]) and not is_correct("in 2022", ["22"])
    assert is_correct("最低气温−5.6°C", ["-5.6"]) and not is_correct("最低气温5.6°C", ["-5.6"])
    assert is_correct("It falls on a FRIDAY.", ["Friday"])


async def test_a_perfect_model_gets_every_question_right(fake_ollama, cli, tmp_path, e2e_env):
    fake_ollama.responder = PerfectAgent(load_cases(E2E_SET))
    stem = tmp_path / "e2e"
    assert await cli(fake_ollama.url, "eval", "e2e", "--report", str(stem), **e2e_env) == 0
    report = json.loads(stem.with_suffix(".json").read_text("utf-8"))
    summary = report["summary"]
    assert summary["questions"] >= 40 and summary["accuracy_pct"] == 100.0
    assert summary["tool_failures"] == 0 and summary["parse_failures"] == 0 and summary["errors"] == 0
    assert summary["grounded"] == summary["questions"]  # every fact came out of a tool, from the fixtures
    assert report["settings"]["model"] == "kagentlm" and report["settings"]["embedder"] == "ollama"


async def test_a_garbage_model_gets_nothing_right(fake_ollama, cli, tmp_path, e2e_env):
    fake_ollama.responder = garbage
    stem = tmp_path / "e2e"
    assert await cli(fake_ollama.url, "eval", "e2e", "--report", str(stem), "--limit", "12", **e2e_env) == 0
    summary = json.loads(stem.with_suffix(".json").read_text("utf-8"))["summary"]
    assert summary["questions"] == 12 and summary["accuracy_pct"] == 0.0
    assert summary["parse_failures"] == 12 and summary["tool_calls"] == 0
    failures = stem.with_suffix(".md").read_text("utf-8")
    assert "## Failures" in failures and "lorem ipsum" in failures and "- model: kagentlm" in failures
