"""`kagentbot run`: starts the configured platforms and answers, or says what to configure."""

from __future__ import annotations

import asyncio

from kagentbot.cli.runner import run_bot
from tests.fakes.ollama_server import Scripted
from tests.telegram import updates as tg
from tests.telegram.test_telegram_adapter import api, replies_to, telegram_settings  # noqa: F401 (fixtures)


async def test_run_without_credentials_explains_what_to_set(make_settings, capsys):
    assert await run_bot(make_settings(), stop=asyncio.Event()) == 2
    err = capsys.readouterr().err
    assert "no chat platform is configured" in err and "KAGENTBOT_TELEGRAM__TOKEN" in err


async def test_run_starts_telegram_answers_and_stops_cleanly(api, telegram_settings, fake_ollama, capsys):
    fake_ollama.script(Scripted("Hi from the bot."))
    stop = asyncio.Event()
    running = asyncio.create_task(run_bot(telegram_settings(), stop=stop))
    message = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "hello")))["message"]
    await replies_to(api, message["message_id"])
    stop.set()
    assert await asyncio.wait_for(running, 10) == 0
    assert "running on telegram" in capsys.readouterr().err
