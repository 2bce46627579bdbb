"""Our own KAgentBench-format set: shipped as built by our prompt builder, in the exact format,
bilingual, over our real tools and argument names."""

from __future__ import annotations

from collections import Counter

from kagentbot.eval import ourset
from kagentbot.eval.bench import TYPES, load_items
from kagentbot.tools.catalog import build_registry


def test_the_shipped_file_is_what_the_builder_writes():
    assert ourset.OURSET.read_text("utf-8") == ourset.render(), "run: python -m kagentbot.eval.ourset"


def test_sixty_bilingual_cases_of_every_type_with_several_golden_answers(ourset):
    assert len(ourset) >= 60
    kinds = Counter((item.type, "zh" if "-zh-" in item.id else "en") for item in ourset)
    assert all(kinds[(kind, lang)] >= 5 for kind in TYPES for lang in ("zh", "en")), kinds
    assert all(len(item.golden) >= 2 for item in ourset)
    fields = {"id", "query", "type", "golden_result_list", "funcs", "prompt_input", "memory", "memory_type", "memory_last_task"}
    assert all(set(item.raw) == fields for item in ourset)


def test_golden_plans_call_our_tools_with_their_argument_names(ourset):
    registry = build_registry()
    for item in ourset:
        for golden in item.golden:
            if item.type in ("plantooluse", "reflextion"):
                tool = registry.get(golden["tool_name"])
                assert tool is not None, (item.id, golden)
                assert set(golden["tool_args"]) <= set(tool.parameters["properties"]), (item.id, golden)


def test_kuaiagent_prompts_are_our_planning_prompt(ourset):
    planning = [item for item in ourset if item.type in ("plantooluse", "reflextion")]
    for item in planning:
        prompt = dict(item.prompts)["KuaiAgent"]
        assert prompt.endswith(("A new Task:", "新任务：")) and f"GOAL: {item.query}" in prompt
        assert "Commands:\n1: " in prompt and item.memory in prompt
    reflections = [item for item in ourset if item.type == "reflextion"]
    assert all(item.last_task["tool_name"] for item in reflections)


def test_a_data_file_loads_back_unchanged(tmp_path, ourset):
    copy = tmp_path / "copy.jsonl"
    copy.write_text(_shipped(), "utf-8")
    assert [item.raw for item in load_items(copy)] == [item.raw for item in ourset]


def _shipped() -> str:
    return ourset.OURSET.read_text("utf-8")
