"""Telegram's webhook served by every replica behind one load balancer: each replica registers
the same URL and secret at start (setWebhook is idempotent), so whichever replica Telegram's post
reaches accepts it. The real adapter (python-telegram-bot) against the fake Bot API."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI

HOOK = "https://bot.example.org/telegram/hook"


@pytest.fixture
async def api():
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def replica(api: FakeBotAPI, make_settings, port: int, secret: str | None) -> TelegramAdapter:
    telegram = {"token": api.token, "base_url": api.base_url, "mode": "webhook", "webhook_url": HOOK,
                "listen": "127.0.0.1", "port": port, **({"webhook_secret": secret} if secret else {})}
    return TelegramAdapter(make_settings(telegram=telegram, cluster={"enabled": True}))


async def test_every_replica_registers_the_same_webhook_and_accepts_posts_to_it(api, make_settings):
    ports = [_free_port(), _free_port()]
    received: list[tuple[int, str]] = []
    replicas = [replica(api, make_settings, port, "shared-secret") for port in ports]
    try:
        for n, adapter in enumerate(replicas):
            await adapter.start(lambda a, m, n=n: received.append((n, m.text)))
        hooks = api.called("setWebhook")
        assert len(hooks) == 2 and hooks[0] == hooks[1]  # the second registration changes nothing
        assert hooks[0]["url"] == HOOK and hooks[0]["secret_token"] == "shared-secret"
        async with aiohttp.ClientSession() as http:
            for n, port in enumerate(ports):  # the load balancer sends one update to each replica
                update = tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, f"to replica {n}"))
                update["update_id"] = 800_000_000 + n
                async with http.post(f"http://127.0.0.1:{port}/telegram/hook", json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": "shared-secret"}) as answer:
                    assert answer.status == 200
        assert sorted(received) == [(0, "to replica 0"), (1, "to replica 1")]
    finally:
        for adapter in replicas:
            await adapter.stop()
    assert api.called("deleteWebhook") == []  # a replica stopping leaves the webhook to the others


async def test_replicas_on_a_webhook_need_one_shared_secret(api, make_settings):
    with pytest.raises(RuntimeError, match="set KAGENTBOT_TELEGRAM__WEBHOOK_SECRET to one secret shared by all"):
        await replica(api, make_settings, _free_port(), None).start(lambda a, m: None)
    assert api.calls == []
