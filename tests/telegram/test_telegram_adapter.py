"""The real python-telegram-bot, pointed at a fake Bot API on loopback, driving the real Bot with
the real ollama client talking to the fake Ollama server."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from kagentbot.adapters.telegram_adapter import FileTooLarge, TelegramAdapter, configured, file_base_url
from kagentbot.bot.app import Bot, default_router
from kagentbot.chat.adapter import Destination, RateLimited
from kagentbot.chat.commands import Command, Reply
from kagentbot.chat.render import DeliveryFailed, Outbox
from tests.fakes.ollama_server import Scripted, complete, task
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI

MESSI = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")


@pytest.fixture
async def api():
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as server:
        yield server


@pytest.fixture
def telegram_settings(api, fake_ollama, make_settings):
    def build(llm_mode: str = "native", memory: dict | None = None, **telegram):
        section = {"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0, **telegram}
        return make_settings(llm={"host": fake_ollama.url, "mode": llm_mode}, telegram=section, memory=memory or {})

    return build


@pytest.fixture
def running(telegram_settings, start_bot):
    """Start the real Bot with a Telegram adapter; stopped cleanly after the test."""

    async def start(router=None, llm_mode: str = "native", **telegram) -> tuple[Bot, TelegramAdapter]:
        adapter = TelegramAdapter(telegram_settings(llm_mode, **telegram))
        return await start_bot(adapter.settings, [adapter], router), adapter

    return start


def sends_replying_to(api: FakeBotAPI, message_id: int) -> list[dict]:
    return [p for p in api.called("sendMessage") if p.get("reply_parameters", {}).get("message_id") == message_id]


def replies_to(api: FakeBotAPI, message_id: int, count: int = 1):
    return api.wait_for(lambda: len(sends_replying_to(api, message_id)) >= count)


def final_text(api: FakeBotAPI, sent: dict) -> str:
    return api.shown(sent)


async def test_start_registers_the_command_menu_and_polls(api, running):
    router = default_router()
    router.add(Command("kb", "add, list, search or remove knowledge", "/kb add|list|search|remove", _echo_command))
    await running(router)
    assert api.called("getMe") and api.called("deleteWebhook")
    (menu,) = api.called("setMyCommands")
    assert [c["command"] for c in menu["commands"]] == router.names() == ["help", "kb", "persona", "schedule"]
    assert menu["commands"][1]["description"] == "add, list, search or remove knowledge"
    await api.wait_for(lambda: len(api.called("getUpdates")) >= 1)
    assert api.called("getUpdates")[0]["allowed_updates"] == ["message"]


async def test_group_mention_gets_steps_then_answer_as_html_replies(api, running, fake_ollama):
    fake_ollama.script(MESSI, complete(), "Messi is **older** by 247 days.")
    bot, _ = await running(llm_mode="kagent")
    question = api.push(tg.group_mention("How many days older is Messi than Antonela?"))["message"]
    await replies_to(api, question["message_id"], 2)
    await bot.idle()
    step, answer = sends_replying_to(api, question["message_id"])
    assert step["chat_id"] == tg.GROUP["id"] and "time_delta" in step["text"]
    assert final_text(api, step).startswith("✅") and "247" in final_text(api, step)
    assert final_text(api, answer) == "Messi is older by 247 days."
    assert api.shown(answer, markup=True) == "Messi is <b>older</b> by 247 days."
    writes = [c for c in api.calls if c.method in ("sendMessage", "editMessageText")]
    step_id = next(c.result["message_id"] for c in writes if c.params is step)
    last_step_write = max(i for i, c in enumerate(writes) if c.result and c.result["message_id"] == step_id)
    assert last_step_write < next(i for i, c in enumerate(writes) if c.params is answer)  # the step finished first
    assert {p["parse_mode"] for p in api.called("sendMessage") + api.called("editMessageText")} == {"HTML"}
    assert all("message_thread_id" not in p for p in api.called("sendMessage"))
    prompt = fake_ollama.prompts()[0]
    assert "How many days older is Messi than Antonela?" in prompt and f"@{tg.BOT_USERNAME}" not in prompt
    typing = api.called("sendChatAction")  # "typing…" from the start, before the model's first reply
    assert typing[0]["action"] == "typing" and str(typing[0]["chat_id"]) == str(tg.GROUP["id"])
    assert next(i for i, c in enumerate(api.calls) if c.method == "sendChatAction") < \
        next(i for i, c in enumerate(api.calls) if c.method == "sendMessage")


async def test_group_messages_without_a_mention_are_ignored(api, running, fake_ollama):
    fake_ollama.script("Hi Bob.")
    bot, _ = await running()
    chatter = api.push(tg.update(tg.message(tg.GROUP, tg.ALICE, "lunch at noon? @someone_else")))["message"]
    from_bot = api.push(tg.group_mention("ignore me, I am a bot", sender=tg.OTHER_BOT))["message"]
    other_bots_command = api.push(tg.command("/help@other_helper_bot"))["message"]
    path_not_command = api.push(tg.update(tg.message(tg.GROUP, tg.BOB, "/etc/hosts is broken again")))["message"]
    later = api.push(tg.group_mention("hello", sender=tg.BOB))["message"]
    await replies_to(api, later["message_id"])
    await bot.idle()
    replied = {p["reply_parameters"]["message_id"] for p in api.called("sendMessage")}
    assert replied == {later["message_id"]}
    ignored = {chatter["message_id"], from_bot["message_id"], other_bots_command["message_id"], path_not_command["message_id"]}
    assert ignored.isdisjoint(replied)
    assert not any("lunch" in p or "ignore me" in p for p in fake_ollama.prompts())


async def test_reply_to_the_bot_and_text_mention_address_it(api, running, fake_ollama):
    fake_ollama.script("First.", "Second.")
    bot, _ = await running()
    reply = api.push(tg.reply_to_bot("and what about tomorrow?", bot_message_id=4000))["message"]
    await replies_to(api, reply["message_id"])
    await bot.idle()
    text = "KAgent what is the weather"
    mention = tg.entity("text_mention", text, "KAgent", user=tg.BOT_USER)
    by_name = api.push(tg.update(tg.message(tg.GROUP, tg.BOB, text, entities=[mention])))["message"]
    await replies_to(api, by_name["message_id"])
    await bot.idle()
    assert [final_text(api, p) for p in api.called("sendMessage")] == ["First.", "Second."]
    assert "and what about tomorrow?" in fake_ollama.prompts()[0]
    assert "what is the weather" in fake_ollama.prompts()[1] and "KAgent what" not in fake_ollama.prompts()[1]


async def test_direct_message_is_always_answered(api, running, fake_ollama):
    fake_ollama.script("Hello Alice 👋 — <tags> & all.")
    bot, _ = await running()
    dm = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "hi 👋 there")))["message"]
    await replies_to(api, dm["message_id"])
    await bot.idle()
    (answer,) = api.called("sendMessage")
    assert answer["chat_id"] == tg.ALICE["id"] and answer["parse_mode"] == "HTML"
    assert final_text(api, answer) == "Hello Alice 👋 — <tags> & all."  # escaped for HTML, shown as written


async def test_forum_topic_replies_stay_in_the_topic(api, running, fake_ollama):
    fake_ollama.script(MESSI, complete(), "247 days.")
    bot, _ = await running(llm_mode="kagent")
    question = api.push(tg.forum_topic_mention("Messi vs Antonela?", topic_id=77))["message"]
    await replies_to(api, question["message_id"], 2)
    await bot.idle()
    sent = api.called("sendMessage")
    assert len(sent) == 2 and {p["message_thread_id"] for p in sent} == {77}
    assert {p["reply_parameters"]["message_id"] for p in sent} == {question["message_id"]}
    assert final_text(api, sent[-1]) == "247 days."


async def test_long_answer_is_split_at_telegrams_limit(api, running, fake_ollama):
    long_answer = "\n\n".join(f"Paragraph {i}: " + "a fairly long sentence about trains. " * 30 for i in range(9))
    fake_ollama.script(Scripted(long_answer, chunk=700))
    bot, _ = await running(edit_interval=0.05)
    dm = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "tell me everything")))["message"]
    await replies_to(api, dm["message_id"], 3)
    await bot.idle()
    parts = [final_text(api, p) for p in sends_replying_to(api, dm["message_id"])]
    assert len(parts) >= 3 and all(len(part) <= 4096 for part in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(long_answer.split())


async def test_help_and_unknown_commands_are_answered(api, running):
    router = default_router()
    router.add(Command("persona", "show or pick a persona", "/persona use <name>", _echo_command))
    bot, _ = await running(router)
    help_ = api.push(tg.command(f"/help@{tg.BOT_USERNAME}"))["message"]
    unknown = api.push(tg.command(f"/frobnicate@{tg.BOT_USERNAME} now"))["message"]
    await replies_to(api, help_["message_id"])
    await api.wait_for(lambda: any(str(p["chat_id"]) == str(tg.ALICE["id"]) for p in api.called("sendMessage")))
    await bot.idle()
    help_replies = sends_replying_to(api, help_["message_id"])
    # "Unknown command" is a private reply: Telegram has no per-member message, so it goes to Alice's DM
    (private,) = [p for p in api.called("sendMessage") if str(p["chat_id"]) == str(tg.ALICE["id"])]
    assert not sends_replying_to(api, unknown["message_id"])
    # the help text holds "<name>": command replies are converted to Telegram HTML, so it is escaped
    assert [p.get("parse_mode") for p in help_replies] == [private.get("parse_mode")] == ["HTML"]
    assert len(api.messages) == 2
    assert "/persona use <name> — show or pick a persona" in final_text(api, help_replies[-1])
    assert final_text(api, private).startswith("Unknown command /frobnicate")
    assert "/persona use <name>" in final_text(api, private)


async def test_a_private_reply_to_someone_who_never_opened_the_bot_is_only_a_pointer(api, running):
    router = default_router()
    router.add(Command("long", "a long private reply", "/long", _long_private_reply))
    bot, _ = await running(router)
    api.blocked_by.add(tg.ALICE["id"])  # what Telegram answers either way: 403, the bot may not start the chat
    asked = api.push(tg.command(f"/frobnicate@{tg.BOT_USERNAME}"))["message"]
    await replies_to(api, asked["message_id"])
    await bot.idle()
    (pointer,) = sends_replying_to(api, asked["message_id"])
    shown = final_text(api, pointer)
    assert "private reply" in shown and f"@{tg.BOT_USERNAME}" in shown and "Unknown command" not in shown
    # a long private reply comes in pieces: the group still gets one pointer
    long = api.push(tg.command(f"/long@{tg.BOT_USERNAME}"))["message"]
    await replies_to(api, long["message_id"])
    await bot.idle()
    assert len(sends_replying_to(api, long["message_id"])) == 1


async def _long_private_reply(ctx, args: list[str]) -> Reply:
    return Reply("\n\n".join(f"Paragraph {n}: " + "words " * 150 for n in range(12)), private=True)


async def test_other_bots_commands_in_a_group_are_left_alone_and_start_is_help(api, running):
    bot, _ = await running()
    api.push(tg.command("/warn spammer"))  # for a moderation bot in the same group
    started = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "/start",
                                            entities=[{"type": "bot_command", "offset": 0, "length": 6}])))["message"]
    await api.wait_for(lambda: api.called("sendMessage"))
    await bot.idle()
    (reply,) = api.called("sendMessage")
    assert str(reply["chat_id"]) == str(tg.ALICE["id"]) and "Commands:" in final_text(api, reply)
    assert reply.get("reply_parameters", {}).get("message_id") == started["message_id"]


async def test_a_mention_with_pasted_code_keeps_its_indentation(api, running, fake_ollama):
    fake_ollama.script("Looks fine.")
    bot, _ = await running()
    code = "check this:\ndef f(x):\n    if x:\n        return 1"
    api.push(tg.group_mention(code))
    await api.wait_for(lambda: fake_ollama.chat_requests())
    await bot.idle()
    assert "\n    if x:\n        return 1" in fake_ollama.prompts()[0]


async def test_rate_limited_send_is_retried(api, running, fake_ollama):
    fake_ollama.script("Still here.")
    bot, _ = await running()
    api.rate_limit_next("sendMessage")
    dm = api.push(tg.update(tg.message(tg.private_chat(tg.BOB), tg.BOB, "are you there?")))["message"]
    await replies_to(api, dm["message_id"], 2)  # the refused attempt and the retry
    await bot.idle()
    first, second = sends_replying_to(api, dm["message_id"])
    assert first == second and len(api.messages) == 1
    assert next(iter(api.messages.values())) == "Still here."


async def test_document_with_kb_add_caption_is_downloaded(api, running):
    router = default_router()
    router.add(Command("kb", "knowledge base", "/kb add", _echo_command))
    content = "Refund policy: 30 days.\n".encode() * 50
    api.add_file("BQACAgIAAxkBAAIBOWZdoc", content, "documents/file_7.txt")
    bot, _ = await running(router)
    upload = api.push(tg.document("BQACAgIAAxkBAAIBOWZdoc", "policy.txt", len(content)))["message"]
    await replies_to(api, upload["message_id"])
    await bot.idle()
    (reply,) = sends_replying_to(api, upload["message_id"])
    assert final_text(api, reply) == f"kb ['add'] policy.txt text/plain {len(content)} bytes, starts 'Refund policy'"
    assert api.called("getFile") == [{"file_id": "BQACAgIAAxkBAAIBOWZdoc"}]


async def test_documents_over_the_limits_are_refused_before_download(api, running):
    router = default_router()
    router.add(Command("kb", "knowledge base", "/kb add", _echo_command))
    api.add_file("big-bot-api", b"x", "documents/big.pdf")
    bot, adapter = await running(router)
    over_api = api.push(tg.document("big-bot-api", "big.pdf", 25 * 1024 * 1024, mime="application/pdf"))["message"]
    await replies_to(api, over_api["message_id"])
    await bot.idle()
    assert "20 MB download limit" in final_text(api, sends_replying_to(api, over_api["message_id"])[0])
    assert adapter.download_limit()[0] == 20 * 1024 * 1024
    assert api.called("getFile") == []


async def test_upload_setting_lowers_the_limit_even_when_telegram_understates_size(api, running, telegram_settings):
    adapter = TelegramAdapter(telegram_settings(memory={"max_upload_mb": 1}))
    received = []
    api.add_file("mid", b"y" * 1_500_000, "documents/mid.pdf")
    await adapter.start(lambda a, m: received.append(m))
    try:
        api.push(tg.document("mid", "mid.pdf", 1000, mime="application/pdf"))  # declared small, is 1.5 MB
        await _until(lambda: received)
        (attachment,) = received[0].attachments
        with pytest.raises(FileTooLarge, match="KAGENTBOT_MEMORY__MAX_UPLOAD_MB"):
            await attachment.fetch()
        assert api.called("getFile") == [{"file_id": "mid"}]
    finally:
        await adapter.stop()


async def test_normalised_message_fields_and_a_clean_stop(api, telegram_settings):
    adapter = TelegramAdapter(telegram_settings(), commands=[])
    received = []
    tasks_before = asyncio.all_tasks()
    await adapter.start(lambda a, m: received.append(m))
    try:
        api.push(tg.command(f"/kb@{tg.BOT_USERNAME} add https://example.org/a", sender=tg.BOB))
        api.push(tg.forum_topic_mention("  , plan   my trip\nwith two lines"))
        await _until(lambda: len(received) == 2)
    finally:
        await adapter.stop()
    await asyncio.sleep(0.05)
    left = [t.get_coro().__qualname__ for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert [name for name in left if not name.startswith("RequestHandler.")] == []  # the fake server's own are fine
    command, topic = received
    assert command.text == "/kb add https://example.org/a" and not command.is_dm and not command.mentions_bot
    assert (command.platform, command.chat_id, command.user_id, command.user_name) == ("telegram", str(tg.GROUP["id"]), "222", "Bob")
    assert topic.text == "plan   my trip\nwith two lines" and topic.thread_id == "77" and topic.mentions_bot  # spacing kept
    assert api.called("setMyCommands") == []  # the token in logged URLs: tests/hostile/test_secrets.py


async def test_edits_skip_identical_text_and_survive_not_modified(api, telegram_settings):
    adapter = TelegramAdapter(telegram_settings(), commands=[])
    await adapter.start(lambda a, m: None)
    try:
        sent = await adapter.send(Destination(str(tg.ALICE["id"])), "<b>working</b>")
        await adapter.edit(sent, "<b>working</b>")
        assert api.called("editMessageText") == []
        await adapter.edit(sent, "<b>working</b> ")  # Telegram trims: "message is not modified"
        await adapter.edit(sent, "<b>done</b>")
        assert [p["text"] for p in api.called("editMessageText")] == ["<b>working</b> ", "<b>done</b>"]
        assert api.messages[(tg.ALICE["id"], int(sent.message_id))] == "done"
        api.rate_limit_next("editMessageText")
        with pytest.raises(RateLimited) as limited:
            await adapter.edit(sent, "<b>done again</b>")
        assert limited.value.retry_after == 1
    finally:
        await adapter.stop()


async def test_a_user_who_blocked_the_bot_is_given_up_at_once_not_retried(api, telegram_settings):
    adapter = TelegramAdapter(telegram_settings(), commands=[])
    await adapter.start(lambda a, m: None)
    try:
        api.blocked_by.add(tg.ALICE["id"])
        with pytest.raises(DeliveryFailed, match="blocked by the user"):
            await Outbox(adapter).send(Destination(str(tg.ALICE["id"])), "anyone there?")
        assert len(api.called("sendMessage")) == 1
    finally:
        await adapter.stop()


async def test_webhook_mode_sets_the_webhook_checks_the_secret_and_drops_redeliveries(api, running, fake_ollama):
    fake_ollama.script("Via webhook.", "Not twice.")
    port = _free_port()
    bot, _ = await running(mode="webhook", webhook_url="https://bot.example.org/telegram/hook", webhook_secret="s3cret",
                           listen="127.0.0.1", port=port)
    (hook,) = api.called("setWebhook")
    assert hook["url"] == "https://bot.example.org/telegram/hook" and hook["secret_token"] == "s3cret"
    dm = tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "webhook hello"))
    dm["update_id"] = 700_000_001
    url = f"http://127.0.0.1:{port}/telegram/hook"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=dm, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as refused:
            assert refused.status == 403
        for _ in range(2):  # Telegram redelivers when it is unsure the first one arrived
            async with http.post(url, json=dm, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}) as accepted:
                assert accepted.status == 200
    await replies_to(api, dm["message"]["message_id"])
    await bot.idle()
    assert [final_text(api, p) for p in api.called("sendMessage")] == ["Via webhook."]
    assert api.called("getUpdates") == []


async def test_the_fake_takes_json_bodies_like_the_real_api(api):
    async with aiohttp.ClientSession() as http:
        body = {"chat_id": 111, "text": "<b>hi</b>", "parse_mode": "HTML", "reply_parameters": {"message_id": 9}}
        async with http.post(f"{api.base_url}{api.token}/sendMessage", json=body) as response:
            assert (await response.json())["result"]["text"] == "hi"
        async with http.post(f"{api.base_url}{api.token}/sendMessage", data={"chat_id": "111", "text": "<nope>", "parse_mode": "HTML"}) as bad:
            assert bad.status == 400 and "can't parse entities" in (await bad.json())["description"]
    assert api.called("sendMessage")[0]["reply_parameters"] == {"message_id": 9}


async def test_bad_token_unreachable_api_and_missing_settings_are_clear(api, telegram_settings, make_settings):
    assert not configured(make_settings()) and configured(telegram_settings())
    with pytest.raises(RuntimeError, match="rejected the bot token: check KAGENTBOT_TELEGRAM__TOKEN") as rejected:
        await TelegramAdapter(telegram_settings(token="123456:wrong-secret")).start(lambda a, m: None)
    assert "wrong-secret" not in str(rejected.value)
    with pytest.raises(RuntimeError, match="cannot reach the Telegram Bot API at http://127.0.0.1:9/bot"):
        await TelegramAdapter(telegram_settings(base_url="http://127.0.0.1:9/bot")).start(lambda a, m: None)
    with pytest.raises(RuntimeError, match="WEBHOOK_URL"):
        await TelegramAdapter(telegram_settings(mode="webhook")).start(lambda a, m: None)
    assert api.calls == []  # the wrong token was refused; the webhook mistake never reached the network
    assert file_base_url(make_settings()) == "https://api.telegram.org/file/bot"
    assert file_base_url(make_settings(telegram={"base_url": "http://127.0.0.1:8081/bot/"})) == "http://127.0.0.1:8081/file/bot"


async def _echo_command(ctx, args: list[str]) -> Reply:
    """A stand-in feature command: reports what it received, downloading any attachment."""
    parts = [ctx.message.text.split()[0][1:], repr(args)]
    for attachment in ctx.message.attachments:
        try:
            data = await attachment.fetch()
        except FileTooLarge as exc:
            return Reply(str(exc))
        parts.append(f"{attachment.name} {attachment.mime} {len(data)} bytes, starts {data[:13].decode()!r}")
    return Reply(" ".join(parts))


async def _until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_document_without_a_caption_gets_a_hint_not_silence(api, running):
    api.add_file("plain-doc", b"notes", "documents/notes.txt")
    bot, _ = await running()
    upload = api.push(tg.document("plain-doc", "notes.txt", 5, caption=""))["message"]
    await replies_to(api, upload["message_id"])
    await bot.idle()
    (reply,) = sends_replying_to(api, upload["message_id"])
    assert "notes.txt" in final_text(api, reply) and "/kb add" in final_text(api, reply)
    assert api.called("getFile") == []


async def test_a_message_sent_while_the_bot_stops_waits_for_the_next_start(api, running, fake_ollama):
    """Stopping gives the turn under way time to finish; a message sent meanwhile is not fetched
    (and so not confirmed to Telegram), and the next start answers it."""
    fake_ollama.script(Scripted("Slow answer.", delay=3.0), "Answered after the restart.")
    bot, _ = await running()
    api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "slow question")))
    await api.wait_for(lambda: fake_ollama.chat_requests())
    stopping = asyncio.create_task(bot.stop())
    await asyncio.sleep(0.3)  # polling has stopped; the slow turn is still running
    late = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "sent during the restart")))["message"]
    await stopping
    assert any("Slow answer." in text for text in api.messages.values())
    assert [u["message"]["message_id"] for u in api.updates] == [late["message_id"]]  # still Telegram's to deliver
    bot, _ = await running()
    await replies_to(api, late["message_id"])
    await bot.idle()
    assert final_text(api, sends_replying_to(api, late["message_id"])[-1]) == "Answered after the restart."


async def test_a_group_upgraded_to_a_supergroup_keeps_its_knowledge_persona_and_schedules(api, running):
    """Telegram gives the supergroup a new chat id; what was kept under the old one follows it."""
    from kagentbot.bot.schedule import ScheduleBook
    from kagentbot.memory.ingest import from_text
    from kagentbot.persona.store import chat_key

    old, new = -4001, tg.GROUP["id"]
    bot, _ = await running()
    services = bot.services
    await services.memory.add_document(from_text("The team lunch is on Thursdays.", services.settings.memory),
                                       f"chat:telegram:{old}")
    await services.personas.select_persona("telegram:1", "chats", chat_key("telegram", str(old)), "research")
    ScheduleBook(services.settings).add("telegram:111", "telegram", str(old), "every day at 09:00", "lunch today?")
    api.migrated[old] = new  # what Telegram answers about the old group from now on
    api.push(tg.update(tg.message(tg.GROUP, tg.ALICE, migrate_from_chat_id=old)))
    await api.wait_for(lambda: api.called("getUpdates") and not api.updates)
    await bot.idle()
    assert [d.title for d in await services.memory.list_documents([f"chat:telegram:{new}"])] == ["The team lunch is on Thursdays."]
    assert await services.memory.list_documents([f"chat:telegram:{old}"]) == []
    selections = await services.personas.selections()
    assert selections["chats"] == {chat_key("telegram", str(new)): "research"}
    assert [j.chat_id for j in ScheduleBook(services.settings).file.jobs.values()] == [str(new)]
    assert not api.called("sendMessage")  # a service message, not a question


async def test_a_scheduled_question_for_someone_who_blocked_the_bot_is_paused(api, running, fake_ollama, caplog):
    fake_ollama.script("Good morning.")
    bot, _ = await running()
    scheduler = bot.services.scheduler
    spec = scheduler.add("telegram:111", "telegram", str(tg.ALICE["id"]), "every day at 09:00", "morning news?", is_dm=True)
    api.blocked_by.add(tg.ALICE["id"])
    await scheduler.run_job(spec.id)
    await bot.idle()
    assert scheduler.book.file.jobs[spec.id].paused  # not the model run every day for nobody
    assert f"/schedule resume {spec.id}" in caplog.text


async def test_a_scheduled_question_for_an_upgraded_group_moves_with_it_instead_of_pausing(api, running, fake_ollama):
    """The job fired before the upgrade's service message was seen: Telegram's "upgraded to a
    supergroup" answer carries the new id, and the group's things move to it."""
    fake_ollama.script("Lunch is at noon.", "Lunch is at noon.")
    old, new = -4002, tg.GROUP["id"]
    api.migrated[old] = new
    bot, _ = await running()
    scheduler = bot.services.scheduler
    spec = scheduler.add("telegram:111", "telegram", str(old), "every day at 11:00", "lunch?")
    await scheduler.run_job(spec.id)
    await bot.idle()
    moved = scheduler.book.file.jobs[spec.id]
    assert (moved.chat_id, moved.paused) == (str(new), False)
    await scheduler.run_job(spec.id)
    await bot.idle()
    assert [str(p["chat_id"]) for p in api.called("sendMessage")][-1] == str(new)



async def test_a_mention_kept_waiting_for_the_model_sees_its_place_then_the_notice_goes(api, telegram_settings, start_bot, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("Answered.", delay=0.6)
    settings = telegram_settings()
    settings.llm.max_connections = 1  # one model slot: Bob's question waits for Alice's
    settings.limits.queue_notice_after = 0.2
    adapter = TelegramAdapter(settings)
    bot = await start_bot(settings, [adapter])
    api.push(tg.group_mention("first"))
    while fake_ollama.in_flight < 1:  # the first question holds the only slot
        await asyncio.sleep(0.01)
    second = api.push(tg.group_mention("second", sender=tg.BOB))["message"]
    await api.wait_for(lambda: any(p["text"].startswith("⏳") for p in sends_replying_to(api, second["message_id"])))
    await bot.idle()
    assert list(api.deleted.values()) == ["⏳ Queued — you're next."]
    assert [final_text(api, p) for p in sends_replying_to(api, second["message_id"]) if not p["text"].startswith("⏳")] == ["Answered."]
