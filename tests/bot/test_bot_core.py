"""The real Bot driven through an in-memory platform, with the real ollama client talking to
the fake Ollama server."""

from __future__ import annotations

import asyncio

import pytest

from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from kagentbot.chat.adapter import Capabilities
from kagentbot.chat.markup import split_text, to_slack, to_telegram_html
from kagentbot.chat.messages import IncomingMessage
from tests.bot.chat_adapter import ChatAdapter
from tests.fakes.ollama_server import Scripted, complete, task

MESSI = task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26")


def ask(text: str, chat: str = "C1", user: str = "U1", message_id: str = "m1", **kw) -> IncomingMessage:
    return IncomingMessage("testchat", chat, user, text, message_id=message_id, mentions_bot=True, **kw)


@pytest.fixture
def running(fake_ollama, make_settings, start_bot):
    async def start(adapter: ChatAdapter | None = None, **settings) -> tuple[Bot, ChatAdapter]:
        chat = adapter or ChatAdapter()
        settings["llm"] = {"host": fake_ollama.url, **settings.get("llm", {})}
        return await start_bot(make_settings(**settings), [chat]), chat

    return start


async def test_steps_then_answer_in_the_thread(running, fake_ollama):
    fake_ollama.script(MESSI, complete(), "Messi is older by 247 days.")
    bot, chat = await running()
    chat.deliver(ask("How many days older is Messi than Antonela?"))
    await bot.idle()
    assert [p.where.thread_id for p in chat.posted] == ["m1", "m1"]
    step, answer = chat.posted
    assert "time_delta" in step.text and step.final.startswith("✅")
    assert "247" in step.final
    assert answer.final == "Messi is older by 247 days."


async def test_one_turn_at_a_time_per_conversation_many_at_once(running, fake_ollama):
    fake_ollama.responder = lambda body: Scripted(body["messages"][-1]["content"].rsplit("GOAL", 1)[-1][-30:], delay=0.2)
    bot, chat = await running(agent={"max_steps": 1}, llm={"host": fake_ollama.url, "mode": "native"})
    for conversation in range(10):
        for turn in range(3):
            chat.deliver(ask(f"conversation {conversation} turn {turn}", chat=f"C{conversation}",
                             user=f"U{conversation}", message_id=f"{conversation}-{turn}", is_dm=True))
    await bot.idle()
    for conversation in range(10):
        answers = [p.final for p in chat.in_chat(f"C{conversation}")]
        assert [f"turn {t}" in a for t, a in enumerate(answers)] == [True, True, True]
    assert fake_ollama.max_in_flight > 1  # the conversations did not wait for each other


async def test_mentions_in_one_channel_open_parallel_threads(running, fake_ollama):
    fake_ollama.responder = lambda body: Scripted("answer", delay=0.3)
    bot, chat = await running(llm={"host": fake_ollama.url, "mode": "native"})
    for n in range(4):
        chat.deliver(ask(f"question {n}", message_id=f"m{n}"))
    await bot.idle()
    assert fake_ollama.max_in_flight > 1
    assert sorted(p.where.thread_id for p in chat.posted) == ["m0", "m1", "m2", "m3"]


async def test_rate_limited_send_is_retried_not_lost(running, fake_ollama):
    fake_ollama.script("Hello there.")
    fake_ollama.responder = None
    bot, chat = await running(ChatAdapter(rate_limit_first=2), llm={"host": fake_ollama.url, "mode": "native"})
    chat.deliver(ask("hi"))
    await bot.idle()
    assert [p.final for p in chat.posted] == ["Hello there."]


async def test_long_answer_is_split_at_the_platform_limit(running, fake_ollama):
    long_answer = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(12))
    fake_ollama.script(long_answer)
    caps = Capabilities(True, True, 400, 0.0, 0.0, "plain", deletes=True)
    bot, chat = await running(ChatAdapter(caps), llm={"host": fake_ollama.url, "mode": "native"})
    chat.deliver(ask("write a lot"))
    await bot.idle()
    finals = [p.final for p in chat.posted]
    assert len(finals) > 5 and all(len(text) <= 400 for text in finals)
    assert " ".join(" ".join(finals).split()) == " ".join(long_answer.split())


async def test_summary_verbosity_edits_one_steps_message(running, fake_ollama):
    fake_ollama.script(MESSI, task("calendar", "get_calendar_info", start_date="2026-02-17", end_date="2026-02-17"),
                       complete(), "Done.")
    bot, chat = await running(render={"verbosity": "summary"})
    chat.deliver(ask("two steps please"))
    await bot.idle()
    steps, answer = chat.posted
    assert steps.final.count("✅") == 2 and answer.final == "Done."


async def test_off_verbosity_shows_only_the_answer(running, fake_ollama):
    fake_ollama.script(MESSI, complete(), "247 days.")
    bot, chat = await running(render={"verbosity": "off"})
    chat.deliver(ask("Messi?"))
    await bot.idle()
    assert [p.final for p in chat.posted] == ["247 days."]


async def test_unreachable_model_gives_a_readable_error(running, make_settings):
    chat = ChatAdapter()
    bot = Bot(await Services.open(make_settings(llm={"host": "http://127.0.0.1:9", "connect_timeout": 1})), [chat])
    await bot.start()
    chat.deliver(ask("hello?"))
    await bot.idle()
    await bot.stop()
    (error,) = chat.posted
    assert error.text.startswith("⚠️ cannot reach the model server (Ollama)") and "Traceback" not in error.text
    assert "127.0.0.1" not in error.text  # chat sees no internal address


async def test_commands_get_answers_and_unknown_ones_get_help(running):
    bot, chat = await running()
    chat.deliver(ask("/help", message_id="h"))
    await bot.idle()
    chat.deliver(ask("/frobnicate now", message_id="u"))
    await bot.idle()
    help_text = "\n".join(p.text for p in chat.posted if p.where.reply_to == "h")
    unknown_text = "\n".join(p.text for p in chat.posted if p.where.reply_to == "u")
    assert "/help" in help_text and "/kb" in help_text and "/persona" in help_text
    assert unknown_text.startswith("Unknown command /frobnicate") and "/help" in unknown_text
    assert all(len(p.text) <= 500 for p in chat.posted)  # long help is split at the platform's limit


async def test_a_crash_while_handling_is_an_apology_with_an_error_id(running):
    class Broken(ChatAdapter):
        async def destination(self, message):
            raise RuntimeError("boom")

    bot, chat = await running(Broken())
    chat.deliver(ask("hello"))
    await bot.idle()
    (reply,) = chat.posted
    assert reply.text.startswith("Sorry, something went wrong on my side (error id ") and "boom" not in reply.text


def test_markup_conversion():
    text = "**Bold** and *it* with [docs](https://example.com) and `a<b>` & more"
    assert to_slack(text) == "*Bold* and _it_ with <https://example.com|docs> and `a&lt;b&gt;` &amp; more"
    assert to_telegram_html(text) == (
        '<b>Bold</b> and <i>it</i> with <a href="https://example.com">docs</a> and <code>a&lt;b&gt;</code> &amp; more'
    )
    assert to_telegram_html("```py\nx = 1 < 2\n```") == "<pre>x = 1 &lt; 2\n</pre>"


def test_split_text_prefers_paragraphs():
    pieces = split_text("a" * 50 + "\n\n" + "b" * 50, 80)
    assert pieces == ["a" * 50, "b" * 50]
    assert all(len(p) <= 30 for p in split_text("x" * 100, 30))
