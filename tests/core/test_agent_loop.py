"""The agent loop end to end: the real `ollama` (and `openai`) client against fake servers."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from kagentbot.agent.events import AnswerDelta, AnswerDone, Failed, PlanRejected, StepPlanned, ToolFinished
from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import Agent, TurnRequest, collect, final_answer
from kagentbot.memory.types import Audience, ConversationBuffer, Passage, Recall
from kagentbot.persona.model import Persona
from kagentbot.tools.catalog import build_registry
from kagentbot.tools.registry import ToolRegistry, tool
from kagentbot.tools.timetools import TIME_TOOLS
from tests.fakes.ollama_server import Scripted, complete, task
from tests.fakes.openai_server import FakeOpenAI

MESSI_Q = "How many days older is Messi than Antonela Roccuzzo?"
MESSI_TASK = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
ME = Audience("user:console:alice")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)


def agent_for(settings, memory=None, tools: ToolRegistry | None = None) -> Agent:
    return Agent(settings, make_client(settings.llm), tools or ToolRegistry(TIME_TOOLS), memory)


async def run_turn(agent: Agent, question: str = MESSI_Q, **request) -> list:
    request.setdefault("now", NOW)
    return await collect(agent.run(TurnRequest(question, ME, **request)))


async def test_seed_showcase_in_kagent_mode(fake_ollama, make_settings):
    fake_ollama.script(MESSI_TASK, complete(), "Messi is older, by 247 days.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    planned = [e for e in events if isinstance(e, StepPlanned)]
    assert [(p.tool, p.args) for p in planned] == [("time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"})]
    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert finished.ok and json.loads(finished.result)["total_days"] == 247
    assert "247" in final_answer(events)
    planning, second, concluding = fake_ollama.chat_requests()
    assert planning["messages"] == [{"role": "user", "content": planning["messages"][0]["content"]}]  # one user message
    assert '\\"total_days\\":247' in second["messages"][0]["content"]  # the finished task, as JSON in memory
    assert "concluding stage" in concluding["messages"][0]["content"] and concluding["stream"] is True
    assert planning["options"] == {"temperature": 0.1, "top_p": 0.75, "top_k": 40, "num_ctx": 8192, "num_predict": 384}
    assert concluding["options"]["num_predict"] == 4096


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_output_caps_end_a_runaway_plan_and_mark_a_cut_answer(fake_ollama, make_settings, backend):
    """A model repeating itself stops at the cap: the plan's JSON is repaired from what came, and
    an answer cut at llm.answer_max_tokens says so instead of passing for complete."""
    runaway_plan = MESSI_TASK[:-1] + ', "thoughts": "' + "and again " * 500 + '"}'
    rambling = "Messi is older by 247 days. " + "Really. " * 100
    async with FakeOpenAI() as server:
        fake = fake_ollama if backend == "ollama" else server
        fake.script(runaway_plan, complete(), rambling)
        settings = make_settings(llm={"backend": backend, "host": fake.url, "plan_max_tokens": 64,
                                      "answer_max_tokens": 40})
        events = await run_turn(agent_for(settings))
    assert [e.tool for e in events if isinstance(e, StepPlanned)] == ["time_delta"]
    answer = final_answer(events)
    assert answer.startswith("Messi is older by 247 days. Really.")
    assert answer.endswith("(cut off: the answer reached its length limit, llm.answer_max_tokens)")
    assert answer.count("Really.") == 34 and "\x00" not in answer
    requests = fake_ollama.chat_requests() if backend == "ollama" else server.requests
    caps = [r["options"]["num_predict"] if backend == "ollama" else r["max_tokens"] for r in requests]
    assert caps == [64, 64, 40]


async def test_an_answer_within_its_cap_has_no_note(fake_ollama, make_settings):
    fake_ollama.script(complete(), "Fifteen days.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url, "answer_max_tokens": 32})), "Leave?")
    assert final_answer(events) == "Fifteen days."


async def test_seed_showcase_in_native_mode(fake_ollama, make_settings):
    fake_ollama.script(
        Scripted(tool_calls=[{"name": "time_delta", "arguments": {"start_time": "1987-06-24", "end_time": "1988-02-26"}}]),
        Scripted("Messi is older by 247 days."),
    )
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url, "mode": "native"})))
    assert "247" in final_answer(events)
    first, second = fake_ollama.chat_requests()
    assert [t["function"]["name"] for t in first["tools"]] == [t.__name__ for t in TIME_TOOLS]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and '"total_days":247' in tool_message["content"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "time_delta"


async def test_native_mode_honours_max_steps_then_concludes_from_the_tasks(fake_ollama, make_settings):
    def reply(body):
        if body.get("tools"):  # a planning call: ask for one more year's solar terms each time
            year = 2020 + sum(1 for m in body["messages"] if m["role"] == "tool")
            return Scripted(tool_calls=[{"name": "get_solar_terms_info", "arguments": {"year": year}}])
        return Scripted("Here are the terms.")

    fake_ollama.responder = reply
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 2})
    events = await run_turn(agent_for(settings), "List the solar terms of 2020 and 2021")
    assert [e.args for e in events if isinstance(e, StepPlanned)] == [{"year": 2020}, {"year": 2021}]
    assert final_answer(events) == "Here are the terms."
    concluding = fake_ollama.chat_requests()[-1]
    assert not concluding.get("tools") and concluding["stream"] is True
    assert "concluding stage" in concluding["messages"][0]["content"] and "2021-03-20" in concluding["messages"][0]["content"]


async def test_native_mode_repeat_is_rejected(fake_ollama, make_settings):
    call = Scripted(tool_calls=[{"name": "time_delta", "arguments": {"start_time": "1987-06-24", "end_time": "1988-02-26"}}])
    fake_ollama.script(call, call, "247 days.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url, "mode": "native"})))
    assert len([e for e in events if isinstance(e, ToolFinished)]) == 1
    assert "repeat step 1" in next(e for e in events if isinstance(e, PlanRejected)).reason
    assert final_answer(events) == "247 days."


async def test_native_mode_in_chinese(fake_ollama, make_settings):
    fake_ollama.script("梅西比安东内拉大247天。")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url, "mode": "native"})), "梅西比安东内拉大多少天？")
    system, user = fake_ollama.chat_requests()[0]["messages"]
    assert system["role"] == "system" and "农历" in system["content"] and "缺少事实时调用工具" in system["content"]
    assert user == {"role": "user", "content": "梅西比安东内拉大多少天？"}
    assert final_answer(events) == "梅西比安东内拉大247天。"


@pytest.mark.parametrize("mode", ["kagent", "native"])
async def test_seed_showcase_through_the_openai_compatible_backend(make_settings, mode):
    async with FakeOpenAI() as server:
        if mode == "kagent":
            server.script(MESSI_TASK, complete(), "Messi is older by 247 days.")
        else:
            server.script(
                Scripted(tool_calls=[{"name": "time_delta", "arguments": {"start_time": "1987-06-24", "end_time": "1988-02-26"}}]),
                "Messi is older by 247 days.",
            )
        settings = make_settings(llm={"backend": "openai", "host": server.url, "mode": mode})
        events = await run_turn(agent_for(settings))
        assert "247" in final_answer(events)
        assert any(e.ok and "247" in e.result for e in events if isinstance(e, ToolFinished))
        assert server.requests[0]["temperature"] == 0.1 and server.requests[0]["top_k"] == 40
        if mode == "native":  # the fake refuses tool messages that real servers refuse (ids, string arguments)
            assert [t["function"]["name"] for t in server.requests[0]["tools"]] == [t.__name__ for t in TIME_TOOLS]
            call, result = server.requests[1]["messages"][-2:]
            assert json.loads(call["tool_calls"][0]["function"]["arguments"])["end_time"] == "1988-02-26"
            assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
            assert '"total_days":247' in result["content"]


async def test_chinese_question_gets_the_chinese_prompt_with_the_lunar_date(fake_ollama, make_settings):
    fake_ollama.script(complete(), "梅西比安东内拉大247天。")
    await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})), "梅西比安东内拉大多少天？")
    prompt = fake_ollama.prompts()[0]
    assert "任务规划阶段" in prompt and "农历" in prompt and "GOAL: 梅西比安东内拉大多少天？" in prompt
    assert "新任务" in prompt


@pytest.mark.parametrize("mode", ["kagent", "native"])
async def test_a_reasoning_models_thinking_is_not_shown(fake_ollama, make_settings, mode):
    thinking = "<think>\nThe user asks about {birthdays}; maybe search first?\n</think>\n\n"
    plan = task("gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
    if mode == "kagent":
        fake_ollama.script(thinking + plan, thinking + complete(), Scripted(thinking + "Messi is older by 247 days.", chunk=3))
    else:
        fake_ollama.script(Scripted(thinking + "Messi is older by 247 days."))
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url, "mode": mode})))
    answer = final_answer(events)
    assert answer == "Messi is older by 247 days."
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == answer


async def test_no_task_path_asks_directly_with_the_conversation(fake_ollama, make_settings):
    memory = ConversationBuffer()
    agent = agent_for(make_settings(llm={"host": fake_ollama.url}), memory)
    fake_ollama.script(complete("just greet"), "Hello Alice!", complete("nothing needed"), "You are Alice.")
    await run_turn(agent, "Hi, I am Alice")
    events = await run_turn(agent, "What is my name?")
    assert final_answer(events) == "You are Alice."
    direct = fake_ollama.prompts()[-1]
    assert "User: Hi, I am Alice\nAssistant: Hello Alice!" in direct
    assert "Commands:" not in direct and direct.rstrip().endswith("User: What is my name?\nAssistant:")


@pytest.mark.parametrize("stop", ["task_complete", "do_nothing"])
async def test_stop_commands_end_planning(fake_ollama, make_settings, stop):
    fake_ollama.script(task("stop", stop), "Answer.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    assert not [e for e in events if isinstance(e, StepPlanned)] and final_answer(events) == "Answer."


async def test_unknown_tool_is_rejected_then_the_agent_concludes(fake_ollama, make_settings):
    fake_ollama.script(task("hack", "rm_rf", path="/"), "I could not do that.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    (rejected,) = [e for e in events if isinstance(e, PlanRejected)]
    assert "unknown tool 'rm_rf'" in rejected.reason
    assert final_answer(events) == "I could not do that."


async def test_unparseable_plan_is_a_visible_step_not_a_crash(fake_ollama, make_settings):
    fake_ollama.script("I think I should search the web, maybe?", "Best effort answer.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    (rejected,) = [e for e in events if isinstance(e, PlanRejected)]
    assert "no JSON task" in rejected.reason and rejected.raw.startswith("I think")
    assert final_answer(events) == "Best effort answer."


async def test_repeated_identical_task_is_detected(fake_ollama, make_settings):
    fake_ollama.script(MESSI_TASK, MESSI_TASK, "247 days.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    assert len([e for e in events if isinstance(e, ToolFinished)]) == 1
    (rejected,) = [e for e in events if isinstance(e, PlanRejected)]
    assert "repeat step 1" in rejected.reason


async def test_max_steps_is_honoured(fake_ollama, make_settings):
    fake_ollama.responder = lambda body: (
        Scripted(task("again", "get_solar_terms_info", year=2000 + len(fake_ollama.requests)))
        if "Commands:" in body["messages"][0]["content"] else Scripted("done")
    )
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url}, agent={"max_steps": 3})))
    assert len([e for e in events if isinstance(e, StepPlanned)]) == 3
    assert isinstance(events[-1], AnswerDone) and events[-1].steps == 3


async def test_a_slow_tool_times_out_and_the_loop_goes_on(fake_ollama, make_settings):
    @tool
    async def slow_lookup(text: str) -> str:
        """Look something up slowly.

        Args:
            text: what to look up
        """
        await asyncio.sleep(5)
        return "never"

    fake_ollama.script(task("slow", "slow_lookup", text="x"), MESSI_TASK, complete(), "247 days.")
    settings = make_settings(llm={"host": fake_ollama.url}, agent={"tool_timeout": 0.2})
    events = await run_turn(agent_for(settings, tools=ToolRegistry([slow_lookup, *TIME_TOOLS])))
    first, second = [e for e in events if isinstance(e, ToolFinished)]
    assert not first.ok and "longer than 0.2 s" in first.result
    assert second.ok and final_answer(events) == "247 days."


async def test_a_crashing_tool_is_one_failed_step_and_the_model_sees_why(fake_ollama, make_settings):
    @tool
    async def flaky_lookup(text: str) -> str:
        """Look something up with a bug.

        Args:
            text: what to look up
        """
        raise RuntimeError("index corrupted")

    fake_ollama.script(task("look", "flaky_lookup", text="x"), MESSI_TASK, complete(), "247 days.")
    settings = make_settings(llm={"host": fake_ollama.url})
    events = await run_turn(agent_for(settings, tools=ToolRegistry([flaky_lookup, *TIME_TOOLS])))
    assert not [e for e in events if isinstance(e, Failed)]
    first, second = [e for e in events if isinstance(e, ToolFinished)]
    assert not first.ok and second.ok and final_answer(events) == "247 days."
    assert "failed unexpectedly (RuntimeError: index corrupted)" in fake_ollama.prompts()[1]


async def test_prompt_budget_trims_memory_in_the_middle_never_rules_or_goal(fake_ollama, make_settings):
    class HugeMemory(ConversationBuffer):
        async def recall(self, audience, query, *, turns, limit):
            passages = tuple(Passage(str(i), f"filler passage {i} " * 60, "doc", "global") for i in range(200))
            return Recall(knowledge=passages)

    fake_ollama.script(complete(), "ok")
    settings = make_settings(llm={"host": fake_ollama.url}, agent={"prompt_budget_tokens": 2000})
    await run_turn(agent_for(settings, HugeMemory()))
    prompt = fake_ollama.prompts()[0]
    assert len(prompt) < 2000 * 4 * 1.2
    assert "older memory trimmed" in prompt and "filler passage 0 " in prompt
    assert "Rules:" in prompt and "Commands:" in prompt and f"GOAL: {MESSI_Q}" in prompt
    assert prompt.rstrip().endswith("A new Task:")


async def test_persona_reaches_planning_and_concluding_prompts_and_limits_tools(fake_ollama, make_settings):
    persona = Persona(name="pirate", display_name="Captain Kag", bio="A pirate who counts days.",
                      instructions="Speak like a pirate.", tools=("time_delta",), model="qwen2.5", options={"temperature": 0.7})
    fake_ollama.script(MESSI_TASK, complete(), "Arr, 247 days.")
    await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})), persona=persona)
    planning, _, concluding = fake_ollama.chat_requests()
    for request in (planning, concluding):
        text = request["messages"][0]["content"]
        assert text.startswith("You are Captain Kag.") and "Speak like a pirate." in text
        assert request["model"] == "qwen2.5" and request["options"]["temperature"] == 0.7
    commands = planning["messages"][0]["content"].split("Commands:")[1].split("Current date")[0]
    assert '"name": "time_delta"' in commands and "get_calendar_info" not in commands


async def test_planning_prompt_shape(fake_ollama, make_settings):
    fake_ollama.script(complete(), "ok")
    await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    prompt = fake_ollama.prompts()[0]
    order = ["You are KAgent.", "task-planning stage", "Rules:", "Commands:\n1: {", "Current date and time: 2026-11-25",
             "Memory:", f"GOAL: {MESSI_Q}", "A new Task:"]
    positions = [prompt.index(marker) for marker in order]
    assert positions == sorted(positions)
    rules = prompt.split("Rules:")[1].split("Commands:")[0]
    assert [line.split(".")[0] for line in rules.strip().splitlines()] == [str(i) for i in range(1, 10)]
    lines = prompt.split("Commands:\n")[1].split("\n\n")[0].splitlines()
    specs = [json.loads(line.split(": ", 1)[1]) for line in lines]
    assert [s["name"] for s in specs][-1] == "task_complete"
    assert all({"name", "description", "parameters"} <= set(s) for s in specs)


async def test_conversation_is_kept_across_turns(fake_ollama, make_settings):
    memory = ConversationBuffer()
    agent = agent_for(make_settings(llm={"host": fake_ollama.url}), memory)
    fake_ollama.script(MESSI_TASK, complete(), "247 days.", complete(), "Yes.")
    await run_turn(agent)
    await run_turn(agent, "Are you sure?")
    second_turn_prompt = fake_ollama.prompts()[3]
    assert f"User: {MESSI_Q}\nAssistant: 247 days." in second_turn_prompt


async def test_default_registry_tools_are_offered(fake_ollama, make_settings):
    settings = make_settings(llm={"host": fake_ollama.url})
    registry = build_registry(settings)
    assert {"web_search", "browse_website", "encyclopedia", "get_weather_info", "time_delta"} <= set(registry.names())


# -- clear failure ------------------------------------------------------------------------


async def failing_turn(settings, memory=None) -> Failed:
    started = asyncio.get_running_loop().time()
    events = await run_turn(agent_for(settings, memory))
    assert asyncio.get_running_loop().time() - started < 10
    (failed,) = [e for e in events if isinstance(e, Failed)]
    assert events[-1] is failed and "Traceback" not in failed.message
    return failed


async def test_unreachable_ollama(make_settings):
    memory = ConversationBuffer()
    failed = await failing_turn(make_settings(llm={"host": "http://127.0.0.1:9"}), memory)
    assert "cannot reach the model server (Ollama)" in failed.message and "ollama serve" in failed.message
    assert failed.retryable and memory.turns == {}


async def test_missing_model(fake_ollama, make_settings):
    failed = await failing_turn(make_settings(llm={"host": fake_ollama.url, "model": "nope"}))
    assert "'nope' is not on the model server (Ollama)" in failed.message and "ollama pull nope" in failed.message


async def test_server_error(fake_ollama, make_settings):
    fake_ollama.script(Scripted(status=500, error="out of memory"))
    failed = await failing_turn(make_settings(llm={"host": fake_ollama.url}))
    assert "the model server (Ollama)" in failed.message and "127.0.0.1" not in failed.message
    assert "answered 500 for the model 'kagentlm': out of memory" in failed.message


async def test_timeout(fake_ollama, make_settings):
    fake_ollama.script(Scripted(MESSI_TASK, delay=3))
    failed = await failing_turn(make_settings(llm={"host": fake_ollama.url, "timeout": 0.5}))
    assert "did not answer within 0.5 s" in failed.message and failed.retryable


async def test_stream_cut_midway(fake_ollama, make_settings):
    memory = ConversationBuffer()
    fake_ollama.script(complete(), Scripted("A long answer that will be cut off " * 20, cut_stream=True))
    failed = await failing_turn(make_settings(llm={"host": fake_ollama.url}), memory)
    assert "the connection to the model server (Ollama) broke off while 'kagentlm' was answering" in failed.message
    assert "ollama serve" not in failed.message  # it was reached: starting it is not the fix
    assert failed.retryable and memory.turns == {}


async def test_failures_through_the_openai_compatible_backend(make_settings):
    memory = ConversationBuffer()
    failed = await failing_turn(make_settings(llm={"backend": "openai", "host": "http://127.0.0.1:9"}), memory)
    assert "cannot reach the model server (OpenAI-compatible)" in failed.message
    async with FakeOpenAI() as server:
        failed = await failing_turn(make_settings(llm={"backend": "openai", "host": server.url, "model": "nope"}), memory)
        assert "the model server does not serve the model 'nope'" in failed.message
        server.script(Scripted(status=500, error="CUDA out of memory"))
        before = len(server.requests)
        failed = await failing_turn(make_settings(llm={"backend": "openai", "host": server.url}), memory)
        assert "answered 500 for the model 'kagentlm': CUDA out of memory" in failed.message
        assert len(server.requests) == before + 1  # asked once: no hidden retry
        server.script(complete(), Scripted("An answer that stops half way. " * 20, cut_stream=True))
        failed = await failing_turn(make_settings(llm={"backend": "openai", "host": server.url}), memory)
        assert "the connection to the model server broke off while 'kagentlm'" in failed.message
        assert failed.retryable
    assert memory.turns == {}
