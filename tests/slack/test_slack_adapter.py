"""The real slack-bolt and slack-sdk, pointed at a fake Slack on loopback (Web API, Socket Mode,
signed Events API requests), driving the real Bot with the real ollama client talking to the
fake Ollama server."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import aiohttp
import pytest

from kagentbot.adapters.slack_adapter import SlackAdapter, _plain_text, configured
from kagentbot.bot.app import Bot
from tests.fakes.ollama_server import Scripted, complete, task
from tests.slack import fake_slack as slack
from tests.slack.fake_slack import FakeSlack

MESSI = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def api():
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def slack_settings(api, fake_ollama, make_settings):
    def build(llm_mode: str = "native", render: dict | None = None, memory: dict | None = None, **section):
        values = {"bot_token": slack.BOT_TOKEN, "app_token": slack.APP_TOKEN, "api_url": api.api_url,
                  "send_interval": 0, "edit_interval": 0, **section}
        if values.get("mode") == "http":
            values = {"signing_secret": slack.SIGNING_SECRET, "listen": "127.0.0.1", "port": free_port(), **values}
        return make_settings(llm={"host": fake_ollama.url, "mode": llm_mode}, slack=values,
                             render=render or {}, memory=memory or {})

    return build


@pytest.fixture
def running(slack_settings, start_bot):
    async def start(llm_mode: str = "native", render: dict | None = None, memory: dict | None = None,
                    **section) -> tuple[Bot, SlackAdapter]:
        adapter = SlackAdapter(slack_settings(llm_mode, render, memory, **section))
        return await start_bot(adapter.settings, [adapter]), adapter

    return start


async def post_event(adapter: SlackAdapter, body: dict | bytes, headers: dict | None = None,
                     content_type: str = "application/json") -> tuple[int, str, float]:
    """POST to the bot's events endpoint as Slack does; returns status, body and seconds taken."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = headers or slack.signed_headers(raw, content_type=content_type)
    url = f"http://127.0.0.1:{adapter.settings.slack.port}/slack/events"
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=raw, headers=headers) as response:
            return response.status, await response.text(), time.perf_counter() - started


# -- Socket Mode (the default) ------------------------------------------------------------------
async def test_socket_mode_mention_gets_steps_then_answer_in_its_thread(api, running, fake_ollama):
    fake_ollama.script(MESSI, complete(), "Messi is **older** by 247 days; see [the list](https://example.com/a).")
    bot, adapter = await running(llm_mode="kagent")
    assert [c.method for c in api.calls[:2]] == ["auth.test", "apps.connections.open"]
    assert adapter.bot_user_id == slack.BOT_USER_ID
    event = slack.app_mention(f"<@{slack.BOT_USER_ID}> How many days older is Messi than Antonela?")
    envelope = await api.push(slack.event_callback(event))
    await api.wait_for(lambda: envelope in api.acks)
    await api.wait_for(lambda: len(api.in_thread(event["channel"], event["ts"])) >= 2)
    await bot.idle()
    step, answer = api.in_thread(event["channel"], event["ts"])
    assert step.text.startswith("✅") and "time_delta" in step.text and "247" in step.text
    assert answer.text == "Messi is *older* by 247 days; see <https://example.com/a|the list>."
    assert not answer.broadcast and all(m.thread_ts == event["ts"] for m in api.messages)
    writes = [c for c in api.calls if c.method in ("chat.postMessage", "chat.update")]
    answered = next(i for i, c in enumerate(writes) if c.method == "chat.postMessage" and c.result["ts"] == answer.ts)
    assert all(c.params.get("ts") != step.ts for c in writes[answered:])  # the step was finished before the answer
    prompt = fake_ollama.prompts()[0]
    assert "How many days older is Messi than Antonela?" in prompt and slack.BOT_USER_ID not in prompt


async def test_a_dm_is_answered_in_the_thread_of_the_message_and_our_own_echoes_are_ignored(api, running, fake_ollama):
    fake_ollama.script("Hello Alice.")
    bot, _ = await running()
    own = slack.direct_message("an answer the bot posted", user=slack.BOT_USER_ID, bot_id=slack.BOT_ID)
    edited = slack.direct_message("", subtype="message_changed", hidden=True)
    other_bot = slack.direct_message("beep", user="U0OTHER", bot_id="B0OTHER", subtype="bot_message")
    for event in (own, edited, other_bot):
        await api.push(slack.event_callback(event))
    question = slack.direct_message("hello there")
    await api.push(slack.event_callback(question))
    await api.wait_for(lambda: api.in_thread("D0ALICE", question["ts"]))
    await bot.idle()
    (answer,) = api.messages
    assert answer.text == "Hello Alice." and answer.thread_ts == question["ts"]
    assert len(fake_ollama.chat_requests()) == 1 and "hello there" in fake_ollama.prompts()[0]


async def test_a_follow_up_in_the_thread_continues_that_thread(api, running, fake_ollama):
    fake_ollama.script("First.", "Second.")
    bot, _ = await running()
    first = slack.app_mention(f"<@{slack.BOT_USER_ID}> one")
    await api.push(slack.event_callback(first))
    await api.wait_for(lambda: api.messages)
    follow = slack.app_mention(f"<@{slack.BOT_USER_ID}|kagentbot> two", thread_ts=first["ts"])
    await api.push(slack.event_callback(follow))
    await api.wait_for(lambda: len(api.messages) == 2)
    await bot.idle()
    assert [(m.text, m.thread_ts) for m in api.messages] == [("First.", first["ts"]), ("Second.", first["ts"])]


async def test_code_in_an_answer_is_escaped_so_slack_shows_it_and_pings_nobody(api, running, fake_ollama):
    fake_ollama.script("Use `List<String>` here, not `<!channel>`:\n```\nif a < b && c > d:\n```")
    bot, _ = await running()
    await api.push(slack.event_callback(slack.app_mention(f"<@{slack.BOT_USER_ID}> generics?")))
    await api.wait_for(lambda: api.messages)
    await bot.idle()
    assert api.messages[0].text == ("Use `List&lt;String&gt;` here, not `&lt;!channel&gt;`:\n"
                                    "```if a &lt; b &amp;&amp; c &gt; d:\n```")


async def test_broadcast_answer_shows_the_answer_in_the_channel_too(api, running, fake_ollama):
    fake_ollama.script(MESSI, complete(), "247 days.")
    bot, _ = await running(llm_mode="kagent", render={"broadcast_answer": True})
    event = slack.app_mention(f"<@{slack.BOT_USER_ID}> gap?")
    await api.push(slack.event_callback(event))
    await api.wait_for(lambda: len(api.messages) >= 2)
    await bot.idle()
    assert [m.broadcast for m in api.messages] == [False, True]


async def test_slash_commands_are_acked_at_once_and_answered_privately_by_response_url(api, running):
    bot, _ = await running()
    url = api.response_url()
    envelope = await api.push(slack.slash_command("/kb", "list", url), kind="slash_commands")
    unknown = await api.push(slack.slash_command("/frobnicate", "now", api.response_url()), kind="slash_commands")
    await api.wait_for(lambda: envelope in api.acks and unknown in api.acks and len(api.responses) >= 2)
    await bot.idle()
    assert all(r["response_type"] == "ephemeral" for r in api.responses)
    texts = {r["text"].split("\n")[0] for r in api.responses}
    assert any("Unknown command /frobnicate" in t for t in texts)
    assert not api.messages  # nothing was posted to the channel


async def test_a_file_shared_in_a_dm_with_kb_add_goes_into_that_users_knowledge(api, running, fake_ollama):
    bot, _ = await running()
    file = api.add_file("handbook.md", b"# Leave\n\nEmployees get 27 days of paid leave per year.\n")
    await api.push(slack.event_callback(slack.direct_message("kb add", files=[file])))
    await api.wait_for(lambda: api.messages)
    await bot.idle()
    assert api.downloads == [{"file": file["id"], "token": slack.BOT_TOKEN}]
    assert "handbook.md" in api.messages[0].text
    mine = await bot.services.memory.search(slack_audience("U0ALICE"), "paid leave days", 5)
    theirs = await bot.services.memory.search(slack_audience("U0BOB"), "paid leave days", 5)
    assert any("27 days" in p.text for p in mine) and not theirs


async def test_an_oversized_file_is_refused_with_the_setting_to_change(api, running):
    bot, _ = await running(memory={"max_upload_mb": 1})
    file = api.add_file("big.txt", b"x" * 1_600_000)
    await api.push(slack.event_callback(slack.direct_message("", files=[file])))
    await api.wait_for(lambda: api.messages)
    await bot.idle()
    assert "big.txt: not added" in api.messages[0].text and "1.5 MB" in api.messages[0].text
    assert not api.downloads


async def test_a_file_url_on_another_host_never_gets_the_bot_token(api, running):
    bot, _ = await running()
    file = api.add_file("notes.txt", b"secret notes")
    elsewhere = file["url_private_download"].replace("127.0.0.1", "localhost")  # same server, another host
    file.update(url_private=elsewhere, url_private_download=elsewhere)
    await api.push(slack.event_callback(slack.direct_message("kb add", files=[file])))
    await api.wait_for(lambda: api.messages)
    await bot.idle()
    assert not api.downloads and "not hosted by Slack" in api.messages[0].text


async def test_a_429_from_slack_is_waited_out_and_the_message_still_arrives(api, running, fake_ollama):
    fake_ollama.script("Patient answer.")
    bot, _ = await running()
    api.fail_next("chat.postMessage", times=1, retry_after=1)
    event = slack.app_mention(f"<@{slack.BOT_USER_ID}> hi")
    await api.push(slack.event_callback(event))
    await api.wait_for(lambda: api.messages, timeout=15)
    await bot.idle()
    attempts = api.called("chat.postMessage")
    assert len(attempts) == 2 and [m.text for m in api.messages] == ["Patient answer."]


async def test_a_final_refusal_is_not_retried_and_slacks_own_trouble_is(api, running, fake_ollama):
    fake_ollama.script("Lost answer.", "Second answer.")
    bot, _ = await running()
    api.fail_next("chat.postMessage", times=1, status=200, error="not_in_channel")
    await api.push(slack.event_callback(slack.app_mention(f"<@{slack.BOT_USER_ID}> hi")))
    await api.wait_for(lambda: api.called("chat.postMessage"))
    await bot.idle()
    assert len(api.called("chat.postMessage")) == 1 and not api.messages  # given up at once, not ~7 s of retries
    api.fail_next("chat.postMessage", times=1, status=200, error="internal_error")
    await api.push(slack.event_callback(slack.app_mention(f"<@{slack.BOT_USER_ID}> again")))
    await api.wait_for(lambda: api.messages, timeout=15)
    await bot.idle()
    assert len(api.called("chat.postMessage")) == 3 and [m.text for m in api.messages] == ["Second answer."]


async def test_a_private_command_reply_in_a_channel_is_ephemeral(api, running):
    bot, _ = await running()
    event = slack.app_mention(f"<@{slack.BOT_USER_ID}> /nosuchcommand")
    await api.push(slack.event_callback(event))
    await api.wait_for(lambda: api.ephemeral)
    await bot.idle()
    (shown,) = api.ephemeral
    assert shown["user"] == "U0ALICE" and shown["thread_ts"] == event["ts"] and not api.messages


async def test_wrong_tokens_fail_at_start_with_the_setting_to_fix(api, slack_settings):
    bad_bot = SlackAdapter(slack_settings(bot_token="xoxb-wrong"))
    with pytest.raises(RuntimeError, match="KAGENTBOT_SLACK__BOT_TOKEN"):
        await bad_bot.start(lambda adapter, message: None)
    bad_app = SlackAdapter(slack_settings(app_token="xapp-wrong"))
    with pytest.raises(RuntimeError, match="KAGENTBOT_SLACK__APP_TOKEN"):
        await bad_app.start(lambda adapter, message: None)
    no_app = SlackAdapter(slack_settings(app_token=""))
    with pytest.raises(RuntimeError, match="KAGENTBOT_SLACK__APP_TOKEN"):
        await no_app.start(lambda adapter, message: None)
    assert configured(slack_settings()) and not configured(slack_settings(bot_token=" "))


async def test_a_websocket_that_cannot_be_opened_fails_the_start_instead_of_hanging(api, slack_settings):
    api.socket_url = f"ws://127.0.0.1:{free_port()}/socket"  # nothing listens there
    adapter = SlackAdapter(slack_settings(connect_timeout=1))
    with pytest.raises(RuntimeError, match="KAGENTBOT_SLACK__CONNECT_TIMEOUT"):
        await asyncio.wait_for(adapter.start(lambda adapter, message: None), 15)
    assert adapter._client is None and adapter._socket is None  # stop() closed what start opened


# -- HTTP Events API -----------------------------------------------------------------------------
async def test_http_mode_verifies_the_url_and_rejects_bad_or_stale_signatures(api, running, fake_ollama):
    bot, adapter = await running(mode="http")
    status, text, _ = await post_event(adapter, {"token": "x", "challenge": "3eZbrw1aBm2", "type": "url_verification"})
    assert status == 200 and "3eZbrw1aBm2" in text
    body = json.dumps(slack.event_callback(slack.app_mention(f"<@{slack.BOT_USER_ID}> hi"))).encode()
    forged = slack.signed_headers(body, secret="not-the-secret")
    stale = slack.signed_headers(body, timestamp=int(time.time()) - 6 * 60)
    assert (await post_event(adapter, body, forged))[0] == 401
    assert (await post_event(adapter, body, stale))[0] == 401
    unsigned = {"Content-Type": "application/json"}
    assert (await post_event(adapter, body, unsigned))[0] == 401
    await asyncio.sleep(0.2)
    await bot.idle()
    assert not fake_ollama.requests and not api.messages


async def test_http_mode_acks_before_the_agent_finishes_and_handles_retries_once(api, running, fake_ollama):
    fake_ollama.script(Scripted("Slow answer.", delay=1.5))
    bot, adapter = await running(mode="http")
    event = slack.app_mention(f"<@{slack.BOT_USER_ID}> take your time")
    payload = slack.event_callback(event)
    status, _, _ = await post_event(adapter, payload)
    assert status == 200 and not api.messages  # acknowledged while the model still works
    raw = json.dumps(payload).encode()
    retry = {**slack.signed_headers(raw), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await post_event(adapter, raw, retry))[0] == 200
    await api.wait_for(lambda: api.messages)
    await bot.idle()
    assert [m.text for m in api.messages] == ["Slow answer."] and len(fake_ollama.chat_requests()) == 1


async def test_http_mode_slash_command_as_slack_posts_it(api, running):
    bot, adapter = await running(mode="http")
    fields = slack.slash_command("/help", "", api.response_url(), channel="D0ALICE")
    body = slack.form_body(fields)
    status, _, _ = await post_event(adapter, body, slack.signed_headers(body, content_type="application/x-www-form-urlencoded"))
    assert status == 200
    await api.wait_for(lambda: api.responses)
    await bot.idle()
    assert "/kb" in api.responses[0]["text"] and "/persona" in api.responses[0]["text"]


async def test_http_mode_on_a_busy_port_says_which_setting_to_change(api, slack_settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        adapter = SlackAdapter(slack_settings(mode="http", port=taken.getsockname()[1]))
        with pytest.raises(RuntimeError, match="KAGENTBOT_SLACK__PORT"):
            await adapter.start(lambda adapter, message: None)


def test_slack_text_becomes_plain_text():
    assert _plain_text("add <https://example.com/a?b=1&amp;c=2>") == "add https://example.com/a?b=1&c=2"
    assert _plain_text("see <https://example.com|the site> &lt;now&gt;") == "see the site (https://example.com) <now>"
    assert _plain_text("mail <mailto:a@b.c|a@b.c>, ask <@U0BOB>") == "mail a@b.c, ask <@U0BOB>"


def slack_audience(user: str):
    from kagentbot.memory.types import Audience

    return Audience(user_scope=f"user:slack:{user}")


async def test_a_follow_up_that_overtakes_its_question_is_still_answered_second(api, running, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("answer to " + re.findall(r"question [AB]", body["messages"][-1]["content"])[-1])
    bot, _ = await running()
    first = slack.app_mention(f"<@{slack.BOT_USER_ID}> question A")
    follow = slack.app_mention(f"<@{slack.BOT_USER_ID}> question B", thread_ts=first["ts"], ts=_later(first["ts"]))
    await api.push(slack.event_callback(follow))  # Slack delivered them out of order
    await api.push(slack.event_callback(first))
    await api.wait_for(lambda: len(api.messages) == 2)
    await bot.idle()
    assert [m.text for m in api.messages] == ["answer to question A", "answer to question B"]


def _later(ts: str) -> str:
    seconds, micro = ts.split(".")
    return f"{seconds}.{int(micro) + 1:06d}"


async def test_a_command_reply_past_the_response_urls_five_uses_goes_as_an_ephemeral_message(api, slack_settings):
    from kagentbot.chat.adapter import Destination

    received = []
    adapter = SlackAdapter(slack_settings())
    await adapter.start(lambda a, message: received.append(message))
    try:
        await api.push(slack.slash_command("/kb", "list", api.response_url()), kind="slash_commands")
        await api.wait_for(lambda: received)
        where = Destination(received[0].chat_id, command=received[0].command)
        for n in range(6):
            await adapter.send(where, f"part {n}")
    finally:
        await adapter.stop()
    assert [r["text"] for r in api.responses] == [f"part {n}" for n in range(5)]
    (extra,) = api.ephemeral
    assert extra["text"] == "part 5" and extra["user"] == "U0ALICE" and extra["channel"] == "C0GENERAL"


async def test_a_mention_kept_waiting_for_the_model_sees_its_place_then_the_notice_goes(api, slack_settings, start_bot, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("Answered.", delay=0.6)
    settings = slack_settings()
    settings.llm.max_connections = 1  # one model slot: the second mention waits for the first
    settings.limits.queue_notice_after = 0.2
    adapter = SlackAdapter(settings)
    bot = await start_bot(settings, [adapter])
    first = slack.app_mention(f"<@{slack.BOT_USER_ID}> first", user="U1")
    second = slack.app_mention(f"<@{slack.BOT_USER_ID}> second", user="U2")
    await api.push(slack.event_callback(first))
    while fake_ollama.in_flight < 1:  # the first question holds the only slot
        await asyncio.sleep(0.01)
    await api.push(slack.event_callback(second))
    await api.wait_for(lambda: any(m.text.startswith("⏳") for m in api.in_thread(second["channel"], second["ts"])))
    await bot.idle()
    assert [m.text for m in api.deleted] == ["⏳ Queued — you're next."]
    assert [m.text for m in api.in_thread(second["channel"], second["ts"])] == ["Answered."]
