"""Replicas on Telegram, with the real python-telegram-bot against the fake Bot API: an update
posted to both replicas' webhooks is answered once; an update that cannot be stored in Redis is
answered 500 (not acknowledged), so that Telegram's next delivery is answered; and the polling
leader does not confirm an update (the next getUpdates' offset) before it is stored."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pydantic import SecretStr

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from kagentbot.config.settings import ClusterSettings
from tests.fakes.ollama_server import Scripted
from tests.fakes.redis_server import RedisServer, free_port
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI

SECRET = "s3cret"


@pytest.fixture
async def api():
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as server:
        yield server


@pytest.fixture
def telegram_replica(api, fake_ollama, make_settings, start_bot, cluster_settings, redis_client, tmp_path):
    async def start(name: str, cluster: ClusterSettings | None = None) -> str:
        """Starts a replica; returns the URL its webhook listens on."""
        shared = (cluster or cluster_settings).model_copy(update={"replica_id": name, "poll_seconds": 0.2})
        port = free_port()
        section = {"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0,
                   "mode": "webhook", "webhook_url": "https://bot.example.org/telegram/hook", "webhook_secret": SECRET,
                   "listen": "127.0.0.1", "port": port}
        settings = make_settings(data_dir=tmp_path / name, llm={"host": fake_ollama.url, "mode": "native"},
                                 telegram=section, cluster=shared)
        await start_bot(settings, [TelegramAdapter(settings)])
        return f"http://127.0.0.1:{port}/telegram/hook"

    return start


async def deliver(url: str, update: dict) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
            return response.status


def answers(api: FakeBotAPI) -> list[str]:
    return [api.shown(p) for p in api.called("sendMessage")]


async def test_an_update_delivered_to_both_replicas_is_answered_once(api, telegram_replica, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("Once.", delay=0.1)
    first, second = await telegram_replica("a"), await telegram_replica("b")
    update = {"update_id": 900_001, **tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "hello replicas"))}
    assert [await deliver(first, update), await deliver(second, update), await deliver(second, update)] == [200] * 3
    await api.wait_for(lambda: "Once." in answers(api))
    await asyncio.sleep(0.6)  # time for a second answer, were there one
    assert answers(api) == ["Once."]


async def test_an_update_that_cannot_be_stored_is_refused_and_its_redelivery_answered(
        api, telegram_replica, fake_ollama, cluster_settings, tmp_path):
    fake_ollama.responder = lambda body: Scripted("Stored this time.")
    server = RedisServer(tmp_path / "own-redis").start()
    try:
        hook = await telegram_replica("a", cluster_settings.model_copy(update={"redis_url": SecretStr(server.url)}))
        server.stop()
        update = {"update_id": 900_002, **tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "are you there?"))}
        assert await deliver(hook, update) == 500  # not acknowledged: Telegram delivers it again
        await asyncio.sleep(0.3)
        assert answers(api) == []
        server.start()
        assert await deliver(hook, update) == 200
        await api.wait_for(lambda: "Stored this time." in answers(api))
        assert answers(api) == ["Stored this time."]
    finally:
        server.stop()


async def test_the_polling_leader_confirms_an_update_only_once_it_is_stored(
        api, fake_ollama, make_settings, start_bot, cluster_settings, tmp_path):
    fake_ollama.responder = lambda body: Scripted("Kept for you.")
    server = RedisServer(tmp_path / "own-redis").start()
    try:
        shared = cluster_settings.model_copy(update={"redis_url": SecretStr(server.url), "replica_id": "poller",
                                                     "poll_seconds": 0.2})
        section = {"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0}
        settings = make_settings(data_dir=tmp_path / "poller", llm={"host": fake_ollama.url, "mode": "native"},
                                 telegram=section, cluster=shared)
        adapter = TelegramAdapter(settings)
        await start_bot(settings, [adapter])
        await api.wait_for(adapter.polling)
        server.stop()
        update = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "remember this")))
        polls = len(api.called("getUpdates"))
        await api.wait_for(lambda: len(api.called("getUpdates")) > polls)  # fetched, could not be stored
        await asyncio.sleep(1.5)  # a poll or two more, were the leader still polling
        assert api.updates and api.updates[0]["update_id"] == update["update_id"]  # still Telegram's
        assert all((call.get("offset") or 0) <= update["update_id"] for call in api.called("getUpdates"))
        assert answers(api) == []
        server.start()
        await api.wait_for(lambda: "Kept for you." in answers(api))
        await api.wait_for(lambda: not api.updates)  # confirmed by the next offset once stored
        await asyncio.sleep(0.5)  # time for a second answer, were there one
        assert answers(api) == ["Kept for you."]
    finally:
        server.stop()
