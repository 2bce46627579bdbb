"""`kagentbot eval run` and `eval score` against the fake model servers: a scripted perfect model
scores the maximum, a garbage model near 0, an interrupted run resumes, and predictions keep
KAgentBench's format."""

from __future__ import annotations

import json
from pathlib import Path

from kagentbot.eval.bench import BenchItem, load_items
from kagentbot.eval.ourset import OURSET
from kagentbot.eval.runner import fit_prompt
from kagentbot.agent.prompts import estimate_tokens
from tests.eval.conftest import read_lines
from tests.eval.scripted import GARBAGE, PerfectBench, garbage
from tests.fakes.ollama_server import Scripted
from tests.fakes.openai_server import FakeOpenAI


def scores(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text("utf-8"))["scores"]


async def test_perfect_model_scores_the_maximum_and_garbage_near_zero(fake_ollama, cli, tmp_path, ourset):
    fake_ollama.responder = PerfectBench(ourset)
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(tmp_path / "perfect.jsonl"), "--concurrency", "8") == 0
    assert await cli(fake_ollama.url, "eval", "score", str(OURSET), str(tmp_path / "perfect.jsonl"),
                     "--report", str(tmp_path / "perfect")) == 0
    assert scores(tmp_path / "perfect") == {"plan": 100.0, "tooluse": 100.0, "reflection": 100.0,
                                            "conclusion": 100.0, "profile": 100.0, "overall": 100.0}
    fake_ollama.responder = garbage
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(tmp_path / "garbage.jsonl"), "--concurrency", "8") == 0
    assert await cli(fake_ollama.url, "eval", "score", str(OURSET), str(tmp_path / "garbage.jsonl"),
                     "--report", str(tmp_path / "garbage")) == 0
    assert all(value < 2 for value in scores(tmp_path / "garbage").values())
    markdown = (tmp_path / "garbage.md").read_text("utf-8")
    assert "- model: kagentlm" in markdown and "- temperature: 0.1" in markdown and "| Overall |" in markdown


async def test_every_call_uses_kagentlm_sampling(fake_ollama, cli, tmp_path, ourset):
    fake_ollama.responder = PerfectBench(ourset)
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(tmp_path / "p.jsonl"), "--limit", "3",
                     KAGENTBOT_LLM__TEMPERATURE="0.9") == 0
    options = [body["options"] for body in fake_ollama.chat_requests()]
    assert len(options) == 6  # 3 planning cases × KuaiAgent and ReACT
    assert all((o["temperature"], o["top_p"], o["top_k"]) == (0.1, 0.75, 40) for o in options)


async def test_predictions_keep_every_input_field_and_add_only_model_predict(fake_ollama, cli, tmp_path, ourset):
    fake_ollama.responder = garbage
    out = tmp_path / "pred.jsonl"
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(out), "--types", "conclusion,profile", "--limit", "8") == 0
    inputs = {item.id: item.raw for item in ourset}
    lines = read_lines(out)
    assert len(lines) == 8
    for line in lines:
        predicted = line.pop("model_predict")
        assert line == inputs[line["id"]]
        if line["type"] == "profile":
            assert predicted == GARBAGE
        else:
            assert predicted == {"KuaiAgent": GARBAGE}
    assert load_items(out)  # a prediction file is still a valid data file


async def test_an_interrupted_run_resumes_where_it_stopped(fake_ollama, cli, tmp_path, ourset):
    out = tmp_path / "pred.jsonl"
    fake_ollama.script(*["answer"] * 5, Scripted(status=500, error="out of memory"))
    fake_ollama.responder = garbage
    code = await cli(fake_ollama.url, "eval", "run", "--out", str(out), "--types", "profile", "--concurrency", "1")
    assert code == 1
    first = [line["id"] for line in read_lines(out)]
    assert first == [item.id for item in ourset if item.type == "profile"][:5]
    with out.open("a", encoding="utf-8") as broken:  # a crash mid-write leaves half a line
        broken.write('{"id": "prof-zh-06", "model_pre')
    before = len(fake_ollama.chat_requests())
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(out), "--types", "profile", "--concurrency", "1") == 0
    assert len(fake_ollama.chat_requests()) - before == 7  # the 5 finished are not asked again
    ids = [line["id"] for line in read_lines(out)]
    assert sorted(ids) == sorted(item.id for item in ourset if item.type == "profile") and len(ids) == len(set(ids))


async def test_templates_filter_and_the_openai_backend(cli, tmp_path, ourset):
    async with FakeOpenAI() as server:
        server.script(*["Thought: look it up\nAction: encyclopedia\nAction Input: {\"query\": \"Lionel Messi\"}"] * 2)
        out = tmp_path / "pred.jsonl"
        assert await cli(server.url, "eval", "run", "--out", str(out), "--limit", "2", "--templates", "ReACT",
                         "--concurrency", "1", backend="openai") == 0
    assert [list(line["model_predict"]) for line in read_lines(out)] == [["ReACT"], ["ReACT"]]
    assert [(b["temperature"], b["top_p"], b["top_k"]) for b in server.requests] == [(0.1, 0.75, 40)] * 2


async def test_bad_input_gets_a_clear_error(fake_ollama, cli, tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "1", "query": "q", "type": "planning", "golden_result_list": [], "prompt_input": {"A": "p"}}\n')
    assert await cli(fake_ollama.url, "eval", "run", str(data), "--out", str(tmp_path / "o.jsonl")) == 2
    assert "bad.jsonl:1: type 'planning' is not one of plantooluse" in capsys.readouterr().err
    data.write_text("not json\n")
    assert await cli(fake_ollama.url, "eval", "score", str(data), str(tmp_path / "o.jsonl")) == 2
    assert "bad.jsonl:1: not a JSON line" in capsys.readouterr().err
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(tmp_path / "o.jsonl"), "--types", "nonsense") == 2
    assert "unknown --types nonsense" in capsys.readouterr().err
    assert not fake_ollama.chat_requests()


def test_a_long_prompt_loses_the_middle_of_its_memory_first():
    memory = "MEMSTART " + "filler words here " * 2000 + " MEMEND"
    prompt = f"RULES AND TOOLS\n{memory}\nGOAL: the question"
    fitted = fit_prompt(prompt, memory, 1000)
    assert estimate_tokens(fitted) <= 1000
    assert fitted.startswith("RULES AND TOOLS\nMEMSTART") and fitted.endswith("MEMEND\nGOAL: the question")
    no_memory = "HEAD " + "x y z " * 5000 + " TAIL"
    cut = fit_prompt(no_memory, "", 500)
    assert estimate_tokens(cut) <= 500 and cut.startswith("HEAD") and cut.endswith("TAIL")
    assert fit_prompt("short", "", 500) == "short"


async def test_templates_selects_for_run_and_score(fake_ollama, cli, tmp_path, ourset):
    fake_ollama.responder = PerfectBench(ourset)
    out = tmp_path / "pred.jsonl"
    assert await cli(fake_ollama.url, "eval", "run", "--out", str(out), "--templates", "ReACT", "--concurrency", "8") == 0
    lines = read_lines(out)
    # conclusion cases have only KuaiAgent prompts: left out; profile cases always have their one prompt
    assert {line["type"] for line in lines} == {"plantooluse", "reflextion", "profile"}
    assert all(list(line["model_predict"]) == ["ReACT"] for line in lines if line["type"] != "profile")
    assert await cli(fake_ollama.url, "eval", "score", str(OURSET), str(out), "--templates", "ReACT",
                     "--report", str(tmp_path / "s")) == 0
    assert scores(tmp_path / "s") == {"plan": 100.0, "tooluse": 100.0, "reflection": 100.0, "profile": 100.0, "overall": 80.0}


def test_a_prompt_whose_rules_alone_overflow_is_cut_in_its_middle():
    memory = "short memory"
    prompt = "RULES " + "rule text " * 3000 + memory + " GOAL: q"
    fitted = fit_prompt(prompt, memory, 300)
    assert estimate_tokens(fitted) <= 300 and fitted.startswith("RULES") and fitted.endswith("GOAL: q")


async def test_a_failing_case_does_not_lose_cases_answered_meanwhile(fake_ollama, cli, tmp_path, ourset):
    out = tmp_path / "pred.jsonl"
    # 11 answers and one failure, all arriving together: the answers being written when the
    # failure stops the run are still written
    fake_ollama.script(*[Scripted("answer", delay=0.3)] * 11, Scripted(status=500, error="out of memory", delay=0.32))
    code = await cli(fake_ollama.url, "eval", "run", "--out", str(out), "--types", "profile", "--concurrency", "12")
    assert code == 1
    assert len(read_lines(out)) == 11


async def test_a_profile_case_with_a_named_or_bare_prompt_gets_a_string_prediction(fake_ollama, cli, tmp_path):
    data = tmp_path / "profile.jsonl"
    golden = [{"golden_result": "Arr, matey!"}]
    lines = [{"id": "a", "query": "hi", "type": "profile", "golden_result_list": golden, "prompt_input": {"KuaiAgent": "Say hi like a pirate."}},
             {"id": "b", "query": "hi", "type": "profile", "golden_result_list": golden, "prompt_input": "Say hi like a pirate."}]
    data.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    fake_ollama.script("Arr, matey!", "Arr, matey!")
    out = tmp_path / "pred.jsonl"
    assert await cli(fake_ollama.url, "eval", "run", str(data), "--out", str(out), "--concurrency", "1") == 0
    assert [line["model_predict"] for line in read_lines(out)] == ["Arr, matey!", "Arr, matey!"]
    assert await cli(fake_ollama.url, "eval", "score", str(data), str(out), "--report", str(tmp_path / "s")) == 0
    assert scores(tmp_path / "s")["profile"] == 100.0
