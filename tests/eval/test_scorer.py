"""The scorer against hand-worked values. Token counts and longest common subsequences below are
worked out by hand from the definition (CJK characters one token each, other text as Treebank
word tokens); `f(lcs, hyp, ref)` is rouge-chinese's F: 2PR / (P + R + 1e-8)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kagentbot.eval.bench import item_from
from kagentbot.eval.rouge import rouge_l, tokenize
from kagentbot.eval.score import score_all, score_case

TOL = 1e-6


def f(lcs: int, hyp: int, ref: int) -> float:
    p, r = lcs / hyp, lcs / ref
    return 2 * p * r / (p + r + 1e-8)


def case(kind: str, golden: list, templates=("KuaiAgent",), **extra: Any):
    prompts = {"prompt": "p"} if kind == "profile" else {t: "p" for t in templates}
    raw = {"id": extra.pop("id", "c1"), "query": "q", "type": kind, "golden_result_list": golden,
           "funcs": [], "prompt_input": prompts, "memory": "", "memory_type": "task", **extra}
    return item_from(raw, "test")


def kuai(thought: str, tool: str, **args: Any) -> str:
    return json.dumps({"task_name": thought, "command": {"name": tool, "args": args}}, ensure_ascii=False)


def gold(thought: Any, tool: Any, **args: Any) -> dict:
    return {"thought": thought, "tool_name": tool, "tool_args": args}


MESSI_GOLDEN = [gold("Look up Lionel Messi's date of birth", "encyclopedia", query="Lionel Messi"),
                gold("Find Messi's birth date in the encyclopedia", "encyclopedia", query="Lionel Messi")]


def test_tokens_as_the_definition_splits_them():
    assert tokenize("Look up Messi's birth date") == ["Look", "up", "Messi", "'s", "birth", "date"]
    assert tokenize("查询 Messi 的生日。") == ["查", "询", "Messi", "的", "生", "日", "。"]


def test_en_plan_takes_the_best_golden_answer():
    # hyp 6 tokens; golden 1: 8 tokens, LCS "Look up Messi 's date" = 5; golden 2: 8 tokens, LCS "Messi 's birth date" = 4
    scored = score_case(case("plantooluse", MESSI_GOLDEN), {"KuaiAgent": kuai("Look up Messi's birth date", "encyclopedia", query="Lionel Messi")})
    assert scored.scores["plan"] == pytest.approx(f(5, 6, 8), abs=TOL)
    assert scored.scores["tooluse"] == pytest.approx(f(2, 2, 2), abs=TOL)


def test_a_wrong_tool_name_zeroes_plan_and_tool_use():
    golden = [gold("Look up Messi's birth date", "web_search", text="Lionel Messi"),
              gold("Find Messi's birth date in the encyclopedia", "encyclopedia", query="Lionel Messi")]
    # the identical thought names web_search: 0; golden 2 (8 tokens) shares "Messi 's birth date" = 4 of 6
    scored = score_case(case("plantooluse", golden), {"KuaiAgent": kuai("Look up Messi's birth date", "encyclopedia", query="Messi")})
    assert scored.scores["plan"] == pytest.approx(f(4, 6, 8), abs=TOL)
    assert scored.scores["tooluse"] == pytest.approx(f(1, 1, 2), abs=TOL)  # "Messi" against "Lionel Messi"


def test_zh_plan_and_tool_use_average_argument_values():
    golden = [gold("查询梅西的出生日期", "get_weather_info", location="北京", start_date="2026-11-28", end_date="2026-11-29")]
    reply = kuai("查询梅西的生日", "get_weather_info", location="北京市", start_date="2026-11-28", end_date="2026-11-30")
    scored = score_case(case("plantooluse", golden), {"KuaiAgent": reply})
    assert scored.scores["plan"] == pytest.approx(f(7, 7, 9), abs=TOL)  # 查询梅西的 + 生日: 7 of 7 and 9
    # location 北京市 vs 北京: 2 of 3 and 2; start_date identical (one token); end_date differs: 0
    assert scored.scores["tooluse"] == pytest.approx((f(2, 3, 2) + f(1, 1, 1) + 0) / 3, abs=TOL)


def test_tool_use_missing_keys_and_empty_argument_sets():
    golden = [gold("look him up", "encyclopedia", query="Lionel Messi", lang="en")]
    scored = score_case(case("plantooluse", golden), {"KuaiAgent": kuai("look", "encyclopedia", query="Lionel Messi birth date")})
    assert scored.scores["tooluse"] == pytest.approx((f(2, 4, 2) + 0) / 2, abs=TOL)  # lang is missing: 0
    empty = [gold("nothing to do", "get_current_time")]
    assert score_case(case("plantooluse", empty), {"KuaiAgent": kuai("now", "get_current_time")}).scores["tooluse"] == 1.0
    extra = score_case(case("plantooluse", empty), {"KuaiAgent": kuai("now", "get_current_time", timezone="UTC")})
    assert extra.scores["tooluse"] == 0.0


def test_numbers_compare_as_text():
    golden = [gold("solar terms of 2027", "get_solar_terms_info", year=2027)]
    scored = score_case(case("plantooluse", golden), {"KuaiAgent": kuai("solar terms of 2027", "get_solar_terms_info", year="2027")})
    assert scored.scores["tooluse"] == pytest.approx(f(1, 1, 1), abs=TOL)


def test_reflection_repeating_the_last_task_scores_zero():
    last = {"tool_name": "web_search", "tool_args": {"text": "Messi Antonela age difference"}}
    golden = [gold("Search the web again", "web_search", text="Messi Antonela age difference"),
              gold("Look up Messi's birth date in the encyclopedia", "encyclopedia", query="Lionel Messi")]
    item = case("reflextion", golden, memory_last_task=last)
    repeat = score_case(item, {"KuaiAgent": kuai("Search the web again", "web_search", text="Messi Antonela age difference")})
    assert repeat.scores["reflection"] == 0.0
    better = score_case(item, {"KuaiAgent": kuai("Look up Messi's birth date", "encyclopedia", query="Lionel Messi")})
    # thought: all 6 tokens in the 9-token golden thought; arguments identical (2 tokens)
    assert better.scores["reflection"] == pytest.approx(0.3 * f(6, 6, 9) + 0.7 * f(2, 2, 2), abs=TOL)


def test_golden_answers_naming_none_are_skipped_in_plan_but_not_tool_use():
    golden = [gold(None, "encyclopedia", query="Lionel Messi"), gold("Look up Lionel Messi's date of birth", None)]
    scored = score_case(case("plantooluse", golden), {"KuaiAgent": kuai("Look up Lionel Messi's date of birth", "encyclopedia", query="Lionel Messi")})
    assert scored.scores["plan"] == 0.0
    assert scored.scores["tooluse"] == pytest.approx(f(2, 2, 2), abs=TOL)


def test_en_conclusion_best_of_golden_results():
    golden = [{"golden_result": "Lionel Messi is 247 days older than Antonela Roccuzzo."},
              {"golden_result": "Messi was born on 24 June 1987."}]
    # 6 tokens, all in golden 1 (10 tokens); golden 2 (8 tokens) shares "Messi ." = 2
    scored = score_case(case("conclusion", golden), {"KuaiAgent": "Messi is 247 days older."})
    assert scored.scores["conclusion"] == pytest.approx(f(6, 6, 10), abs=TOL)


def test_zh_profile_and_an_empty_reply():
    golden = [{"golden_result": "您好，很抱歉让您久等了。请提供您的订单号。"}]
    # 10 characters, all in order within the 21 of the golden answer
    assert score_case(case("profile", golden), "您好，请提供订单号。").scores["profile"] == pytest.approx(f(10, 10, 21), abs=TOL)
    assert score_case(case("profile", golden), "").scores["profile"] == 0.0


def test_each_template_read_in_its_own_shape_and_averaged():
    item = case("plantooluse", MESSI_GOLDEN, templates=("KuaiAgent", "ReACT", "AutoGPT", "ModelScope", "ToolLlama"))
    args = {"query": "Lionel Messi"}
    replies = {
        "KuaiAgent": kuai("Look up Messi's birth date", "encyclopedia", **args),
        "ReACT": 'Thought: Look up Messi\'s birth date\nAction: encyclopedia\nAction Input: {"query": "Lionel Messi"}',
        "AutoGPT": json.dumps({"thoughts": {"text": "Look up Messi's birth date", "reasoning": "r"}, "command": {"name": "encyclopedia", "args": args}}),
        "ModelScope": 'Look up Messi\'s birth date<|startofthink|>```JSON\n{"api_name": "encyclopedia", "parameters": {"query": "Lionel Messi"}}\n```<|endofthink|>',
        "ToolLlama": "I am not sure what to do.",
    }
    scored = score_case(item, replies)
    assert scored.unparsed == ("ToolLlama",)
    assert scored.scores["plan"] == pytest.approx(4 * f(5, 6, 8) / 5, abs=TOL)
    assert scored.scores["tooluse"] == pytest.approx(4 * f(2, 2, 2) / 5, abs=TOL)


def test_overall_weighs_the_abilities_as_published():
    items = [
        case("plantooluse", MESSI_GOLDEN, id="p"),
        case("reflextion", MESSI_GOLDEN, id="r", memory_last_task={}),
        case("conclusion", [{"golden_result": "Lionel Messi is 247 days older than Antonela Roccuzzo."}], id="c"),
        case("profile", [{"golden_result": "您好，很抱歉让您久等了。请提供您的订单号。"}], id="f"),
    ]
    predictions = {"p": {"KuaiAgent": kuai("Look up Messi's birth date", "encyclopedia", query="Lionel Messi")},
                   "r": {"KuaiAgent": kuai("Look up Messi's birth date", "encyclopedia", query="Lionel Messi")},
                   "c": {"KuaiAgent": "Messi is 247 days older."}, "f": "您好，请提供订单号。"}
    table = score_all(items, predictions)
    plan, tool = f(5, 6, 8), f(2, 2, 2)
    # reflection: golden 1 thought shares 5 of 6 and 8 tokens, golden 2 shares 4 → golden 1
    reflection = 0.3 * f(5, 6, 8) + 0.7 * f(2, 2, 2)
    expected = 0.25 * plan + 0.35 * tool + 0.1 * reflection + 0.2 * f(6, 6, 10) + 0.1 * f(10, 10, 21)
    assert table.overall == pytest.approx(expected, abs=TOL)
    assert table.abilities["reflection"] == pytest.approx(reflection, abs=TOL)
    assert table.missing == ()
    assert score_all(items, {}).overall == 0.0 and len(score_all(items, {}).missing) == 4


def test_rouge_l_matches_rouge_chinese_on_the_shipped_set(ourset):
    from rouge_chinese import Rouge

    rouge = Rouge(metrics=["rouge-l"])
    texts = [g.get("thought") or g.get("golden_result") for item in ourset for g in item.golden]
    texts += ["Wait...... then what? 好的……再见！", "他说：“走吧。”然后离开了。", "a\n\nb c", "“Quoted,” he said."]
    pairs = list(zip(texts, texts[1:] + texts[:1]))
    for hyp, ref in pairs:
        expected = rouge.get_scores(" ".join(tokenize(hyp)), " ".join(tokenize(ref)))[0]["rouge-l"]["f"]
        assert rouge_l(hyp, ref) == pytest.approx(expected, abs=1e-12), (hyp, ref)
    assert len(pairs) > 100


def test_golden_arguments_written_as_a_json_string():
    golden = [{"thought": "look him up", "tool_name": "encyclopedia", "tool_args": '{"query": "Lionel Messi"}'}]
    scored = score_case(case("plantooluse", golden), {"KuaiAgent": kuai("look him up", "encyclopedia", query="Lionel Messi")})
    assert scored.scores["tooluse"] == pytest.approx(f(2, 2, 2), abs=TOL)
