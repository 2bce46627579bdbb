"""The ops endpoint of a running bot (`kagentbot run` with KAGENTBOT_OPS__PORT), driven
through the real Telegram adapter against the fake Bot API and the real ollama client against
the fake Ollama server."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from urllib.parse import urlsplit

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kagentbot.cli.runner import run_bot
from kagentbot.ops import metrics
from kagentbot.ops.checks import check_ops
from kagentbot.ops.logs import JsonFormatter
from tests.fakes.ollama_server import Scripted
from tests.telegram import updates as tg
from tests.telegram.test_telegram_adapter import api, replies_to  # noqa: F401 (fixtures)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def until(port: int, path: str, status: int, timeout: float = 10.0) -> dict:
    """The endpoint's JSON once it answers `status` (the bot starts, or a check changes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            got, text = await get(port, path)
        except aiohttp.ClientConnectionError:
            got, text = 0, ""
        if got == status:
            return json.loads(text)
        if loop.time() > deadline:
            raise AssertionError(f"{path} answered {got} {text!r}, not {status}")
        await asyncio.sleep(0.05)


def sample(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


@pytest.fixture
def ops_settings(api, fake_ollama, make_settings):
    def build(**ops):
        telegram = {"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0}
        return make_settings(llm={"host": fake_ollama.url, "mode": "native"}, telegram=telegram,
                             ops={"port": free_port(), **ops})

    return build


@pytest.fixture
def turn_log():
    """JSON lines of the turn logger, as the bot writes them with KAGENTBOT_LOG__FORMAT=json."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kagentbot.turn")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_health_readiness_and_metrics_follow_the_bot(api, ops_settings, fake_ollama, turn_log):
    settings = ops_settings()
    port = settings.ops.port
    stop = asyncio.Event()
    running = asyncio.create_task(run_bot(settings, stop=stop))
    try:
        ready = await until(port, "/readyz", 200)
        assert {c["name"]: c["ok"] for c in ready["checks"]} == {
            "bot": True, "telegram": True, "model server": True, "store": True}
        health = await until(port, "/healthz", 200)
        assert health["status"] == "ok" and health["state"] == "running"
        seen = await check_ops(settings)  # what `kagentbot doctor` says meanwhile
        assert seen.level == "ok" and seen.message == f"a running bot answers at http://127.0.0.1:{port}: ready"

        # the model server goes away: not ready, and the reason says which check failed
        ollama_port = urlsplit(fake_ollama.url).port
        await fake_ollama.stop()
        down = await until(port, "/readyz", 503)
        assert down["ready"] is False and down["reason"].startswith("model server: cannot reach the model server")
        assert (await get(port, "/healthz"))[0] == 200  # alive all the same
        await fake_ollama.start(ollama_port)
        await until(port, "/readyz", 200)

        # a turn moves the counters
        _, before = await get(port, "/metrics")
        fake_ollama.script(Scripted("Hi from the bot."))
        message = api.push(tg.update(tg.message(tg.private_chat(tg.ALICE), tg.ALICE, "hello")))["message"]
        await replies_to(api, message["message_id"])
        await asyncio.sleep(0.2)  # the turn's last edit and its record follow the first reply
        status, after = await get(port, "/metrics")
    finally:
        stop.set()
        assert await asyncio.wait_for(running, 10) == 0
    assert status == 200
    turns = dict(name="kagentbot_turns_total", platform="telegram", outcome="answered")
    assert sample(before, **turns) == 0 and sample(after, **turns) == 1
    assert sample(after, "kagentbot_turn_seconds_count", platform="telegram") == 1
    assert sample(after, "kagentbot_turn_first_step_seconds_count", platform="telegram") == 1
    assert sample(after, "kagentbot_llm_calls_total", call="stream_reply", outcome="ok") == 1  # native: it answered at once, streamed
    assert sample(after, "kagentbot_llm_tokens_total", direction="output") == 10  # the fake reports 10
    assert sample(after, "kagentbot_messages_sent_total", platform="telegram") > sample(
        before, "kagentbot_messages_sent_total", platform="telegram")
    assert sample(after, "kagentbot_platform_connected", platform="telegram") == 1
    assert sample(after, "kagentbot_llm_slots_in_use") == 0
    assert metrics.live() is None  # the figures end with the run
    (line,) = [json.loads(text) for text in turn_log]
    assert line["platform"] == "telegram" and line["outcome"] == "answered" and len(line["turn_id"]) == 12
    assert line["turn_ms"] > 0 and line["first_step_ms"] <= line["turn_ms"]
    # what a line holds, and nothing of who asked
    assert set(line) == {"ts", "level", "logger", "message", "turn_id", "platform", "outcome", "turn_ms",
                         "first_step_ms", "steps"}


async def test_metrics_can_be_turned_off_and_health_stays(api, ops_settings):
    settings = ops_settings(metrics=False)
    stop = asyncio.Event()
    running = asyncio.create_task(run_bot(settings, stop=stop))
    try:
        await until(settings.ops.port, "/readyz", 200)
        status, text = await get(settings.ops.port, "/metrics")
    finally:
        stop.set()
        assert await asyncio.wait_for(running, 10) == 0
    assert status == 404 and "KAGENTBOT_OPS__METRICS" in text


async def test_a_busy_ops_port_is_a_clear_error(api, ops_settings, capsys):
    settings = ops_settings()
    with socket.socket() as taken:
        taken.bind((settings.ops.listen, settings.ops.port))
        taken.listen()
        assert await run_bot(settings, stop=asyncio.Event()) == 1
    assert "KAGENTBOT_OPS__PORT to a free port" in capsys.readouterr().err
