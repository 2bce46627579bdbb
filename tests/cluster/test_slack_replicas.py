"""Replicas behind Slack Socket Mode, with the real slack-bolt against the fake Slack: an event
pushed to every replica's connection is answered once, and a replica that cannot store an event
in Redis does not acknowledge it, so that Slack's retry is answered once Redis is back."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from kagentbot.adapters.slack_adapter import SlackAdapter
from kagentbot.config.settings import ClusterSettings
from tests.fakes.ollama_server import Scripted
from tests.fakes.redis_server import RedisServer
from tests.slack import fake_slack as slack
from tests.slack.fake_slack import FakeSlack
from tests.slack.test_slack_adapter import free_port, post_event


@pytest.fixture
async def api():
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def slack_replica(api, fake_ollama, make_settings, start_bot, cluster_settings, redis_client, tmp_path):
    async def start(name: str, cluster: ClusterSettings | None = None, **extra):
        shared = (cluster or cluster_settings).model_copy(update={"replica_id": name, "poll_seconds": 0.2})
        section = {"bot_token": slack.BOT_TOKEN, "app_token": slack.APP_TOKEN, "api_url": api.api_url,
                   "send_interval": 0, "edit_interval": 0, **extra}
        settings = make_settings(data_dir=tmp_path / name, llm={"host": fake_ollama.url, "mode": "native"},
                                 slack=section, cluster=shared)
        adapter = SlackAdapter(settings)
        return await start_bot(settings, [adapter]), adapter

    return start


async def test_an_event_pushed_to_every_replica_is_answered_once(api, slack_replica, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("Hello from one replica.", delay=0.1)
    await slack_replica("a")
    await slack_replica("b")
    event = slack.direct_message("hello?")
    envelope = await api.push(slack.event_callback(event))  # reaches both connections
    await api.wait_for(lambda: envelope in api.acks)
    await api.wait_for(lambda: any(m.text == "Hello from one replica." for m in api.messages))
    await asyncio.sleep(0.8)  # time for a second answer, were there one
    assert [m.text for m in api.messages] == ["Hello from one replica."]
    assert len(fake_ollama.chat_requests()) == 1


async def test_an_event_that_cannot_be_stored_is_not_acknowledged_and_its_retry_is_answered(
        api, slack_replica, fake_ollama, cluster_settings, tmp_path, caplog):
    fake_ollama.responder = lambda body: Scripted("Back again.")
    server = RedisServer(tmp_path / "own-redis").start()
    try:
        await slack_replica("a", cluster_settings.model_copy(update={"redis_url": SecretStr(server.url)}))
        server.stop()
        event = slack.direct_message("anyone there?")
        lost = await api.push(slack.event_callback(event))
        await asyncio.sleep(1.5)
        assert lost not in api.acks and not api.messages
        assert "NOT acknowledged" in caplog.text
        server.start()
        retried = await api.push(slack.event_callback(event))  # Slack delivers it again
        await api.wait_for(lambda: retried in api.acks)
        await api.wait_for(lambda: any(m.text == "Back again." for m in api.messages))
        assert [m.text for m in api.messages] == ["Back again."]
    finally:
        server.stop()


async def test_http_events_that_cannot_be_stored_answer_500_and_their_retry_is_answered(
        api, slack_replica, fake_ollama, cluster_settings, tmp_path):
    fake_ollama.responder = lambda body: Scripted("Over HTTP.")
    server = RedisServer(tmp_path / "own-redis").start()
    try:
        _, adapter = await slack_replica("a", cluster_settings.model_copy(update={"redis_url": SecretStr(server.url)}),
                                         mode="http", signing_secret=slack.SIGNING_SECRET, listen="127.0.0.1",
                                         port=free_port())
        server.stop()
        payload = slack.event_callback(slack.direct_message("over http?"))
        status, _, _ = await post_event(adapter, payload)
        assert status == 500 and not api.messages  # not acknowledged: Slack retries
        server.start()
        status, _, _ = await post_event(adapter, payload)  # Slack's retry
        assert status == 200
        await api.wait_for(lambda: any(m.text == "Over HTTP." for m in api.messages))
        assert [m.text for m in api.messages] == ["Over HTTP."]
    finally:
        server.stop()
