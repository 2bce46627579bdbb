"""The `kagentbot` command as a user runs it: a subprocess, settings from the environment, the
fake Ollama server on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.fakes.ollama_server import FakeModel, FakeOllama, complete, task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGENTBOT_") and k != "OLLAMA_HOST"}
    env.update(KAGENTBOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="200")
    return env


async def kagentbot(env: dict, *args: str, stdin: str | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kagentbot.cli", *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
    return process.returncode, out.decode(), err.decode()


async def test_ask_prints_steps_and_answer(cli_env, fake_ollama):
    fake_ollama.script(task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26"),
                       complete(), "Messi is older by 247 days.")
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url}, "ask", "How many days older is Messi?")
    assert code == 0, err
    assert "1. Messi's age gap" in out and "time_delta(" in out and "total_days" in out
    assert "Messi is older by 247 days." in out


async def test_ask_against_an_unreachable_server_fails_clearly(cli_env):
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": "http://127.0.0.1:9"}, "ask", "hi")
    assert code == 1
    assert "cannot reach the model server (Ollama)" in " ".join((out + err).split())
    assert "LLM server http://127.0.0.1:9" in err  # the log names the host for the operator
    assert "Traceback" not in out + err


async def test_bad_setting_exits_2_naming_the_key(cli_env):
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_AGENT__MAX_STEPS": "many"}, "ask", "hi")
    assert code == 2 and "agent.max_steps" in err and "KAGENTBOT_AGENT__MAX_STEPS" in err


async def test_missing_config_file(cli_env, tmp_path):
    code, _, err = await kagentbot(cli_env, "--config", str(tmp_path / "none.toml"), "ask", "hi")
    assert code == 2 and "does not exist" in err


async def test_config_file_is_read(cli_env, tmp_path, fake_ollama):
    config = tmp_path / "bot.toml"
    config.write_text(f'[llm]\nhost = "{fake_ollama.url}"\nmodel = "qwen2.5"\nmode = "native"\n')
    fake_ollama.script("Hello from qwen.")
    code, out, err = await kagentbot(cli_env, "--config", str(config), "ask", "hi")
    assert code == 0, err
    assert "Hello from qwen." in out and fake_ollama.chat_requests()[0]["model"] == "qwen2.5"


async def test_help_lists_the_commands(cli_env):
    code, out, _ = await kagentbot(cli_env, "--help")
    assert code == 0
    for command in ("ask", "chat", "doctor", "run", "kb", "tools"):
        assert command in out


async def test_doctor_reports_the_model(cli_env):
    async with FakeOllama([FakeModel("kagentlm", context_length=4096)]) as server:
        code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": server.url}, "doctor")
    assert code == 0, out + err
    assert "kagentlm is available" in out and "model holds 4096 tokens but num_ctx is 8192" in out
    assert "KAGENTBOT_LLM__NUM_CTX=4096" in out


async def test_doctor_missing_model_says_how_to_fix(cli_env, fake_ollama):
    code, out, _ = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url, "KAGENTBOT_LLM__MODEL": "llama9"}, "doctor")
    assert code == 1
    flat = " ".join(out.split())
    assert "ollama pull llama9" in flat and "kagentlm" in flat


async def test_doctor_native_mode_needs_tool_support(cli_env, fake_ollama):
    code, out, _ = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url, "KAGENTBOT_LLM__MODE": "native"}, "doctor")
    assert code == 1 and "does not support tool calling" in out


async def test_chat_keeps_the_conversation(cli_env, fake_ollama):
    fake_ollama.script(complete(), "Nice to meet you, Alice.", complete(), "Your name is Alice.")
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url}, "chat",
                                     stdin="I am Alice\nWhat is my name?\n")
    assert code == 0, err
    assert "Nice to meet you, Alice." in out and "Your name is Alice." in out
    assert "User: I am Alice\nAssistant: Nice to meet you, Alice." in fake_ollama.prompts()[2]


async def test_ask_quiet_prints_the_answer_alone_and_an_empty_question_is_refused(cli_env, fake_ollama):
    fake_ollama.script(complete(), "Fifteen days.")
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url}, "ask", "--quiet", "Leave?")
    assert code == 0, err
    assert out == "Fifteen days.\n"
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url}, "ask", "  ")
    assert code == 2 and "ask needs a question" in err and len(fake_ollama.chat_requests()) == 2


async def test_chat_quit_at_once_exits_cleanly_while_the_store_is_still_loading(cli_env):
    """With knowledge on disk, chat starts importing LanceDB and loading the embedder in threads;
    quitting before they finish used to abort the interpreter (exit 134)."""
    code, _, err = await kagentbot(cli_env, "kb", "add", "Employees get fifteen days of paid leave.")
    assert code == 0, err
    for _ in range(3):
        code, _, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": "http://127.0.0.1:9"}, "chat", stdin="quit\n")
        assert (code, "terminate called" in err) == (0, False), err


async def test_kb_add_of_a_path_that_is_no_file_is_an_error_not_a_text(cli_env, tmp_path):
    code, _, err = await kagentbot(cli_env, "kb", "add", str(tmp_path / "missing.txt"))
    assert code == 1 and "no such file" in err and "--text" in err
    code, _, err = await kagentbot(cli_env, "kb", "add", str(tmp_path))
    assert code == 1 and "is a folder" in err
    code, out, err = await kagentbot(cli_env, "kb", "add", "--text", "./release-notes.md")
    assert code == 0 and "added as" in out, err
    code, out, _ = await kagentbot(cli_env, "kb", "list")
    assert out.count("pasted text") + out.count("release-notes") >= 1 and "missing" not in out


async def test_kb_add_in_terminal_chat_reads_the_file(cli_env, tmp_path):
    notes = tmp_path / "leave-policy.txt"
    notes.write_text("Employees get fifteen days of paid annual leave.")
    code, out, err = await kagentbot(cli_env, "chat", stdin=f"/kb add {notes}\n/kb add {tmp_path}/nope.md\n/kb add --scope\n"
                                                             "/kb search annual leave\n")
    assert code == 0, err
    assert "Added leave-policy.txt" in out and "no such file" in out and "--scope needs a value" in out
    assert "fifteen days of paid annual leave" in out
    code, out, _ = await kagentbot(cli_env, "chat", stdin="/help\n")
    assert "Type a question, or a command:" in out and "(or a file path)" in out and "Mention me" not in out


async def test_doctor_on_a_server_without_the_openai_api_says_which_setting(cli_env, fake_ollama):
    env = {**cli_env, "KAGENTBOT_LLM__BACKEND": "openai", "KAGENTBOT_LLM__HOST": fake_ollama.url}
    code, out, err = await kagentbot(env, "doctor")
    flat = " ".join((out + err).split())
    assert code == 1 and "Traceback" not in flat
    assert "✗ LLM server" in flat and "KAGENTBOT_LLM__HOST" in flat


async def test_step_lines_are_not_broken_by_a_narrow_or_piped_terminal(cli_env, fake_ollama):
    fake_ollama.script(task("Messi's age gap", "time_delta", start_time="1987-06-24", end_time="1988-02-26"),
                       complete(), "247 days.")
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__HOST": fake_ollama.url, "COLUMNS": "40"}, "ask", "Messi?")
    assert code == 0, err
    assert any("✓" in line and "total_days" in line for line in out.splitlines()), out


def test_a_reader_that_leaves_early_gets_no_traceback(cli_env):
    import subprocess

    read_end, write_end = os.pipe()
    os.close(read_end)  # like `kagentbot tools list | head -0`: nobody reads stdout
    try:
        done = subprocess.run([sys.executable, "-m", "kagentbot.cli", "tools", "list"], env=cli_env,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and b"Traceback" not in done.stderr, done.stderr.decode()
