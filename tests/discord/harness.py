"""The real Bot with the real DiscordAdapter (discord.py's client) on dpytest's fake Discord,
extended in fake_discord.py. Used by the tests and by bench/chat_latency.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import discord
import discord.ext.test as dpytest
from discord.ext.test import backend as back

from kagentbot.adapters.discord_adapter import DiscordAdapter, create
from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from kagentbot.chat.commands import CommandRouter
from kagentbot.config.settings import Settings
from tests.discord.fake_discord import FakeDiscordHttp, FakeWebhookAdapter, join_guild

# What the invite URL in docs/discord.md grants the bot's role
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, create_public_threads=True, send_messages_in_threads=True,
    read_message_history=True, attach_files=True,
)


@dataclass
class Harness:
    bot: Bot
    adapter: DiscordAdapter
    http: FakeDiscordHttp
    webhooks: FakeWebhookAdapter
    guild: discord.Guild
    channels: list[discord.TextChannel]
    alice: discord.Member
    me: discord.Member

    @property
    def channel(self) -> discord.TextChannel:
        return self.channels[0]

    def mention(self) -> str:
        return f"<@{self.adapter.client.user.id}>"


async def start_discord_bot(settings: Settings, router: CommandRouter,
                            permissions: discord.Permissions = INVITE_PERMISSIONS, text_channels: int = 1) -> Harness:
    adapter = create(settings, router)  # as `kagentbot run` builds it
    dpytest.configure(adapter.client, text_channels=text_channels, voice_channels=0, members=0)
    http = FakeDiscordHttp.install(adapter.client)
    runner = dpytest.get_config()
    guild = runner.guilds[0]
    role = back.make_role("kagentbot", guild, permissions=permissions.value)
    me = join_guild(adapter.client.user, guild, roles=[role])
    alice = join_guild(back.make_user("alice", "0001"), guild)
    bot = Bot(await Services.open(settings), [adapter], router)
    await bot.start()
    await until(lambda: http.gateways and http.gateways[-1].identified())
    return Harness(bot, adapter, http, FakeWebhookAdapter(), guild, list(runner.channels), alice, me)


async def until(condition, timeout: float = 5.0, step: float = 0.005) -> None:
    """Wait for something another task does."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)
