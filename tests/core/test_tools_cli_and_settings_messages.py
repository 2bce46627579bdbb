"""What a new user meets first: `tools list` shows the arguments, `tools run` refuses ones a tool
does not take and searches the console user's knowledge base, and settings errors point at
where the bad value really is."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import pytest

from kagentbot.cli import kb as kb_cli
from kagentbot.cli import tools as tools_cli
from kagentbot.cli import main
from kagentbot.config.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kagentbot")
    sub = parser.add_subparsers(dest="command")
    tools_cli.register(sub)
    kb_cli.register(sub)
    return parser.parse_args(list(argv))


async def kagentbot(env: dict, *args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kagentbot.cli", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def cli_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGENTBOT_") and k != "OLLAMA_HOST"}
    env.update(KAGENTBOT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), NO_COLOR="1")
    return env


# ----- tools list -----

async def test_list_shows_each_tools_arguments_within_80_columns(make_settings, capsys):
    settings = make_settings(tools={"custom": [str(ROOT / "examples" / "my_tools.py")]})
    assert await tools_cli.run(parse("tools", "list"), settings) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert 'get_calendar_info(start_date: str, end_date: str, country: str = "CN")' in lines
    assert "time_delta(start_time: str, end_time: str)" in lines
    assert "get_solar_terms_info(year: int)" in lines
    assert 'greet_user(name: str = "")' in lines
    assert "convert_units(value: float, from_unit: str, to_unit: str)" in lines
    # the description follows, indented, with the tool's kind
    at = lines.index("time_delta(start_time: str, end_time: str)")
    assert lines[at + 1].startswith("    [offline] Compute the time between two moments")
    web = lines.index("web_search(text: str)")
    assert lines[web + 1].startswith("    [network] Search the web")
    assert max(len(line) for line in lines) <= 80
    # a long signature wraps between arguments, never inside one
    weather = next(i for i, line in enumerate(lines) if line.startswith("get_weather_info("))
    joined = " ".join(line.strip() for line in lines[weather:weather + 2])
    assert 'get_weather_info(location: str, start_date: str = "", end_date: str = "", is_current: str = "no")' in joined


def test_run_help_points_to_the_arguments(capsys):
    with pytest.raises(SystemExit):
        parse("tools", "run", "--help")
    assert "kagentbot tools list" in " ".join(capsys.readouterr().out.split())


# ----- tools run: unknown and missing arguments -----

async def test_an_argument_the_tool_does_not_take_is_refused(make_settings, capsys):
    settings = make_settings()
    code = await tools_cli.run(parse("tools", "run", "time_delta", "start_time=1987-06-24", "end_time=1988-02-26", "foo=1"),
                               settings)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip() == "kagentbot: time_delta does not take 'foo'; it takes start_time: str, end_time: str"
    code = await tools_cli.run(parse("tools", "run", "time_delta", "start_time=1987-06-24"), settings)
    assert code == 2 and "time_delta needs end_time" in capsys.readouterr().err


async def test_the_model_calls_stay_lenient_about_extra_keys(make_settings):
    from datetime import datetime, timezone

    from kagentbot.tools.catalog import build_registry
    from kagentbot.tools.registry import ToolContext

    result = await build_registry(make_settings()).invoke(
        "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26", "foo": 1},
        ToolContext(now=datetime(2026, 11, 25, tzinfo=timezone.utc)))
    assert result.ok and '"total_days":247' in result.text


# ----- tools run kb_search: the console user's knowledge base -----

async def test_kb_search_from_the_cli_reads_the_console_users_documents(make_settings, tmp_path, capsys):
    settings = make_settings()
    document = tmp_path / "players.txt"
    document.write_text("Lionel Messi was born in Rosario on 24 June 1987 and plays as a forward.\n")
    # nothing added yet: no store is created just to search it
    assert await tools_cli.run(parse("tools", "run", "kb_search", "query=Messi", "--user", "alice"), settings) == 0
    assert "has nothing about 'Messi'" in capsys.readouterr().out
    assert not (tmp_path / "data" / "lancedb").exists()

    assert await kb_cli.run(parse("kb", "add", str(document), "--user", "alice"), settings) == 0
    capsys.readouterr()
    assert await tools_cli.run(parse("tools", "run", "kb_search", "query=Messi", "--user", "alice"), settings) == 0
    out = capsys.readouterr().out
    assert "players.txt" in out and "born in Rosario" in out and "no knowledge base" not in out
    # another console user does not see alice's document
    assert await tools_cli.run(parse("tools", "run", "kb_search", "query=Messi", "--user", "bob"), settings) == 0
    out = capsys.readouterr().out
    assert "Rosario" not in out and "has nothing about 'Messi'" in out


# ----- settings messages -----

async def test_bad_variable_without_a_settings_file_names_only_the_variable(cli_env, tmp_path):
    code, out, err = await kagentbot({**cli_env, "KAGENTBOT_LLM__TIMEOUT": "abc"}, "tools", "list", cwd=tmp_path)
    assert code == 2 and out == "" and "Traceback" not in err
    problem = [line for line in err.splitlines() if "llm.timeout" in line]
    assert len(problem) == 1 and "Fix the variable KAGENTBOT_LLM__TIMEOUT." in problem[0]
    assert "kagentbot.toml" not in err


def test_bad_value_in_the_config_file_names_that_file(make_settings, tmp_path, capsys):
    make_settings()
    config = tmp_path / "elsewhere" / "bot.toml"
    config.parent.mkdir()
    config.write_text('[llm]\ntimeout = "abc"\n')
    assert main(["--config", "elsewhere/bot.toml", "tools", "list"]) == 2  # relative to the working folder
    err = capsys.readouterr().err
    assert f"Fix `llm.timeout` in {config.resolve()} or the variable KAGENTBOT_LLM__TIMEOUT." in err
    assert "kagentbot.toml" not in err


def test_bad_value_in_the_default_file_names_its_path(make_settings, tmp_path):
    make_settings()  # runs in tmp_path with a clean environment
    (tmp_path / "kagentbot.toml").write_text("[agent]\nmax_steps = 0\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={})
    assert f"in {(tmp_path / 'kagentbot.toml').resolve()} or the variable KAGENTBOT_AGENT__MAX_STEPS" in str(caught.value)


def test_typo_in_the_file_suggests_the_setting(make_settings, tmp_path, capsys):
    make_settings()
    (tmp_path / "kagentbot.toml").write_text('[llm]\nmodle = "x"\n[lm]\nhost = "y"\n')
    assert main(["tools", "list"]) == 2
    err = capsys.readouterr().err
    assert "Extra inputs" not in err and "Traceback" not in err
    path = (tmp_path / "kagentbot.toml").resolve()
    assert f"  unknown setting `llm.modle` in {path} (did you mean `llm.model`?)" in err.splitlines()
    assert f"  unknown setting `lm` in {path} (did you mean `llm`?)" in err.splitlines()


def test_typo_in_a_variable_suggests_the_setting(make_settings, monkeypatch):
    make_settings()
    monkeypatch.setenv("KAGENTBOT_AGENT__MAX_STESP", "3")
    monkeypatch.setenv("KAGENTBOT_TOOLS__ZZZ", "3")
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={})
    lines = str(caught.value).splitlines()
    assert ("  unknown setting `agent.max_stesp` from the variable KAGENTBOT_AGENT__MAX_STESP "
            "(did you mean `agent.max_steps`?)") in lines
    assert "  unknown setting `tools.zzz` from the variable KAGENTBOT_TOOLS__ZZZ" in lines
