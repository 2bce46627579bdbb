"""The real Bot with the real DiscordAdapter (discord.py's client) on dpytest's fake Discord,
extended in fake_discord.py, and the real ollama client on FakeOllama."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend as back

from kagentbot.adapters.discord_adapter import DiscordAdapter, create
from kagentbot.bot.app import Bot, default_router
from kagentbot.bot.commands import CommandRouter
from kagentbot.bot.services import Services
from tests.discord.fake_discord import FakeDiscordHttp, FakeWebhookAdapter, drain_sent, join_guild


@dataclass
class Harness:
    bot: Bot
    adapter: DiscordAdapter
    http: FakeDiscordHttp
    webhooks: FakeWebhookAdapter
    guild: discord.Guild
    channel: discord.TextChannel
    alice: discord.Member
    me: discord.Member

    def mention(self) -> str:
        return f"<@{self.adapter.client.user.id}>"


# What the invite URL in docs/discord.md grants the bot's role
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, create_public_threads=True, send_messages_in_threads=True,
    read_message_history=True, attach_files=True,
)


@pytest.fixture
async def discord_bot(fake_ollama, make_settings):
    started: list[Bot] = []

    async def start(router: CommandRouter | None = None, permissions: discord.Permissions = INVITE_PERMISSIONS,
                    **settings) -> Harness:
        settings.setdefault("llm", {"host": fake_ollama.url, "mode": "kagent"})
        settings.setdefault("discord", {})
        settings["discord"] = {"token": "fake-bot-token", "send_interval": 0, "edit_interval": 0, **settings["discord"]}
        config = make_settings(**settings)
        router = router or default_router()
        adapter = create(config, router)  # as `kagentbot run` builds it
        dpytest.configure(adapter.client, members=0)
        http = FakeDiscordHttp.install(adapter.client)
        runner = dpytest.get_config()
        guild = runner.guilds[0]
        role = back.make_role("kagentbot", guild, permissions=permissions.value)
        me = join_guild(adapter.client.user, guild, roles=[role])
        alice = join_guild(back.make_user("alice", "0001"), guild)
        bot = Bot(await Services.open(config), [adapter], router)
        await bot.start()
        started.append(bot)
        await _until(lambda: http.gateways and http.gateways[-1].identified())
        return Harness(bot, adapter, http, FakeWebhookAdapter(), guild, runner.channels[0], alice, me)

    yield start
    for bot in started:
        await bot.stop()
    drain_sent()


async def _until(condition, timeout: float = 5.0) -> None:
    """Wait for something another task does (the gateway handshake)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
