"""Slack Socket Mode with replicas: each replica opens its own connection with the same app
token (Slack allows up to 10 per app) and Slack hands each event to one of them. The real
adapter (slack-bolt) against the fake Slack, which here routes each envelope to one socket."""

from __future__ import annotations

import json
import uuid

import pytest

from kagentbot.adapters.slack_adapter import SlackAdapter
from tests.slack import fake_slack as slack
from tests.slack.fake_slack import FakeSlack


@pytest.fixture
async def api():
    async with FakeSlack() as server:
        yield server


async def send_to(api: FakeSlack, socket: int, payload: dict) -> str:
    """One envelope to one connection, as Slack routes it (the fake's push goes to every one)."""
    envelope_id = str(uuid.uuid4())
    await api._sockets[socket].send_str(json.dumps({"envelope_id": envelope_id, "payload": payload, "type": "events_api",
                                                    "accepts_response_payload": False, "retry_attempt": 0,
                                                    "retry_reason": ""}))
    return envelope_id


async def test_each_replica_holds_its_own_socket_mode_connection_and_takes_what_reaches_it(api, make_settings):
    section = {"bot_token": slack.BOT_TOKEN, "app_token": slack.APP_TOKEN, "api_url": api.api_url}
    settings = make_settings(slack=section, cluster={"enabled": True})
    received: list[tuple[int, str]] = []
    replicas = [SlackAdapter(settings) for _ in range(3)]
    try:
        for n, adapter in enumerate(replicas):
            await adapter.start(lambda a, m, n=n: received.append((n, m.text)))
            await api.wait_for(lambda n=n: len(api._sockets) == n + 1)
        assert len(api.called("apps.connections.open")) == 3
        envelopes = [await send_to(api, n, slack.event_callback(slack.direct_message(f"to connection {n}"))) for n in range(3)]
        await api.wait_for(lambda: all(e in api.acks for e in envelopes) and len(received) == 3)
        # sockets are listed in the order the replicas connected
        assert sorted(received) == [(0, "to connection 0"), (1, "to connection 1"), (2, "to connection 2")]
    finally:
        for adapter in replicas:
            await adapter.stop()
