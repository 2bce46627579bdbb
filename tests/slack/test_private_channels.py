"""Slack private channels and DMs are chats of their own: nothing said or added there reaches a
public channel's prompt (the real slack-bolt on the fake Slack, the fake Ollama's wire)."""

from __future__ import annotations

import json

import pytest

from kagentbot.adapters.slack_adapter import SlackAdapter
from tests.privacy.world import scripted_model
from tests.slack import fake_slack as slack
from tests.slack.fake_slack import FakeSlack

PRIVATE = "C0PRIVATE"  # a private channel: Slack gives it an id like any channel's
PUBLIC = "C0GENERAL"


@pytest.fixture
async def api():
    async with FakeSlack() as server:
        yield server


@pytest.fixture
async def bot(api, fake_ollama, make_settings, start_bot):
    fake_ollama.responder = scripted_model
    settings = make_settings(
        llm={"host": fake_ollama.url, "mode": "kagent"}, agent={"max_steps": 2},
        embed={"backend": "ollama", "model": "kagentlm"},
        slack={"bot_token": slack.BOT_TOKEN, "app_token": slack.APP_TOKEN, "api_url": api.api_url,
               "send_interval": 0, "edit_interval": 0},
    )
    adapter = SlackAdapter(settings)
    return await start_bot(settings, [adapter])


async def ask(api, bot, event) -> None:
    """Deliver a message and wait for the bot's reply to it (a post or, for commands, an ephemeral one)."""
    calls = len(api.calls)
    await api.push(slack.event_callback(event))
    await api.wait_for(lambda: any(c.method in ("chat.postMessage", "chat.postEphemeral") for c in api.calls[calls:]))
    await bot.idle()
    await bot.services.memory.flush()


def wire(fake_ollama, since: int) -> str:
    return json.dumps([body for path, body in fake_ollama.requests[since:] if path == "/api/chat"], ensure_ascii=False)


async def test_a_private_channel_and_a_dm_share_nothing_with_a_public_channel(api, bot, fake_ollama):
    mention = f"<@{slack.BOT_USER_ID}>"
    await ask(api, bot, slack.app_mention(f"{mention} /kb add --scope chat The merger code name is zqdocsecret.",
                                          channel=PRIVATE))
    await ask(api, bot, slack.app_mention(f"{mention} what is the merger code name zqqsecret", channel=PRIVATE))
    await ask(api, bot, slack.direct_message("/kb add My merger notes say zqdocmine."))
    await ask(api, bot, slack.direct_message("what do my merger notes say zqqmine"))

    before = len(fake_ollama.requests)
    await ask(api, bot, slack.app_mention(f"{mention} what is the merger code name zqqpublic", user="U0BOB",
                                          channel=PUBLIC))
    public = wire(fake_ollama, before)
    assert "zqqpublic" in public
    for private in ("zqdocsecret", "zqqsecret", "zqdocmine", "zqqmine"):
        assert private not in public

    before = len(fake_ollama.requests)
    await ask(api, bot, slack.app_mention(f"{mention} the merger code name again zqqagain", channel=PRIVATE))
    again = wire(fake_ollama, before)
    assert "zqdocsecret" in again and "zqqsecret" in again  # the private channel keeps its own memory
    assert "zqdocmine" not in again and "zqqmine" not in again  # and Alice's DM stays hers
