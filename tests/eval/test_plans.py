"""Replies read in the shape each prompt template asks for."""

from __future__ import annotations

from kagentbot.eval.plans import PlanGuess, parse_for_template


def test_react_with_prose_fences_and_full_width_colons():
    reply = "Thought：先查梅西的生日\nAction：encyclopedia\nAction Input：```json\n{'query': '梅西'}\n```\nObservation: ..."
    assert parse_for_template("ReACT", reply) == PlanGuess("先查梅西的生日", "encyclopedia", {"query": "梅西"})
    assert parse_for_template("ToolLlama", "Thought: hmm\nAction: web_search\nAction Input: Messi birthday") == \
        PlanGuess("hmm", "web_search", {"input": "Messi birthday"})
    assert parse_for_template("ReACT", "Thought: I know it.\nFinal Answer: 247 days") is None


def test_autogpt_and_modelscope_shapes():
    autogpt = '```json\n{"thoughts": {"text": "look it up", "criticism": "none"}, "command": {"name": "encyclopedia", "args": {"query": "Messi"}}}\n```'
    assert parse_for_template("AutoGPT", autogpt) == PlanGuess("look it up", "encyclopedia", {"query": "Messi"})
    modelscope = '我需要查天气。<|startofthink|>```JSON\n{"api_name": "get_weather_info", "parameters": {"location": "北京"}}\n```<|endofthink|>'
    assert parse_for_template("ModelScope", modelscope) == PlanGuess("我需要查天气。", "get_weather_info", {"location": "北京"})
    assert parse_for_template("ModelScope", "no call here") is None


def test_kuaiagent_uses_the_agents_robust_parser():
    reply = "<think>draft {\"task_name\": \"x\"}</think>Sure! {'task_name': 'look up Messi', 'command': {'name': 'encyclopedia', 'args': {'query': 'Messi',}}}"
    assert parse_for_template("KuaiAgent", reply) == PlanGuess("look up Messi", "encyclopedia", {"query": "Messi"})
    assert parse_for_template("KuaiAgent", "I cannot help with that.") is None
