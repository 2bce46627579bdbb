"""`kagentbot run` with Slack credentials starts the Slack adapter and answers through it."""

from __future__ import annotations

import asyncio

from kagentbot.cli.runner import run_bot
from kagentbot.cli.doctor import check_platforms
from tests.fakes.ollama_server import Scripted
from tests.slack import fake_slack as slack
from tests.slack.test_slack_adapter import api, slack_settings  # noqa: F401 (fixtures)


async def test_run_starts_slack_answers_and_stops_cleanly(api, slack_settings, fake_ollama, capsys):
    fake_ollama.script(Scripted("Hi from the bot."))
    stop = asyncio.Event()
    running = asyncio.create_task(run_bot(slack_settings(), stop=stop))
    question = slack.direct_message("hello")
    await api.push(slack.event_callback(question))
    await api.wait_for(lambda: api.messages)
    stop.set()
    assert await asyncio.wait_for(running, 10) == 0
    assert "running on slack" in capsys.readouterr().err
    assert api.messages[0].text == "Hi from the bot." and api.messages[0].thread_ts == question["ts"]


async def test_run_with_a_rejected_token_says_so_and_exits(api, slack_settings, capsys):
    assert await run_bot(slack_settings(bot_token="xoxb-revoked"), stop=asyncio.Event()) == 1
    err = capsys.readouterr().err
    assert "Slack rejected the bot token" in err and "KAGENTBOT_SLACK__BOT_TOKEN" in err and "Traceback" not in err


def test_doctor_checks_the_slack_settings(make_settings):
    findings = check_platforms(make_settings(slack={"bot_token": "xoxb-1", "mode": "http"}))
    assert any(f.level == "fail" and "SIGNING_SECRET" in f.fix for f in findings)
    findings = check_platforms(make_settings(slack={"bot_token": "nonsense", "app_token": "xapp-1"}))
    assert any(f.level == "fail" and "xoxb-" in f.message for f in findings)
    findings = check_platforms(make_settings(slack={"bot_token": "xoxb-1", "app_token": "xapp-1"}))
    assert {f.level for f in findings} == {"ok"}


def test_the_app_manifest_asks_for_exactly_what_the_adapter_uses():
    from pathlib import Path

    import yaml

    from kagentbot.bot.app import default_router

    manifest = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "slack-manifest.yml").read_text())
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert sorted(settings["event_subscriptions"]["bot_events"]) == ["app_mention", "message.im"]
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "app_mentions:read", "chat:write", "commands", "files:read", "im:history"]
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(commands) == sorted(f"/{name}" for name in default_router().names())
    # unescaped, Slack sends "@bob" (a display name) instead of <@U0BOB|bob>, and /persona set
    # would give the persona to a user key that matches nobody
    escaped = {c["command"] for c in manifest["features"]["slash_commands"] if c.get("should_escape")}
    assert "/persona" in escaped
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


async def test_run_warns_at_start_when_the_model_server_is_down(api, slack_settings, make_settings, capsys):
    settings = slack_settings().model_copy(update={"llm": make_settings(llm={"host": "http://127.0.0.1:9", "connect_timeout": 1}).llm})
    stop = asyncio.Event()
    running = asyncio.create_task(run_bot(settings, stop=stop))
    err = ""
    for _ in range(100):
        err += capsys.readouterr().err
        if "warning" in err:
            break
        await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(running, 10) == 0
    assert "running on slack" in err and "warning: cannot reach the model server (Ollama)" in err and "(at http://127.0.0.1:9)" in err
