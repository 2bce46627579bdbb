"""Settings from file and environment; tool schemas from signatures; the offline tools' facts."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from kagentbot.config.settings import SettingsError, load_settings
from kagentbot.tools.registry import ToolContext, ToolRegistry, tool
from kagentbot.tools.timetools import TIME_TOOLS

CTX = ToolContext(now=datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc))


def test_environment_overrides_the_file_and_nests(tmp_path, monkeypatch):
    config = tmp_path / "k.toml"
    config.write_text('admins = ["slack:U1"]\n[llm]\nmodel = "from-file"\nnum_ctx = 4096\n[tools]\nenabled = ["time_delta"]\n')
    monkeypatch.setenv("KAGENTBOT_LLM__MODEL", "from-env")
    monkeypatch.setenv("KAGENTBOT_ADMINS", "slack:U1, telegram:42")
    settings = load_settings(config, environ={})
    assert settings.llm.model == "from-env" and settings.llm.num_ctx == 4096
    assert settings.admins == ["slack:U1", "telegram:42"] and settings.is_admin("telegram:42")
    assert settings.tools.enabled == ["time_delta"]


def test_ollama_host_default_and_override(make_settings, monkeypatch):
    assert make_settings().llm.host == "http://127.0.0.1:11434"
    assert load_settings(environ={"OLLAMA_HOST": "gpu-box:11434"}).llm.host == "http://gpu-box:11434"
    monkeypatch.setenv("KAGENTBOT_LLM__HOST", "http://other:1/")
    assert load_settings(environ={"OLLAMA_HOST": "gpu-box:11434"}).llm.host == "http://other:1"


@pytest.mark.parametrize("key,value,name", [
    ("KAGENTBOT_LLM__MODE", "chatty", "llm.mode"),
    ("KAGENTBOT_LLM__BACKEND", "tgi", "llm.backend"),
    ("KAGENTBOT_AGENT__MAX_STEPS", "0", "agent.max_steps"),
    ("KAGENTBOT_EMBED__BACKEND", "magic", "embed.backend"),
])
def test_invalid_values_name_the_key_and_variable(make_settings, monkeypatch, key, value, name):
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={})
    assert name in str(caught.value) and key in str(caught.value)


def test_unknown_key_in_the_file_is_refused(tmp_path, make_settings):
    config = tmp_path / "k.toml"
    config.write_text("[llm]\nmodle = 'typo'\n")
    with pytest.raises(SettingsError, match="llm.modle"):
        load_settings(config, environ={})


def test_broken_toml_is_a_clear_error(tmp_path, make_settings):
    config = tmp_path / "k.toml"
    config.write_text("[llm\nmodel=")
    with pytest.raises(SettingsError, match="could not read"):
        load_settings(config, environ={})


async def test_schema_comes_from_signature_and_docstring():
    @tool(name="lookup", timeout=3)
    async def look_up(ctx: ToolContext, query: str, limit: int = 5, exact: bool = False) -> str:
        """Find things in the catalogue.

        Args:
            query: words to look for
            limit: how many results at most
            exact: match whole phrases only
        """
        return f"{query}|{limit}|{exact}|{ctx.now.year}"

    registry = ToolRegistry([look_up])
    spec = registry.get("lookup").function_spec()
    assert spec["description"] == "Find things in the catalogue."
    assert spec["parameters"]["required"] == ["query"]
    assert spec["parameters"]["properties"]["limit"] == {"default": 5, "description": "how many results at most", "type": "integer"}
    assert "ctx" not in spec["parameters"]["properties"]
    result = await registry.invoke("lookup", {"query": "x", "limit": "7", "junk": 1}, CTX)
    assert result.ok and result.text == "x|7|False|2026"
    bad = await registry.invoke("lookup", {"limit": "many"}, CTX)
    assert not bad.ok and "query: Field required" in bad.text and "limit" in bad.text


async def test_output_is_truncated_to_the_budget():
    @tool
    async def chatty() -> str:
        """Talk a lot."""
        return "blah " * 1000

    result = await ToolRegistry([chatty]).invoke("chatty", {}, CTX, max_chars=100)
    assert len(result.text) == 100 and result.text.endswith("…[truncated]")


def test_sync_functions_are_refused():
    with pytest.raises(TypeError, match="must be an async function"):
        tool(lambda: None)


async def invoke(name: str, **args) -> str:
    result = await ToolRegistry(TIME_TOOLS).invoke(name, args, CTX)
    assert result.ok, result.text
    return result.text


async def test_time_delta_facts():
    assert '"total_days":247' in await invoke("time_delta", start_time="1987-06-24", end_time="1988-02-26")
    reverse = await invoke("time_delta", start_time="1988-02-26", end_time="1987-06-24")
    assert '"total_days":-247' in reverse and "end is before start" in reverse
    hours = await invoke("time_delta", start_time="2026-01-01 08:00:00", end_time="2026-01-02 20:30:00")
    assert '"total_days":1' in hours and '"extra_hours":12.5' in hours
    assert '"span":"38 years 8 months 1 days"' in await invoke("time_delta", start_time="1961-09-27", end_time="2000-05-28")


async def test_calendar_facts():
    text = await invoke("get_calendar_info", start_date="2026-02-17", end_date="2026-02-17")
    assert "正月初一" in text and "春节" in text and "Tuesday" in text
    assert "Thanksgiving" in await invoke("get_calendar_info", start_date="2026-11-26", end_date="2026-11-26", country="US")
    assert "make-up work day" in await invoke("get_calendar_info", start_date="2026-02-14", end_date="2026-02-14")


async def test_solar_terms_of_2027():
    text = await invoke("get_solar_terms_info", year=2027)
    lines = text.splitlines()[1:]
    assert len(lines) == 24 and "2027-02-04 立春 (Start of Spring)" in lines
    assert lines[0].startswith("2027-01-05 小寒") and lines[-1].startswith("2027-12-22 冬至")


async def test_current_time_in_a_zone():
    assert (await invoke("get_current_time", timezone="Asia/Shanghai")).startswith("2026-11-25 17:00:00 CST")
    result = await ToolRegistry(TIME_TOOLS).invoke("get_current_time", {"timezone": "Mars/Olympus"}, CTX)
    assert not result.ok and "unknown time zone" in result.text
