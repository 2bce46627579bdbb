"""Bounded output at Telegram's wire (the real python-telegram-bot against the fake Bot API, the
real ollama client against the fake Ollama): a model error of kilobytes reaches the user as a
short line, and an answer from a server that ignores its token cap ends after a few messages."""

from __future__ import annotations

import logging

import pytest

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from kagentbot.agent.loop import CUT_NOTE
from tests.fakes.ollama_server import Scripted, complete
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI
from tests.telegram.test_telegram_adapter import final_text, replies_to, sends_replying_to

# What a crashed model runner sends back: one long line, then a trace (7.7 KB in all)
RUNNER_CRASH = ("llama runner process has terminated: error loading model: "
                + "".join(f"tensor 'blk.{n}.attn_q.weight' has wrong shape; " for n in range(90))
                + "\n" + "".join(f"  at ggml_backend_sched_graph_compute (frame {n})\n" for n in range(70)))


@pytest.fixture
async def api():
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as server:
        yield server


@pytest.fixture
def running(api, fake_ollama, make_settings, start_bot):
    async def start(mode: str = "native", **llm):
        settings = make_settings(llm={"host": fake_ollama.url, "mode": mode, **llm}, telegram={
            "token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0})
        return await start_bot(settings, [TelegramAdapter(settings)])

    return start


def ask_privately(api: FakeBotAPI, text: str) -> dict:
    return api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, text)))["message"]


async def test_a_long_model_error_reaches_the_user_as_one_short_line(api, running, fake_ollama, caplog):
    assert len(RUNNER_CRASH) > 7500 and len(RUNNER_CRASH.splitlines()[0]) > 4096
    fake_ollama.script(Scripted(status=500, error=RUNNER_CRASH))
    bot = await running()
    caplog.set_level(logging.WARNING, logger="kagentbot.agent.loop")
    dm = ask_privately(api, "what's new?")
    await replies_to(api, dm["message_id"])
    await bot.idle()
    (sent,) = sends_replying_to(api, dm["message_id"])
    shown = final_text(api, sent)
    assert "answered 500" in shown and "llama runner process has terminated" in shown
    assert len(shown) < 450 and "ggml_backend" not in shown and "error id" in shown
    assert "frame 69" in caplog.text  # the whole error is in the log, for whoever runs the bot


@pytest.mark.parametrize("mode", ["kagent", "native"])
async def test_a_server_ignoring_the_token_cap_gives_a_few_messages_not_hundreds(api, running, fake_ollama, mode):
    runaway = "All work and no play makes a dull answer. " * 2000  # 84,000 characters, never stopped by the server
    replies = [Scripted(runaway, chunk=2000, ignore_cap=True)]
    fake_ollama.script(*([complete()] if mode == "kagent" else []), *replies)
    bot = await running(mode, answer_max_tokens=1000)  # 8,000 characters' worth
    dm = ask_privately(api, "write forever")
    await replies_to(api, dm["message_id"])
    await bot.idle()
    parts = [final_text(api, p) for p in sends_replying_to(api, dm["message_id"])]
    print(f"\n{mode}: a runaway answer of {len(runaway):,} characters became {len(parts)} message(s)")
    assert 1 <= len(parts) <= 3 and all(len(part) <= 4096 for part in parts)
    text = "".join(parts)
    assert text.rstrip().endswith(CUT_NOTE["en"].strip())
    assert len(text) <= 1000 * 8 + len(CUT_NOTE["en"])  # 8 characters a token at most
