"""A Discord private thread is a chat of its own: what is said and added there never reaches
the public channel it hangs off (dpytest's Discord, the real adapter and Bot, the fake Ollama's
wire). A public thread still continues its channel's conversation."""

from __future__ import annotations

import json

import discord
import discord.ext.test as dpytest
from discord.ext.test import backend as back

from tests.discord.fake_discord import drain_sent, finish_interactions, join_guild, slash_command
from tests.privacy.world import scripted_model

EMBED = {"backend": "ollama", "model": "kagentlm"}  # the fake's embeddings: no model to load


def private_thread(parent: discord.TextChannel, owner: discord.Member, name: str = "plans") -> discord.Thread:
    """A private thread as THREAD_CREATE brings it: its own id, its parent, type 12."""
    thread_id = discord.utils.time_snowflake(discord.utils.utcnow()) + 7
    payload = {
        "id": str(thread_id), "guild_id": str(parent.guild.id), "parent_id": str(parent.id),
        "owner_id": str(owner.id), "name": name, "type": discord.ChannelType.private_thread.value,
        "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0, "member_count": 2,
        "total_message_sent": 0, "flags": 0,
        "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "invitable": False,
                            "archive_timestamp": discord.utils.utcnow().isoformat(), "locked": False},
    }
    back.get_state().parse_thread_create({**payload, "newly_created": True})
    return parent.guild.get_thread(thread_id)


def wire(fake_ollama, since: int) -> str:
    return json.dumps([body for path, body in fake_ollama.requests[since:] if path == "/api/chat"], ensure_ascii=False)


async def test_a_private_thread_shares_no_memory_with_its_public_parent(discord_bot, fake_ollama):
    fake_ollama.responder = scripted_model
    h = await discord_bot(embed=EMBED, agent={"max_steps": 2})
    bob = join_guild(back.make_user("bob", "0002"), h.guild)
    thread = private_thread(h.channel, h.alice)
    await dpytest.message(f"{h.mention()} /kb add --scope chat The launch password is zqdocprivate.",
                          channel=thread, member=h.alice)
    await h.bot.idle()
    slash_command(h.webhooks, "kb", channel=thread, user=h.alice, args="add --scope chat The backup password is zqdocslash.")
    await finish_interactions()
    await h.bot.idle()
    assert "this chat" in h.webhooks.followups[-1].content
    await dpytest.message(f"{h.mention()} what is the launch password zqqprivate", channel=thread, member=h.alice)
    await h.bot.idle()
    await h.bot.services.memory.flush()

    before = len(fake_ollama.requests)
    await dpytest.message(f"{h.mention()} what is the launch password zqqpublic", channel=h.channel, member=bob)
    await h.bot.idle()
    public = wire(fake_ollama, before)
    assert "zqqpublic" in public  # Bob's turn did reach the model
    assert "zqdocprivate" not in public and "zqqprivate" not in public and "zqdocslash" not in public

    before = len(fake_ollama.requests)
    await dpytest.message(f"{h.mention()} and the password again zqqfollow", channel=thread, member=h.alice)
    await h.bot.idle()
    inside = wire(fake_ollama, before)
    assert "zqdocprivate" in inside and "zqqprivate" in inside and "zqdocslash" in inside  # still its own
    drain_sent()


async def test_a_public_thread_continues_its_channels_conversation(discord_bot, fake_ollama):
    fake_ollama.responder = scripted_model
    h = await discord_bot(embed=EMBED, agent={"max_steps": 2})
    await dpytest.message(f"{h.mention()} /kb add --scope chat The office wifi is zqdocchannel.",
                          channel=h.channel, member=h.alice)
    await h.bot.idle()
    asked = await dpytest.message(f"{h.mention()} what is the office wifi zqqchannel", channel=h.channel, member=h.alice)
    await h.bot.idle()
    await h.bot.services.memory.flush()
    thread = h.guild.get_thread(asked.id)  # the public thread the bot opened for the answer
    assert thread.type == discord.ChannelType.public_thread

    before = len(fake_ollama.requests)
    await dpytest.message(f"{h.mention()} and again zqqthread", channel=thread, member=h.alice)
    await h.bot.idle()
    assert "zqdocchannel" in wire(fake_ollama, before) and "zqqchannel" in wire(fake_ollama, before)
    drain_sent()
