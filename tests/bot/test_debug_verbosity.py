"""At `render.verbosity = debug` a plan the bot could not use shows what the model wrote."""

from __future__ import annotations

import pytest

from tests.bot.chat_adapter import ChatAdapter
from tests.bot.test_bot_core import ask


@pytest.fixture
def running(fake_ollama, make_settings, start_bot):
    async def start(**settings):
        chat = ChatAdapter()
        settings["llm"] = {"host": fake_ollama.url}
        return await start_bot(make_settings(**settings), [chat]), chat

    return start


@pytest.mark.parametrize(("verbosity", "shown"), [("debug", True), ("thread", False)])
async def test_a_rejected_plans_text_shows_in_its_step_only_at_debug(running, fake_ollama, verbosity, shown):
    fake_ollama.script("Sure! I would be happy to help you with that question.", "Hello there.")
    bot, chat = await running(render={"verbosity": verbosity})
    chat.deliver(ask("Say hello"))
    await bot.idle()
    step, answer = chat.posted
    assert "holds no JSON task" in step.final and answer.final == "Hello there."
    assert ("the model wrote: Sure! I would be happy to help" in step.final) is shown
