"""Replicas splitting the bot's gateway shards (`discord.shard_ids` of `discord.shard_count`):
the real adapter on dpytest's fake Discord, read at the gateway handshake (IDENTIFY). dpytest
drives a discord.Client, so a replica with several shards is checked at construction."""

from __future__ import annotations

import discord
import discord.ext.test as dpytest
import pytest

from kagentbot.adapters.discord_adapter import DiscordAdapter
from kagentbot.adapters.discord_client import ShardedGatewayClient
from kagentbot.config.settings import SettingsError
from tests.discord.harness import until


def identified_shards(h) -> list[list[int] | None]:
    return [p["d"].get("shard") for g in h.http.gateways for p in g.received if p["op"] == 2]


async def test_a_replica_identifies_with_its_shard_of_the_count(discord_bot):
    h = await discord_bot(discord={"shard_count": 3, "shard_ids": "2"})
    await until(lambda: identified_shards(h) == [[2, 3]])


async def test_the_replica_with_shard_zero_answers_direct_messages(discord_bot):
    h = await discord_bot(discord={"shard_count": 2, "shard_ids": "0"})
    await until(lambda: identified_shards(h) == [[0, 2]])
    dm = await h.alice.create_dm()
    await dpytest.message("/help", channel=dm, member=h.alice)
    await h.bot.idle()
    assert dpytest.verify().message().contains().content("/kb")


async def test_without_shard_settings_the_bot_keeps_one_unsharded_connection(discord_bot):
    h = await discord_bot()
    assert not isinstance(h.adapter.client, discord.AutoShardedClient)
    assert identified_shards(h) == [None]  # IDENTIFY without a shard field, as before


async def test_a_replica_with_several_shards_runs_them_in_one_sharded_client(make_settings):
    adapter = DiscordAdapter(make_settings(discord={"token": "t", "shard_count": 4, "shard_ids": "1,3"}))
    client = adapter.client
    assert isinstance(client, ShardedGatewayClient) and isinstance(client, discord.AutoShardedClient)
    assert (client.shard_ids, client.shard_count) == ([1, 3], 4)
    assert client.intents.message_content and client.allowed_mentions.everyone is False  # as unsharded


@pytest.mark.parametrize(("discord_settings", "says"), [
    ({"shard_ids": "1"}, "set discord.shard_count too"),
    ({"shard_ids": "2", "shard_count": 2}, "outside 0..1"),
    ({"shard_ids": "0,0", "shard_count": 2}, "named twice"),
])
def test_shard_settings_that_cannot_work_are_refused_at_start(make_settings, discord_settings, says):
    with pytest.raises(SettingsError, match=says):
        make_settings(discord={"token": "t", **discord_settings})


def test_replicas_without_shard_settings_are_told_to_split_the_shards(make_settings, caplog):
    DiscordAdapter(make_settings(discord={"token": "t"}, cluster={"enabled": True}))
    assert "set discord.shard_count and discord.shard_ids" in caplog.text
    caplog.clear()
    DiscordAdapter(make_settings(discord={"token": "t"}))  # a single bot: nothing to split
    DiscordAdapter(make_settings(discord={"token": "t", "shard_count": 2, "shard_ids": "1"}, cluster={"enabled": True}))
    assert "shard_count" not in caplog.text
