"""Forged Telegram updates: the webhook takes only requests carrying the secret registered with
setWebhook, and a group's things move to another chat only when Telegram confirms the upgrade."""

from __future__ import annotations

import aiohttp
import pytest

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from kagentbot.memory.ingest import from_text
from kagentbot.persona.store import chat_key
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI
from tests.telegram.test_telegram_adapter import _free_port, replies_to

HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def api():
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as server:
        yield server


@pytest.fixture
def admin_bot(api, fake_ollama, make_settings, start_bot):
    """The real Bot on Telegram, with Alice as an admin (the id a forger would pretend to be)."""

    async def start(**telegram):
        section = {"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0, **telegram}
        settings = make_settings(admins=[f"telegram:{tg.ALICE['id']}"], llm={"host": fake_ollama.url, "mode": "native"},
                                 telegram=section)
        return await start_bot(settings, [TelegramAdapter(settings)])

    return start


async def test_webhook_without_a_configured_secret_registers_one_and_refuses_unsigned_posts(api, admin_bot, fake_ollama):
    fake_ollama.script("Signed and answered.")
    port = _free_port()
    bot = await admin_bot(mode="webhook", webhook_url="https://bot.example.org/hook", listen="127.0.0.1", port=port)
    (hook,) = api.called("setWebhook")
    secret = hook.get("secret_token") or ""
    assert len(secret) >= 32  # made for this start, registered with Telegram
    forged = tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "/persona create name=evil display_name=Evil"))
    forged["update_id"] = 800_000_001
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {HEADER: ""}, {HEADER: "guess"}):
            async with http.post(f"http://127.0.0.1:{port}/hook", json=forged, headers=headers) as refused:
                assert refused.status == 403
        await bot.idle()
        assert [p.persona.name for p in await bot.services.personas.list()] == ["assistant", "research", "zh-assistant"]
        assert api.called("sendMessage") == [] and fake_ollama.chat_requests() == []
        real = tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "hello"))
        real["update_id"] = 800_000_002
        async with http.post(f"http://127.0.0.1:{port}/hook", json=real, headers={HEADER: secret}) as accepted:
            assert accepted.status == 200
    await replies_to(api, real["message"]["message_id"])
    await bot.idle()
    assert [api.shown(p) for p in api.called("sendMessage")] == ["Signed and answered."]


async def test_a_webhook_secret_telegram_would_refuse_is_a_clear_error_at_start(api, admin_bot):
    with pytest.raises(RuntimeError, match="WEBHOOK_SECRET must be 1-256 characters"):
        await admin_bot(mode="webhook", webhook_url="https://bot.example.org/hook", webhook_secret="has spaces!",
                        listen="127.0.0.1", port=_free_port())
    assert api.called("setWebhook") == []


async def test_a_group_move_telegram_does_not_confirm_moves_nothing(api, admin_bot):
    """An update claiming that the victim's group became the attacker's supergroup is checked
    with Telegram (getChat on the old id) before anything moves."""
    victim, attacker = -4100, tg.GROUP["id"]
    bot = await admin_bot()
    services = bot.services
    await services.memory.add_document(from_text("Victim's payroll notes.", services.settings.memory), f"chat:telegram:{victim}")
    await services.personas.select_persona("telegram:1", "chats", chat_key("telegram", str(victim)), "research")
    api.push(tg.update(tg.message(tg.GROUP, tg.BOB, migrate_from_chat_id=victim)))
    await api.wait_for(lambda: api.called("getChat"))
    await api.wait_for(lambda: not api.updates)
    await bot.idle()
    assert [d.title for d in await services.memory.list_documents([f"chat:telegram:{victim}"])] == ["Victim's payroll notes."]
    assert await services.memory.list_documents([f"chat:telegram:{attacker}"]) == []
    assert (await services.personas.selections())["chats"] == {chat_key("telegram", str(victim)): "research"}
