"""A Discord replica in cluster mode, with the real discord.py on dpytest's fake Discord: a slash
command is taken through the shared intake and answered; while Redis is unreachable its deferred
reply says to try again instead of "thinking" for ever."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from kagentbot.adapters.discord_adapter import NOT_TAKEN
from kagentbot.bot.app import default_router
from tests.discord.fake_discord import drain_sent, finish_interactions, slash_command
from tests.discord.harness import start_discord_bot
from tests.fakes.redis_server import RedisServer


@pytest.fixture
async def discord_replica(fake_ollama, make_settings, cluster_settings, tmp_path):
    server = RedisServer(tmp_path / "own-redis").start()
    cluster = cluster_settings.model_copy(update={"redis_url": SecretStr(server.url), "poll_seconds": 0.2})
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native"}, cluster=cluster,
                             discord={"token": "fake-bot-token", "send_interval": 0, "edit_interval": 0})
    harness = await start_discord_bot(settings, default_router())
    yield harness, server
    await harness.bot.stop()
    server.stop()
    drain_sent()


async def test_a_slash_command_is_taken_through_redis_or_told_to_try_again(discord_replica):
    h, server = discord_replica
    slash_command(h.webhooks, "help", channel=h.channel, user=h.alice)
    await finish_interactions()
    await h.bot.idle()
    assert "Mention me or DM me" in h.webhooks.followups[0].content
    server.stop()
    slash_command(h.webhooks, "help", channel=h.channel, user=h.alice)
    await finish_interactions()
    await h.bot.idle()
    assert [f.content for f in h.webhooks.followups[1:]] == [NOT_TAKEN]
