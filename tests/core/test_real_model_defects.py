"""What a real small model on a real server showed (llama.cpp's llama-server with a 270M model):
defaults that cannot finish a turn on a CPU, echoes and placeholders taken for plans, tool errors
that do not teach, unreadable errors from servers that are not Ollama, a doctor blind to
llama.cpp, nothing of the model's words visible, and the bot's own note remembered as the model's."""

from __future__ import annotations

import json
import logging
import re

import pytest
from aiohttp import web
from rich.console import Console

from kagentbot.adapters.console_adapter import ConsoleAdapter
from kagentbot.agent import prompts
from kagentbot.agent.events import AnswerDone, Failed, PlanRejected, StepPlanned, ToolFinished
from kagentbot.agent.parsing import PlanParseError, parse_plan
from kagentbot.cli.doctor import check_llm
from kagentbot.chat.adapter import Destination
from kagentbot.chat.render import Outbox, TurnRenderer
from kagentbot.config.settings import Settings
from kagentbot.memory.types import ConversationBuffer
from kagentbot.persona.model import DEFAULT_PERSONA
from kagentbot.tools.catalog import build_registry
from tests.core.test_agent_loop import MESSI_Q, NOW, agent_for, failing_turn, final_answer, run_turn
from tests.fakes.ollama_server import CREATED_AT, Scripted, complete, task
from tests.fakes.openai_server import FakeOpenAI

# -- 1. defaults that fit the work -------------------------------------------------------------


async def test_default_planning_cap_is_a_few_hundred_tokens_at_the_wire(fake_ollama, make_settings):
    assert Settings().llm.plan_max_tokens <= 512
    fake_ollama.script(complete(), "ok")
    await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    assert fake_ollama.chat_requests()[0]["options"]["num_predict"] <= 512


async def test_openai_client_does_not_retry_behind_the_timeout_and_says_what_it_spent(make_settings):
    async with FakeOpenAI() as server:
        server.script(Scripted(complete(), delay=1.5), Scripted(complete(), delay=1.5))
        failed = await failing_turn(make_settings(llm={"backend": "openai", "host": server.url, "timeout": 0.4}))
        assert len(server.requests) == 1  # one call, not one plus a hidden retry
    assert "did not answer within 0.4 s" in failed.message and re.search(r"gave up after \d+ s", failed.message)


async def test_ollama_timeout_says_what_it_spent(fake_ollama, make_settings):
    fake_ollama.script(Scripted(complete(), delay=2))
    failed = await failing_turn(make_settings(llm={"host": fake_ollama.url, "timeout": 0.4}))
    assert re.search(r"gave up after \d+ s", failed.message)


# -- 2. echoes are not plans -------------------------------------------------------------------


def planning_prompt_text() -> str:
    specs = [t.function_spec() for t in build_registry().tools()]
    return prompts.planning_prompt(DEFAULT_PERSONA, specs, NOW, "", MESSI_Q, 5, "en").render(6000)


def test_an_echoed_prompt_up_to_the_command_list_is_not_a_plan():
    prompt = planning_prompt_text()
    echo = prompt[: prompt.index("Current date and time")]  # the model repeats its prompt as far as the commands
    with pytest.raises(PlanParseError, match="repeated the prompt's command list"):
        parse_plan(echo)


def test_a_command_line_echoed_alone_is_not_a_plan():
    spec = next(t for t in build_registry().tools() if t.name == "time_delta").function_spec()
    with pytest.raises(PlanParseError):
        parse_plan("1: " + json.dumps(spec))


def test_schema_shaped_arguments_are_not_arguments():
    schema = {"type": "object", "properties": {"start_time": {"type": "string"}}, "required": ["start_time"]}
    with pytest.raises(PlanParseError, match="argument schema"):
        parse_plan(json.dumps({"task_name": "age", "command": {"name": "time_delta", "args": schema}}))


def test_an_echo_followed_by_a_real_task_gives_the_task():
    prompt = planning_prompt_text()
    reply = prompt[prompt.index("Commands:"): prompt.index("Current date")] + task("t", "web_search", text="Messi")
    assert parse_plan(reply).tool == "web_search"


# -- 3. placeholders and format masks ----------------------------------------------------------


@pytest.mark.parametrize("reply", [
    task("finish", "task_complete", reason="<why>"),
    task("age", "time_delta", start_time="<start time>", end_time="2020-01-01"),
    task("age", "time_delta", start_time="yyyy-MM-dd", end_time="yyyy-MM-dd HH:mm:ss"),
    task("weather", "get_weather_info", location="Paris", start_date="YYYY-MM-DD"),
])
def test_placeholders_and_copied_masks_are_not_plans(reply):
    with pytest.raises(PlanParseError, match="placeholder|format mask"):
        parse_plan(reply)


def test_a_real_command_under_a_placeholder_task_name_keeps_the_command_not_the_placeholder():
    plan = parse_plan(task("<what this task does>", "web_search", text="Messi"))
    assert (plan.tool, plan.args) == ("web_search", {"text": "Messi"}) and "<" not in plan.task_name


def test_argument_descriptions_show_example_values_not_masks():
    masks = re.compile(r"yyyy|YYYY|MM-dd|HH:mm|mm:ss")
    for spec in build_registry().tools():
        assert not masks.search(json.dumps(spec.function_spec())), spec.name


async def test_a_placeholder_stop_is_a_visible_rejection(fake_ollama, make_settings):
    fake_ollama.script(task("finish", "task_complete", reason="<why>"), "Hello.")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})), "Hi")
    (rejected,) = [e for e in events if isinstance(e, PlanRejected)]
    assert "<why>" in rejected.reason and "<why>" in rejected.raw


# -- 4. tool errors that teach ------------------------------------------------------------------


async def test_the_model_is_told_which_argument_names_were_wrong(fake_ollama, make_settings):
    fake_ollama.script(task("age", "time_delta", start="1987-06-24", end_time="1988-02-26"), complete(), "ok")
    events = await run_turn(agent_for(make_settings(llm={"host": fake_ollama.url})))
    (finished,) = [e for e in events if isinstance(e, ToolFinished)]
    assert not finished.ok
    assert "time_delta does not take 'start'; it takes start_time: str, end_time: str" in finished.result
    assert "does not take 'start'" in fake_ollama.prompts()[1]  # the next planning prompt carries it


# -- 5. servers that are not quite Ollama -------------------------------------------------------


async def test_malformed_stream_on_the_ollama_backend_is_a_clear_message_without_traceback(
    fake_ollama, make_settings, caplog
):
    lines = [json.dumps({"model": "kagentlm", "created_at": CREATED_AT, "response": "Hi", "done": False}),
             json.dumps({"model": "kagentlm", "created_at": CREATED_AT, "done": True})]
    fake_ollama.script(complete(), Scripted(raw_lines=lines))
    with caplog.at_level(logging.ERROR):
        failed = await failing_turn(make_settings(llm={"host": fake_ollama.url}))
    assert "not in Ollama's format" in failed.message and "KAGENTBOT_LLM__BACKEND=openai" in failed.message
    assert "something went wrong" not in failed.message
    assert not [r for r in caplog.records if r.exc_info]


async def test_doctor_on_a_server_that_is_not_ollama_names_no_empty_model(make_settings):
    async with FakeOpenAI() as server:
        host = server.url.removesuffix("/v1")
        findings = await check_llm(make_settings(llm={"host": host}))
    (server_finding,) = findings
    assert server_finding.level == "fail" and "is not an Ollama server" in server_finding.message
    assert "KAGENTBOT_LLM__BACKEND=openai" in server_finding.message
    assert "ollama pull `" not in server_finding.message and "ollama pull  " not in server_finding.message
    assert "''" not in server_finding.message


HTML_PAGE = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{font:sans}</style></head>"
             "<body><h1>Bad Gateway</h1>" + "<p>The proxy could not reach the upstream server.</p>" * 40
             + "</body></html>")


@pytest.fixture
async def html_server():
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=HTML_PAGE, status=502, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_an_html_error_page_becomes_one_short_line(html_server, make_settings, backend):
    failed = await failing_turn(make_settings(llm={"host": html_server, "backend": backend}))
    assert "502" in failed.message and "Bad Gateway" in failed.message
    assert "<" not in failed.message and "upstream server" not in failed.message and len(failed.message) < 400


# -- 6. doctor reads llama.cpp ------------------------------------------------------------------


async def test_doctor_reads_llama_cpp_context_and_template_tool_support(make_settings):
    async with FakeOpenAI(llama_cpp=True, n_ctx=2048, template_tools=False) as server:
        findings = await check_llm(make_settings(llm={"backend": "openai", "host": server.url, "mode": "native"}))
    by_topic = {f.topic: f for f in findings}
    assert by_topic["context length"].level == "warn" and "2048" in by_topic["context length"].message
    assert "KAGENTBOT_LLM__NUM_CTX=2048" in by_topic["context length"].fix
    assert by_topic["tool calling"].level == "fail" and "KAGENTBOT_LLM__MODE=kagent" in by_topic["tool calling"].fix


async def test_doctor_sees_a_llama_cpp_template_with_tools(make_settings):
    async with FakeOpenAI(llama_cpp=True, n_ctx=8192, template_tools=True) as server:
        findings = await check_llm(make_settings(llm={"backend": "openai", "host": server.url, "mode": "native"}))
    by_topic = {f.topic: f for f in findings}
    assert (by_topic["tool calling"].level, by_topic["context length"].level) == ("ok", "ok")


async def test_doctor_still_reads_vllm_max_model_len(make_settings):
    async with FakeOpenAI(max_model_len=4096) as server:
        findings = await check_llm(make_settings(llm={"backend": "openai", "host": server.url}))
    assert "4096" in {f.topic: f for f in findings}["context length"].message


# -- 7. what the model said is visible ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_verbose_log_has_every_raw_reply_redacted_and_truncated(fake_ollama, make_settings, caplog, backend):
    secret = "xoxb-1234-5678-abcdefghijkl"
    async with FakeOpenAI() as server:
        fake = fake_ollama if backend == "ollama" else server
        fake.script("I think the plan is " + secret + " " + "blah " * 400, "The answer, streamed.")
        with caplog.at_level(logging.DEBUG, logger="kagentbot.agent.llm"):
            await run_turn(agent_for(make_settings(llm={"host": fake.url, "backend": backend})), "Hi")
    replies = [r.getMessage() for r in caplog.records if r.name == "kagentbot.agent.llm"]
    assert any("I think the plan is [redacted]" in m and "more chars]" in m for m in replies)
    assert any("The answer, streamed." in m for m in replies)
    assert not any(secret in m for m in replies)


def test_a_rejected_plans_text_is_shown_under_its_step_when_verbose():
    async def events():
        yield PlanRejected(1, "the model's plan holds no JSON task; concluding with what I have", "Sure! I will help.")
        yield AnswerDone("ok", 0, 0.1)

    import asyncio

    for verbosity, expected in (("debug", True), ("thread", False)):
        console = Console(record=True, width=200)
        renderer = TurnRenderer(Outbox(ConsoleAdapter(console)), Destination("alice"), verbosity)
        asyncio.run(renderer.render(events()))
        assert ("the model wrote: Sure! I will help." in console.export_text()) is expected


# -- 8. the cut-off note is not the model's words --------------------------------------------------


@pytest.mark.parametrize("mode", ["kagent", "native"])
async def test_the_cut_off_note_is_shown_but_not_remembered(fake_ollama, make_settings, mode):
    memory = ConversationBuffer()
    long = "Messi is older by 247 days. " + "Really. " * 80
    fake_ollama.script(*([complete()] if mode == "kagent" else []), long, complete(), "Fine.")
    settings = make_settings(llm={"host": fake_ollama.url, "mode": mode, "answer_max_tokens": 32})
    agent = agent_for(settings, memory)
    events = await run_turn(agent)
    assert "(cut off" in final_answer(events)
    (turn,) = next(iter(memory.turns.values()))
    assert turn.answer.startswith("Messi is older by 247 days.") and "cut off" not in turn.answer
    await run_turn(agent, "And?")
    assert all("cut off" not in body["messages"][-1]["content"] for body in fake_ollama.chat_requests()[-2:])
    assert [e for e in events if isinstance(e, (Failed, StepPlanned))] == []
