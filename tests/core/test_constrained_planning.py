"""Constrained planning at the wire: the planning call asks the server for JSON matching the plan's
schema (Ollama `format`, OpenAI-compatible `response_format` json_schema); a server that refuses
is asked in free text once and from then on, and the text parser reads its reply."""

from __future__ import annotations

import pytest

from kagentbot.agent.events import StepPlanned, ToolFinished
from kagentbot.tools.catalog import build_registry
from tests.core.test_agent_loop import MESSI_Q, MESSI_TASK, agent_for, final_answer, run_turn
from tests.fakes.ollama_server import Scripted, complete
from tests.fakes.openai_server import FakeOpenAI


def branches(schema: dict) -> dict[str, dict]:
    """Each command branch of a plan schema, by the one tool name its enum allows."""
    assert schema["required"] == ["task_name", "command"] and schema["additionalProperties"] is False
    assert schema["properties"]["task_name"]["type"] == "string"
    found = {}
    for branch in schema["properties"]["command"]["anyOf"]:
        assert branch["required"] == ["name", "args"] and branch["additionalProperties"] is False
        (name,) = branch["properties"]["name"]["enum"]
        found[name] = branch["properties"]["args"]
    return found


def assert_plan_schema(schema: dict, registry) -> None:
    per_tool = branches(schema)
    assert sorted(per_tool) == sorted([*registry.names(), "task_complete"])
    for spec in registry.tools():
        args = per_tool[spec.name]
        assert list(args["properties"]) == list(spec.parameters["properties"])
        for name, prop in spec.parameters["properties"].items():  # the tool's own schema, strings bounded
            bound = {"maxLength": 300} if prop.get("type") == "string" else {}
            assert args["properties"][name] == {**bound, **prop}
        assert args["required"] == spec.parameters["required"] and args["additionalProperties"] is False
    assert per_tool["task_complete"]["properties"] == {"reason": {"type": "string", "maxLength": 300}}


async def test_ollama_planning_call_carries_the_plan_schema_as_format(fake_ollama, make_settings):
    registry = build_registry()
    fake_ollama.script(MESSI_TASK, complete(), "Messi is older, by 247 days.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url}), tools=registry))
    assert [e.tool for e in events if isinstance(e, StepPlanned)] == ["time_delta"]
    first, second, answer = fake_ollama.chat_requests()
    assert_plan_schema(first["format"], registry)
    assert second["format"] == first["format"]
    assert answer["stream"] is True and not answer.get("format")  # the answer itself is free text


async def test_openai_planning_call_carries_the_plan_schema_as_response_format(make_settings):
    registry = build_registry()
    async with FakeOpenAI() as server:
        server.script(MESSI_TASK, complete(), "Messi is older, by 247 days.")
        events = await run_turn(agent_for(make_settings(llm={"backend": "openai", "host": server.url}), tools=registry))
    assert final_answer(events) == "Messi is older, by 247 days."
    planning, _, answer = server.requests
    assert planning["response_format"]["type"] == "json_schema"
    assert planning["response_format"]["json_schema"]["name"] == "plan"
    assert_plan_schema(planning["response_format"]["json_schema"]["schema"], registry)
    assert "response_format" not in answer


async def test_a_persona_limited_to_some_tools_gets_only_their_names_in_the_enum(fake_ollama, make_settings):
    from kagentbot.persona.model import Persona

    fake_ollama.script(complete(), "Hello.")
    persona = Persona(name="timekeeper", display_name="Timekeeper", tools=("time_delta",))
    await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url}), tools=build_registry()), "Hi", persona=persona)
    assert sorted(branches(fake_ollama.chat_requests()[0]["format"])) == ["task_complete", "time_delta"]


async def test_ollama_that_refuses_format_is_asked_in_text_once_and_from_then_on(fake_ollama, make_settings):
    fake_ollama.accepts_format = False
    agent = agent_for(make_settings(llm={"host": fake_ollama.url}))
    fake_ollama.script(MESSI_TASK, complete(), "Messi is older, by 247 days.")
    events = await run_turn(agent)
    assert [e.ok for e in events if isinstance(e, ToolFinished)] == [True]  # the text parser read the plan
    assert final_answer(events) == "Messi is older, by 247 days."
    fake_ollama.script(complete(), "Hello.")
    await run_turn(agent, "Hi")  # same client: the refusal is remembered
    formats = [bool(body.get("format")) for body in fake_ollama.chat_requests()]
    assert formats == [True, False, False, False, False, False]


@pytest.mark.parametrize("status", [429, 401])
async def test_a_busy_or_unauthorised_answer_does_not_turn_the_schema_off(fake_ollama, make_settings, status):
    agent = agent_for(make_settings(llm={"host": fake_ollama.url}))
    fake_ollama.script(Scripted(status=status, error="try later"))
    await run_turn(agent, "Hi")  # fails: the server said no, not to the schema
    fake_ollama.script(complete(), "Hello.")
    await run_turn(agent, "Hi")
    assert [bool(body.get("format")) for body in fake_ollama.chat_requests()] == [True, True, False]


async def test_openai_server_that_refuses_response_format_falls_back_to_text(make_settings):
    async with FakeOpenAI() as server:
        server.accepts_response_format = False
        agent = agent_for(make_settings(llm={"backend": "openai", "host": server.url}))
        server.script(MESSI_TASK, complete(), "Messi is older, by 247 days.")
        events = await run_turn(agent)
        server.script(complete(), "Hello.")
        await run_turn(agent, "Hi")
    assert [e.tool for e in events if isinstance(e, StepPlanned)] == ["time_delta"]
    assert ["response_format" in body for body in server.requests] == [True, False, False, False, False, False]


@pytest.mark.parametrize("mode", ["kagent", "native"])
async def test_no_schema_when_switched_off_or_in_native_mode(fake_ollama, make_settings, mode):
    fake_ollama.script(complete() if mode == "kagent" else "Hello.", "Hello.")
    settings = make_settings(llm={"host": fake_ollama.url, "mode": mode, "constrained_planning": mode == "native"})
    await run_turn(agent_for(settings), "Hi")
    assert not any(body.get("format") for body in fake_ollama.chat_requests())


async def test_question_reaches_the_constrained_prompt(fake_ollama, make_settings):
    fake_ollama.script(complete(), "ok")
    await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    assert MESSI_Q in fake_ollama.prompts()[0]
