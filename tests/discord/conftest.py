from __future__ import annotations

import discord
import pytest

from kagentbot.bot.app import Bot, default_router
from kagentbot.chat.commands import CommandRouter
from tests.discord.fake_discord import drain_sent
from tests.discord.harness import INVITE_PERMISSIONS, Harness, start_discord_bot


@pytest.fixture
async def discord_bot(fake_ollama, make_settings):
    started: list[Bot] = []

    async def start(router: CommandRouter | None = None, permissions: discord.Permissions = INVITE_PERMISSIONS,
                    **settings) -> Harness:
        settings.setdefault("llm", {"host": fake_ollama.url, "mode": "kagent"})
        settings["discord"] = {"token": "fake-bot-token", "send_interval": 0, "edit_interval": 0,
                               **settings.get("discord", {})}
        harness = await start_discord_bot(make_settings(**settings), router or default_router(), permissions)
        started.append(harness.bot)
        return harness

    yield start
    for bot in started:
        await bot.stop()
    drain_sent()
