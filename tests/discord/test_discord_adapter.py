"""The real Bot and DiscordAdapter (discord.py's client) against dpytest's fake Discord, extended
with threads, login, the gateway handshake and interactions (fake_discord.py), and the real
ollama client against FakeOllama."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend as back
from discord.ext.test import factories as facts

from kagentbot.adapters.discord_adapter import configured, create
from kagentbot.adapters.discord_client import thread_name
from kagentbot.bot.app import default_router
from kagentbot.chat.commands import Command, CommandContext, Reply
from tests.discord.fake_discord import (
    FakeDiscordHttp,
    drain_sent,
    finish_interactions,
    join_guild,
    slash_command,
    stored_messages,
)
from tests.discord.harness import INVITE_PERMISSIONS, until
from tests.fakes.ollama_server import Scripted, complete, task

MESSI = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
QUESTION = "How many days older is Messi than Antonela?"


def final_texts(channel_id: int) -> list[str]:
    return [m["content"] for m in stored_messages(channel_id) if m["author"].get("bot")]


async def test_mention_gets_steps_and_answer_in_a_thread_on_the_message(discord_bot, fake_ollama):
    fake_ollama.script(MESSI, complete(), "Messi is older by **247 days**.")
    h = await discord_bot()
    asked = await dpytest.message(f"{h.mention()} {QUESTION}", channel=h.channel, member=h.alice)
    await h.bot.idle()

    [thread] = h.http.threads
    assert int(thread["id"]) == asked.id and int(thread["parent_id"]) == h.channel.id
    assert thread["name"] == QUESTION  # the mention is not part of the name
    sent = drain_sent()
    assert [m.channel.id for m in sent] == [asked.id, asked.id]  # nothing in the channel itself
    step, answer = final_texts(asked.id)
    assert step.startswith("✅ 1. Messi's age gap") and "time_delta" in step and "247" in step
    assert answer == "Messi is older by **247 days**."  # Discord reads Markdown as it is
    assert all("<@" not in prompt for prompt in fake_ollama.prompts())
    assert any(QUESTION in prompt for prompt in fake_ollama.prompts())


async def test_each_question_in_a_channel_is_answered_in_its_own_thread(discord_bot, fake_ollama):
    # The question being asked comes last in the prompt; an earlier turn may appear before it as history.
    def last_asked(body) -> str:
        content = body["messages"][-1]["content"]
        return "first" if content.rfind("first question") > content.rfind("second question") else "second"

    fake_ollama.responder = lambda body: Scripted("First answer." if last_asked(body) == "first" else "Second answer.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    first = await dpytest.message(f"<@!{h.adapter.client.user.id}> first question", channel=h.channel, member=h.alice)
    second = await dpytest.message(f"{h.mention()} second question", channel=h.channel, member=h.alice)
    await h.bot.idle()

    assert sorted(m.channel.id for m in drain_sent()) == sorted([first.id, second.id])
    assert final_texts(first.id) == ["First answer."] and final_texts(second.id) == ["Second answer."]
    assert sorted(t["name"] for t in h.http.threads) == ["first question", "second question"]  # <@!id> removed too


async def test_model_text_never_pings_everyone_or_anyone(discord_bot, fake_ollama):
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    fake_ollama.script(f"@everyone look: <@{h.alice.id}> said so.")  # e.g. copied from a web page
    await dpytest.message(f"{h.mention()} summarise that page", channel=h.channel, member=h.alice)
    await h.bot.idle()
    [(channel_id, payload)] = h.http.sent_payloads
    assert payload["allowed_mentions"]["parse"] == [] and not payload["allowed_mentions"].get("users")


async def test_dm_is_answered_with_replies_not_a_thread(discord_bot, fake_ollama):
    fake_ollama.script(MESSI, complete(), "247 days.")
    h = await discord_bot()
    dm = await h.alice.create_dm()
    asked = await dpytest.message(QUESTION, channel=dm, member=h.alice)  # no mention needed in a DM
    await h.bot.idle()

    assert h.http.threads == []
    assert [m.channel.id for m in drain_sent()] == [dm.id, dm.id]
    references = [p.get("message_reference", {}).get("message_id") for c, p in h.http.sent_payloads]
    assert references == [asked.id, asked.id]
    assert final_texts(dm.id)[-1] == "247 days."


async def test_without_thread_permission_it_replies_in_the_channel(discord_bot, fake_ollama):
    fake_ollama.script(MESSI, complete(), "247 days.")
    no_threads = discord.Permissions(INVITE_PERMISSIONS.value)
    no_threads.create_public_threads = False
    h = await discord_bot(permissions=no_threads)
    asked = await dpytest.message(f"{h.mention()} {QUESTION}", channel=h.channel, member=h.alice)
    await h.bot.idle()

    assert h.http.threads == []  # Discord answered 403 Missing Permissions
    assert [m.channel.id for m in drain_sent()] == [h.channel.id, h.channel.id]
    assert {p["message_reference"]["message_id"] for c, p in h.http.sent_payloads} == {asked.id}
    assert final_texts(h.channel.id)[-1] == "247 days."


async def test_a_mention_inside_a_thread_is_answered_in_that_thread(discord_bot, fake_ollama):
    fake_ollama.script("First.", "Follow-up answer.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    asked = await dpytest.message(f"{h.mention()} first", channel=h.channel, member=h.alice)
    await h.bot.idle()
    thread = h.guild.get_thread(asked.id)
    await dpytest.message(f"{h.mention()} and then?", channel=thread, member=h.alice)
    await h.bot.idle()

    assert len(h.http.threads) == 1  # no thread inside a thread
    assert [m.channel.id for m in drain_sent()] == [thread.id, thread.id]
    assert final_texts(thread.id) == ["First.", "Follow-up answer."]


async def test_a_follow_up_in_the_bots_own_thread_needs_no_mention(discord_bot, fake_ollama):
    fake_ollama.script("Paris.", "About two million people.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    asked = await dpytest.message(f"{h.mention()} capital of France?", channel=h.channel, member=h.alice)
    await h.bot.idle()
    thread = h.guild.get_thread(asked.id)
    assert thread.owner_id == h.adapter.client.user.id
    await dpytest.message("and how many people live there?", channel=thread, member=h.alice)
    await h.bot.idle()
    assert final_texts(thread.id) == ["Paris.", "About two million people."]
    assert "capital of France?" in json.dumps(fake_ollama.chat_requests()[-1]["messages"])  # the same conversation


async def test_other_bots_and_unmentioned_messages_are_ignored(discord_bot, fake_ollama):
    h = await discord_bot()
    other_bot = back.get_state().store_user(facts.make_user_dict("otherbot", "0002", None, bot=True))
    other_bot = join_guild(other_bot, h.guild)
    await dpytest.message(f"{h.mention()} {QUESTION}", channel=h.channel, member=other_bot)
    await dpytest.message(QUESTION, channel=h.channel, member=h.alice)  # not addressed to the bot
    await h.bot.idle()

    assert dpytest.verify().message().nothing()
    assert fake_ollama.chat_requests() == []


async def test_a_redelivered_message_is_answered_once(discord_bot, fake_ollama):
    fake_ollama.script("Only once.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    asked = await dpytest.message(f"{h.mention()} hello", channel=h.channel, member=h.alice)
    replayed = next(m for m in stored_messages(h.channel.id) if m["id"] == asked.id)
    back.get_state().parse_message_create(replayed)  # the gateway replays events after a resume
    await dpytest.run_all_events()
    await h.bot.idle()

    assert len(drain_sent()) == 1 and final_texts(asked.id) == ["Only once."]


async def test_help_and_unknown_commands_typed_after_a_mention(discord_bot):
    h = await discord_bot()
    await dpytest.message(f"{h.mention()} /help", channel=h.channel, member=h.alice)
    await h.bot.idle()
    assert dpytest.verify().message().contains().content("Mention me or DM me with a question")
    dm = await h.alice.create_dm()
    await dpytest.message("/nope", channel=dm, member=h.alice)
    await h.bot.idle()
    assert dpytest.verify().message().contains().content("Unknown command /nope")
    assert h.http.threads == []  # command replies go next to the command, not into a thread


async def test_slash_commands_are_synced_at_start_and_the_gateway_asks_for_message_content(discord_bot):
    router = default_router()
    router.add(Command("kb", "manage the knowledge base", "/kb add|list", _probe_kb))
    h = await discord_bot(router)

    names = {c["name"]: c for c in h.http.synced_commands}
    assert set(names) == set(router.names()) == {"help", "kb", "persona", "schedule"}
    assert [(o["name"], o["type"]) for o in names["kb"]["options"]] == [("args", 3), ("file", 11)]
    [identify] = [p for p in h.http.gateways[-1].received if p["op"] == 2]
    intents = discord.Intents._from_value(identify["d"]["intents"])
    assert intents.message_content and intents.guild_messages and intents.dm_messages and intents.guilds
    assert not intents.members and not intents.presences  # no other privileged intents


async def test_slash_help_is_deferred_then_answered_with_a_follow_up(discord_bot):
    h = await discord_bot()
    token = slash_command(h.webhooks, "help", channel=h.channel, user=h.alice)
    await finish_interactions()
    await h.bot.idle()

    [(interaction_id, body)] = h.webhooks.callbacks
    assert body["type"] == 5 and body["data"]["flags"] & 64  # deferred, only the invoker sees it
    [followup] = h.webhooks.followups
    assert followup.interaction_token == token and followup.ephemeral
    assert "Mention me or DM me with a question" in followup.content and "/help" in followup.content
    assert dpytest.verify().message().contains().content("Mention me or DM me")


async def test_slash_command_with_args_in_a_dm_reaches_the_router(discord_bot):
    h = await discord_bot()
    dm = await h.alice.create_dm()
    slash_command(h.webhooks, "help", channel=dm, user=h.alice, args="me please")
    await finish_interactions()
    await h.bot.idle()
    assert "Mention me or DM me" in h.webhooks.followups[0].content


async def _probe_kb(context: CommandContext, args: list[str]) -> Reply:
    """Stands in for the knowledge-base handler: shows what reached the router."""
    files = [f"{a.name}={hashlib.sha256(await a.fetch()).hexdigest()[:16]}" for a in context.message.attachments]
    return Reply(f"kb {' '.join(args)} files: {', '.join(files) or 'none'}")


def _router_with_probe():
    router = default_router()
    router.add(Command("kb", "manage the knowledge base", "/kb add|list", _probe_kb))
    return router


async def test_kb_add_with_an_attached_file_reaches_the_router_with_a_working_download(discord_bot, tmp_path: Path):
    document = tmp_path / "notes.txt"
    document.write_bytes(b"kagentbot notes\n" * 40)
    h = await discord_bot(_router_with_probe())
    await dpytest.message(f"{h.mention()} /kb add", channel=h.channel, member=h.alice, attachments=[str(document)])
    await h.bot.idle()
    digest = hashlib.sha256(document.read_bytes()).hexdigest()[:16]
    assert dpytest.verify().message().content(f"kb add files: notes.txt={digest}")


async def test_kb_slash_command_with_a_file_option(discord_bot, tmp_path: Path):
    document = tmp_path / "report.md"
    document.write_text("# Report\n" * 30)
    h = await discord_bot(_router_with_probe())
    upload = back.make_attachment(document)
    slash_command(h.webhooks, "kb", channel=h.channel, user=h.alice, args="add", attachment=upload)
    await finish_interactions()
    await h.bot.idle()
    digest = hashlib.sha256(document.read_bytes()).hexdigest()[:16]
    assert [f.content for f in h.webhooks.followups] == [f"kb add files: report.md={digest}"]


async def test_files_over_the_upload_limit_are_refused_with_a_clear_message(discord_bot, tmp_path: Path):
    document = tmp_path / "big.txt"
    document.write_bytes(b"x" * 4096)
    h = await discord_bot(_router_with_probe(), memory={"max_upload_mb": 0.001})  # about 1 KB
    await dpytest.message(f"{h.mention()} /kb add", channel=h.channel, member=h.alice, attachments=[str(document)])
    await h.bot.idle()
    [reply] = drain_sent()
    assert reply.content.startswith("big.txt is 4.0 KB, over the 1.0 KB limit for uploads")


async def test_long_answers_are_split_under_discords_2000_characters(discord_bot, fake_ollama):
    long_answer = "\n\n".join(f"Paragraph {i}: " + "word " * 90 for i in range(12))  # about 5,500 characters
    fake_ollama.script(long_answer)
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    asked = await dpytest.message(f"{h.mention()} write a lot", channel=h.channel, member=h.alice)
    await h.bot.idle()

    pieces = final_texts(asked.id)
    assert len(pieces) >= 3 and all(len(p) <= 2000 for p in pieces)  # the fake refuses longer ones
    assert " ".join(" ".join(pieces).split()) == " ".join(long_answer.split())


async def test_a_429_from_discord_is_retried_after_its_retry_after_not_lost(discord_bot, fake_ollama, caplog):
    fake_ollama.script("Still delivered.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    h.http.rate_limit_next_sends = 2
    with caplog.at_level(logging.INFO, logger="kagentbot.chat.render"):
        asked = await dpytest.message(f"{h.mention()} hi", channel=h.channel, member=h.alice)
        await h.bot.idle()
    assert h.http.rate_limit_next_sends == 0
    assert len(drain_sent()) == 1 and final_texts(asked.id) == ["Still delivered."]
    # surfaced as RateLimited (waits Retry-After), not as a generic failure with back-off
    assert caplog.text.count("discord rate limited in") == 2 and "send failed" not in caplog.text


async def test_many_429s_in_a_row_are_waited_out_not_counted_as_failures(discord_bot, fake_ollama):
    fake_ollama.script("Patience pays.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    h.http.rate_limit_next_sends = 8  # more than the 5 failures after which a message is given up
    asked = await dpytest.message(f"{h.mention()} hi", channel=h.channel, member=h.alice)
    await h.bot.idle()
    assert h.http.rate_limit_next_sends == 0 and final_texts(asked.id) == ["Patience pays."]


async def test_a_refusal_from_discord_is_given_up_at_once_not_retried(discord_bot, fake_ollama, caplog):
    fake_ollama.script("Nowhere to go.", "Heard this time.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    h.http.refuse_next_sends = 1
    with caplog.at_level(logging.INFO, logger="kagentbot"):
        await dpytest.message(f"{h.mention()} hi", channel=h.channel, member=h.alice)
        await h.bot.idle()
    assert h.http.send_attempts == 1 and "send failed" not in caplog.text
    assert "could not deliver" in caplog.text and "Missing Permissions" in caplog.text
    asked = await dpytest.message(f"{h.mention()} again", channel=h.channel, member=h.alice)
    await h.bot.idle()
    assert final_texts(asked.id) == ["Heard this time."]


async def test_stop_closes_the_gateway_and_leaves_no_task(discord_bot):
    h = await discord_bot()
    gateway = h.http.gateways[-1]
    await h.bot.stop()
    assert gateway.closed and gateway.close_code == 1000
    assert h.adapter.client.is_closed()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "discord gateway"]


async def test_a_refused_message_content_intent_is_explained_and_ends_the_run(discord_bot, caplog):
    h = await discord_bot()
    fatal: list[str] = []
    h.adapter.on_fatal = fatal.append  # what `kagentbot run` sets: it then stops and exits 1
    with caplog.at_level(logging.ERROR, logger="kagentbot.adapters.discord_adapter"):
        h.http.gateways[-1].close_from_server(4014)  # Disallowed intent(s)
        for _ in range(100):
            if fatal:
                break
            await asyncio.sleep(0.01)
    assert "Privileged Gateway Intents in the developer portal" in caplog.text
    assert len(fatal) == 1 and "Message Content intent" in fatal[0]


async def test_a_rejected_token_stops_start_with_a_message_that_does_not_quote_it(make_settings):
    settings = make_settings(discord={"token": "wrong-secret-token"})
    adapter = create(settings, default_router())
    dpytest.configure(adapter.client, members=0)
    FakeDiscordHttp.install(adapter.client).valid_token = "the-right-token"
    with pytest.raises(RuntimeError) as failure:
        await adapter.start(lambda adapter, message: None)
    assert "KAGENTBOT_DISCORD__TOKEN" in str(failure.value) and "wrong-secret-token" not in str(failure.value)
    assert adapter.client.is_closed()


def test_configured_only_with_a_token(make_settings):
    assert not configured(make_settings())
    assert not configured(make_settings(discord={"token": "  "}))
    assert configured(make_settings(discord={"token": "abc"}))


def test_thread_names_fit_discords_limit():
    assert thread_name("short question\nmore detail") == "short question"
    long_name = thread_name("why " * 60)
    assert len(long_name) == 100 and long_name.endswith("…")
    assert thread_name("   \n  ") == "Question"


def test_the_documented_invite_grants_what_the_tests_give_the_bot():
    docs = (Path(__file__).parents[2] / "docs" / "discord.md").read_text()
    assert f"scope=bot+applications.commands&permissions={INVITE_PERMISSIONS.value}" in docs


def test_kagentbot_run_builds_the_discord_adapter_when_its_token_is_set(make_settings):
    from kagentbot.cli.runner import configured_adapters

    router = default_router()
    router.add(Command("kb", "manage the knowledge base", "/kb add|list", _probe_kb))
    [adapter] = configured_adapters(make_settings(discord={"token": "abc"}), router)
    assert adapter.platform == "discord" and adapter.capabilities.max_length == 2000
    assert configured_adapters(make_settings(), router) == []


async def test_a_private_reply_to_a_typed_command_in_a_channel_goes_to_a_dm(discord_bot):
    h = await discord_bot()
    await dpytest.message(f"{h.mention()} /nope", channel=h.channel, member=h.alice)  # "Unknown command": private
    await h.bot.idle()
    dm = h.alice.dm_channel or await h.alice.create_dm()
    (sent,) = drain_sent()
    assert sent.channel.id == dm.id and sent.content.startswith("Unknown command /nope")


async def test_scheduled_questions_reach_a_server_channel_and_a_users_dm(discord_bot, fake_ollama):
    """A scheduled run has no message to open a thread on; a CLI schedule's DM target is the
    user's id, which is not a channel id on Discord."""
    from kagentbot.chat.messages import IncomingMessage

    fake_ollama.script("Standup time.", "Your daily reminder.")
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    h.bot.ask_as("discord", IncomingMessage("discord", str(h.channel.id), str(h.alice.id), "standup?"))
    await h.bot.idle()
    h.bot.ask_as("discord", IncomingMessage("discord", str(h.alice.id), str(h.alice.id), "remind me", is_dm=True))
    await h.bot.idle()
    dm = h.alice.dm_channel or await h.alice.create_dm()
    assert [m.channel.id for m in drain_sent()] == [h.channel.id, dm.id]
    assert final_texts(h.channel.id) == ["Standup time."] and final_texts(dm.id) == ["Your daily reminder."]


async def test_a_mention_kept_waiting_for_the_model_sees_its_place_then_the_notice_goes(discord_bot, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("Answered.", delay=0.6)
    h = await discord_bot(llm={"host": fake_ollama.url, "mode": "native", "max_connections": 1}, agent={"max_steps": 1},
                          limits={"queue_notice_after": 0.2})
    first = await dpytest.message(f"{h.mention()} first", channel=h.channel, member=h.alice)
    while fake_ollama.in_flight < 1:  # the first question holds the only slot
        await asyncio.sleep(0.01)
    second = await dpytest.message(f"{h.mention()} second", channel=h.channel, member=h.alice)
    shown: list[str] = []

    def noticed() -> bool:
        shown.extend(m.content for m in drain_sent())
        return any(text.startswith("⏳") for text in shown)

    await until(noticed)
    await h.bot.idle()
    assert "⏳ Queued — you're next." in shown
    assert final_texts(first.id) == ["Answered."] and final_texts(second.id) == ["Answered."]  # the notice is gone
