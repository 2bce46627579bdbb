"""JSON log lines (KAGENTBOT_LOG__FORMAT=json): one object a line, the turn's id and platform on
every line written inside a turn, and only what the handler's filters let through."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from pathlib import Path

from kagentbot.ops import logs
from kagentbot.ops.logs import JsonFormatter
from tests.fakes.ollama_server import Scripted

ROOT = Path(__file__).resolve().parents[2]


class Redact(logging.Filter):
    """A handler filter of the kind that keeps secrets out of logs: it rewrites the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = record.getMessage().replace("xoxb-secret", "[redacted]")
        record.args = ()
        return True


def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redact())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_a_line_inside_a_turn_carries_its_id_and_platform_and_goes_through_the_filters():
    logger, out = json_logger("kagentbot.test.json")
    token = logs.enter_turn("abc123def456", "slack")
    try:
        logger.warning("token %s refused", "xoxb-secret", extra={"tool": "web_search", "user": "U123"})
    finally:
        logs.leave_turn(token)
    logger.info("outside")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "token [redacted] refused" and "xoxb-secret" not in out.getvalue()
    assert (first["turn_id"], first["platform"], first["tool"]) == ("abc123def456", "slack", "web_search")
    assert "user" not in first  # extras outside the known fields are not written
    assert first["level"] == "WARNING" and first["ts"].endswith("Z")
    assert "turn_id" not in second and second["message"] == "outside"


def test_an_exception_is_part_of_its_line():
    logger, out = json_logger("kagentbot.test.json_exc")
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("it failed")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it failed" and "ValueError: bad value" in record["exception"]


async def test_the_command_writes_json_lines_when_asked(fake_ollama, tmp_path):
    fake_ollama.script(Scripted("Fine, thanks."))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGENTBOT_")}
    env.update(PYTHONPATH=str(ROOT), KAGENTBOT_LOG__FORMAT="json", KAGENTBOT_LOG_LEVEL="DEBUG",
               KAGENTBOT_DATA_DIR=str(tmp_path / "data"), KAGENTBOT_LLM__HOST=fake_ollama.url,
               KAGENTBOT_LLM__MODE="native")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kagentbot.cli", "ask", "how are you?", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    lines = err.decode().splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines)  # each line one JSON object
    assert any(json.loads(line)["logger"].startswith("httpx") for line in lines)


def test_text_stays_the_default(make_settings):
    assert make_settings().log.format == "text"


def test_at_info_a_service_log_is_not_filled_with_every_http_request(monkeypatch, make_settings):
    from kagentbot.config.logs import configure_logging

    httpx_logger = logging.getLogger("httpx")
    monkeypatch.setattr(httpx_logger, "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger("pypdf"), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)  # as basicConfig(level=INFO) leaves it
    handler = configure_logging("INFO", make_settings())
    try:
        assert httpx_logger.getEffectiveLevel() == logging.WARNING
    finally:
        logging.getLogger().removeHandler(handler)
