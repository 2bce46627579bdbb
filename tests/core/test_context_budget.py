"""The prompt budget follows the server's context where the server reports it (Ollama's show
endpoint with llm.num_ctx, llama.cpp's n_ctx, vLLM's max_model_len), read once per model; where
it cannot be read, agent.prompt_budget_tokens stands. Measured at the fake servers' wire."""

from __future__ import annotations

import contextlib

import pytest

from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import Agent, TurnRequest, collect, final_answer
from kagentbot.agent.prompts import estimate_tokens
from kagentbot.memory.types import Audience, ConversationBuffer
from kagentbot.tools.registry import ToolRegistry
from kagentbot.tools.timetools import TIME_TOOLS
from tests.fakes.ollama_server import FakeModel, FakeOllama, Scripted
from tests.fakes.openai_server import FakeOpenAI

ME = Audience("user:console:alice")
SMALL = 2048  # the server's context, in tokens
ANSWER_CAP = 4096  # llm.answer_max_tokens' default


@contextlib.asynccontextmanager
async def small_server(kind: str, make_settings, context: int = SMALL):
    if kind == "ollama":
        async with FakeOllama([FakeModel("small", context_length=context, capabilities=("completion", "tools"))]) as s:
            yield s, make_settings(llm={"host": s.url, "mode": "native", "model": "small"})
        return
    server = FakeOpenAI(("small",), max_model_len=context, llama_cpp=kind == "llama.cpp", n_ctx=context,
                        template_tools=True)
    async with server:
        yield server, make_settings(llm={"backend": "openai", "host": server.url, "mode": "native", "model": "small"})


def bodies(server) -> list[dict]:
    return server.chat_requests() if isinstance(server, FakeOllama) else server.requests


def lookups(server) -> int:
    if isinstance(server, FakeOllama):
        return sum(path == "/api/show" for path, _ in server.requests)
    return server.model_lists


def prompt_tokens(body: dict) -> int:
    return sum(estimate_tokens(m.get("content") or "") for m in body["messages"])


@pytest.mark.parametrize("kind", ["ollama", "llama.cpp", "vllm"])
async def test_a_small_server_context_bounds_every_prompt_and_is_read_once(kind, make_settings):
    async with small_server(kind, make_settings) as (server, settings):
        memory = ConversationBuffer()
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), memory)
        server.script("Noted.")
        await collect(agent.run(TurnRequest("Here is my whole log: " + "disk full, retrying. " * 4762, ME)))
        first = len(bodies(server))
        server.script("It kept filling the disk.")
        events = await collect(agent.run(TurnRequest("What did my log say?", ME)))
        assert final_answer(events) == "It kept filling the disk."
        (body,) = bodies(server)[first:]
        used = prompt_tokens(body)
        print(f"\n{kind}: a {SMALL}-token context: the prompt after a 100,000-character message is {used} tokens")
        # room for the answer is kept: a quarter of the context, as the answer cap is larger
        assert used <= SMALL * 0.9 - SMALL // 4 + 50
        assert any("trimmed to fit" in m["content"] for m in body["messages"])
        assert lookups(server) == 1  # once per model, not per turn


async def test_a_large_context_keeps_the_configured_budget(make_settings):
    async with small_server("vllm", make_settings, context=131072) as (server, settings):
        memory = ConversationBuffer()
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), memory)
        server.script("Noted.", "It kept filling the disk.")
        await collect(agent.run(TurnRequest("Here is my whole log: " + "disk full, retrying. " * 4762, ME)))
        await collect(agent.run(TurnRequest("What did my log say?", ME)))
        used = prompt_tokens(server.requests[-1])
        assert settings.agent.prompt_budget_tokens - 300 <= used <= settings.agent.prompt_budget_tokens + 50


async def test_a_context_that_cannot_be_read_keeps_the_configured_budget(make_settings):
    """A server whose model list fails (a proxy that only passes chat completions)."""
    async with small_server("vllm", make_settings) as (server, settings):
        server.models_fail = True
        memory = ConversationBuffer()
        agent = Agent(settings, make_client(settings.llm), ToolRegistry(TIME_TOOLS), memory)
        server.script("Noted.", "It kept filling the disk.")
        await collect(agent.run(TurnRequest("Here is my whole log: " + "disk full, retrying. " * 4762, ME)))
        events = await collect(agent.run(TurnRequest("What did my log say?", ME)))
        assert final_answer(events) == "It kept filling the disk."
        used = prompt_tokens(server.requests[-1])
        assert settings.agent.prompt_budget_tokens - 300 <= used <= settings.agent.prompt_budget_tokens + 50
