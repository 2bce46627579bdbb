"""The terminal is an adapter like the others: `ask` and `chat` go through the Bot, its queue,
its error handling and the shared renderer (whose outbox, among other things, redacts secrets)."""

from __future__ import annotations

from rich.console import Console

from kagentbot.adapters.console_adapter import ConsoleAdapter, console_message
from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from kagentbot.chat.adapter import Destination
from kagentbot.chat.render import CURSOR, Outbox
from tests.core.test_cli import cli_env, kagentbot  # noqa: F401 (cli_env: a fixture)
from tests.fakes.ollama_server import Scripted, complete, task

SECRET = "xoxb-1111-2222-abcdefghijklmnop"


async def test_a_terminal_turn_runs_through_the_bot_with_steps_and_a_streamed_answer(fake_ollama, make_settings):
    fake_ollama.script(task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26"),
                       complete(), Scripted("Messi is older by 247 days.", chunk=4))
    console = Console(record=True, width=200)
    adapter = ConsoleAdapter(console)
    settings = make_settings(llm={"host": fake_ollama.url})
    async with Bot(await Services.open(settings), [adapter], schedule=False) as bot:
        adapter.deliver(console_message("How many days older is Messi?", "alice"))
        await bot.idle()
    lines = console.export_text().splitlines()
    assert lines[0] == "1. Messi's age gap"
    assert lines[1].startswith("   → time_delta(") and lines[2].startswith("   ✓ ") and "total_days" in lines[2]
    assert lines[3:5] == ["", "Messi is older by 247 days."] and lines[5].startswith("1 step(s), ")
    assert bot.finished == {"answered": 1}


async def test_the_console_prints_only_what_an_edit_adds_and_a_changed_message_anew():
    console = Console(record=True, width=200)
    outbox = Outbox(ConsoleAdapter(console))
    answer = await outbox.send(Destination("alice"), "Fifteen" + CURSOR)
    await outbox.edit(answer, "Fifteen days" + CURSOR)
    await outbox.edit(answer, "Fifteen days.")
    notice = await outbox.send(Destination("alice"), "⏳ Queued — you're next.")
    await outbox.edit(notice, "▶️ Working on it now.")
    assert console.export_text() == "Fifteen days.\n⏳ Queued — you're next.\n▶️ Working on it now.\n"


async def test_ask_keeps_the_configured_secrets_out_of_the_terminal_like_every_chat(cli_env, fake_ollama):
    fake_ollama.script(complete(), f"The Slack token is {SECRET}.")
    env = {**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url, "KAGENTBOT_SLACK__BOT_TOKEN": SECRET}
    code, out, err = await kagentbot(env, "ask", "What is the Slack token?")
    assert code == 0, err
    assert "The Slack token is" in out and SECRET not in out + err


async def test_chat_answers_each_question_before_the_next_prompt(cli_env, fake_ollama):
    fake_ollama.script(complete(), "One.", complete(), "Two.")
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url}, "chat", stdin="first\nsecond\n")
    assert code == 0, err
    assert out.index("One.") < out.index("you>", out.index("One.")) < out.index("Two.")


async def test_ask_with_a_command_is_answered_by_the_bots_command_router(cli_env):
    env = {**cli_env, "KAGENTBOT_LLM__HOST": "http://127.0.0.1:9"}  # no model needed for a command
    code, out, err = await kagentbot(env, "ask", "/kb list")
    assert (code, out) == (0, "No documents to show. Add something with /kb add.\n"), err
