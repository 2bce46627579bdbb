"""Secrets never leave the process: not in chat (credentials or addresses in llm.host), not in
the log (tokens in Bot API URLs, userinfo, token-shaped strings, exception text)."""

from __future__ import annotations

import io
import logging

import pytest

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from kagentbot.config.logs import configure_logging
from kagentbot.config.redact import Redactor, redact_url
from tests.bot.chat_adapter import ChatAdapter
from tests.bot.test_bot_core import ask
from tests.fakes.ollama_server import Scripted
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI

PASSWORD = "hunter2-horse-battery"
UNCONFIGURED_BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK_TOKEN = "xoxb-1234567890-abcdefghijklmnop"


@pytest.fixture
def log_stream(make_settings):
    """The process's real log handler (as `kagentbot` installs it), writing into a buffer."""
    root = logging.getLogger()
    level, handlers = root.level, []
    stream = io.StringIO()

    def install(settings):
        handlers.append(configure_logging("DEBUG", settings, stream))
        return stream

    yield install
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_credentials_and_addresses_in_the_llm_host_never_reach_chat(make_settings, log_stream, backend):
    host = f"http://bot:{PASSWORD}@127.0.0.1:9"
    settings = make_settings(llm={"backend": backend, "host": host, "connect_timeout": 1})
    log = log_stream(settings)
    chat = ChatAdapter()
    bot = Bot(await Services.open(settings), [chat])
    await bot.start()
    try:
        chat.deliver(ask("hello?"))
        await bot.idle()
    finally:
        await bot.stop()
    (error,) = chat.posted
    assert "the model server" in error.text
    assert PASSWORD not in error.text and "127.0.0.1" not in error.text and "bot:" not in error.text
    logged = log.getvalue()
    assert "LLM server http://127.0.0.1:9" in logged  # the operator learns which host failed...
    assert PASSWORD not in logged  # ...without its password


async def test_the_telegram_token_and_other_secrets_never_reach_the_debug_log(make_settings, log_stream):
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as api:
        settings = make_settings(telegram={"token": api.token, "base_url": api.base_url})
        log = log_stream(settings)
        adapter = TelegramAdapter(settings, commands=[])
        received = []
        await adapter.start(lambda a, m: received.append(m))
        try:
            api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "hi")))
            await api.wait_for(lambda: len(api.called("getUpdates")) >= 2)
        finally:
            await adapter.stop()
        try:
            raise ConnectionError(f"POST {api.base_url}{api.token}/getMe failed; also {UNCONFIGURED_BOT_TOKEN}")
        except ConnectionError:
            logging.getLogger("some.library").exception("request to https://u:%s@db.internal/x with %s", PASSWORD, SLACK_TOKEN)
    logged = log.getvalue()
    assert "getUpdates" in logged and "<redacted>" in logged  # the Bot API URLs were logged, masked
    assert "Traceback" in logged and "ConnectionError" in logged
    for secret in (api.token, api.token.split(":")[1], UNCONFIGURED_BOT_TOKEN, PASSWORD, SLACK_TOKEN):
        assert secret not in logged


def test_the_redactor_masks_what_it_should_and_leaves_ordinary_text():
    redact = Redactor(["s3cret-signing", "abc"])  # too short to mask safely: ignored
    assert redact("sig s3cret-signing ok abc") == "sig <redacted> ok abc"
    assert redact("http://me:pw@host:1/v1 and https://host/path") == "http://<redacted>@host:1/v1 and https://host/path"
    assert redact("error at 12:30:45, user 42:bob") == "error at 12:30:45, user 42:bob"
    assert redact_url("http://me:pw@host:1/v1") == "http://host:1/v1" and redact_url("http://host/v1") == "http://host/v1"


async def test_a_secret_in_an_answer_is_masked_before_it_reaches_chat(fake_ollama, make_settings):
    """Whatever put it there (a page, a document, a tool's error), a configured secret, URL
    userinfo or a token-shaped string is masked in what the bot posts and edits."""
    token = "xoxb-111-222-SecretSlackToken"
    fake_ollama.script(Scripted(f"Found it: {token}, and http://svc:{PASSWORD}@10.0.0.5/ and {UNCONFIGURED_BOT_TOKEN}.",
                                chunk=4))
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native"}, slack={"bot_token": token})
    chat = ChatAdapter()
    bot = Bot(await Services.open(settings), [chat])
    await bot.start()
    try:
        chat.deliver(ask("what is in the config?"))
        await bot.idle()
    finally:
        await bot.stop()
    shown = [text for posted in chat.posted for text in (posted.text, *posted.edits)]
    assert shown and "Found it: <redacted>" in shown[-1]
    for secret in (token, PASSWORD, UNCONFIGURED_BOT_TOKEN):
        assert all(secret not in text for text in shown)
