"""Custom tools by module path, file path and entry point; the enabled filter; clear errors."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kagentbot.tools.catalog import CatalogError, build_registry
from kagentbot.tools.registry import ToolContext

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
NETWORK = {"web_search", "browse_website", "encyclopedia", "get_weather_info"}


def write_module(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")


def test_builtin_tools_and_which_need_the_network():
    registry = build_registry()
    assert set(registry.names()) == NETWORK | {"time_delta", "get_calendar_info", "get_solar_terms_info",
                                               "get_current_time", "kb_search"}
    assert {t.name for t in registry.tools() if t.network} == NETWORK


async def test_custom_module_by_import_path(make_settings, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "team_tools", '''
        from kagentbot.tools import ToolContext, tool

        @tool
        async def shout(text: str, context: ToolContext) -> str:
            """Repeat text loudly.

            Args:
                text: what to repeat
            """
            return text.upper() + "!"

        async def helper(text: str) -> str:  # not marked: not a tool
            return text
    ''')
    registry = build_registry(make_settings(tools={"custom": ["team_tools"]}))
    assert "shout" in registry and "helper" not in registry
    assert registry.get("shout").parameters["properties"]["text"]["description"] == "what to repeat"
    result = await registry.invoke("shout", {"text": "hi"}, ToolContext(now=NOW))
    assert result.ok and result.text == "HI!"


async def test_example_module_by_file_path(make_settings):
    settings = make_settings(tools={"custom": [str(ROOT / "examples" / "my_tools.py")]})
    registry = build_registry(settings)
    ctx = ToolContext(now=NOW, settings=settings, user_scope="user:slack:U42", language="zh")
    converted = await registry.invoke("convert_units", {"value": "10", "from_unit": "斤", "to_unit": "kg"}, ctx)
    assert converted.ok and converted.text == "10 斤 = 5 kg"
    wrong = await registry.invoke("convert_units", {"value": "1", "from_unit": "kg", "to_unit": "km"}, ctx)
    assert not wrong.ok and "cannot convert mass" in wrong.text
    greeting = await registry.invoke("greet_user", {}, ctx)
    assert greeting.text == "你好，U42！"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import not_a_real_package_xyz\n", "could not be imported: ModuleNotFoundError"),
        ("def broken(:\n", "could not be imported: SyntaxError"),
        ("VALUE = 1\n", "defines no @tool functions"),
        ("from kagentbot.tools import tool\n@tool\nasync def time_delta(a: str) -> str:\n    return a\n", "two tools are named 'time_delta'"),
    ],
)
def test_bad_custom_modules_are_named(make_settings, tmp_path, monkeypatch, body, message):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"bad_tools_{tmp_path.name}"  # a fresh module name: imports are cached per name
    write_module(tmp_path, name, body)
    with pytest.raises(CatalogError, match=message) as caught:
        build_registry(make_settings(tools={"custom": [name]}))
    assert repr(name) in str(caught.value)


def test_missing_file_is_named(make_settings, tmp_path):
    with pytest.raises(CatalogError, match="nope.py"):
        build_registry(make_settings(tools={"custom": [str(tmp_path / "nope.py")]}))


def test_entry_point_group(make_settings, tmp_path, monkeypatch):
    """An installed distribution advertising `kagentbot.tools` (real metadata on sys.path)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "ep_weather_extra", '''
        from kagentbot.tools import tool

        @tool
        async def uv_index(city: str) -> str:
            """The UV index of a city (fixed, for the test).

            Args:
                city: the city
            """
            return f"{city}: 3"
    ''')
    dist = tmp_path / "ep_weather_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-weather-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kagentbot.tools]\nweather_extra = ep_weather_extra\nsingle = ep_weather_extra:uv_index\n")
    registry = build_registry(make_settings())
    assert "uv_index" in registry
    (dist / "entry_points.txt").write_text("[kagentbot.tools]\nbroken = ep_missing_module_xyz\n")
    with pytest.raises(CatalogError, match="entry point 'broken'"):
        build_registry(make_settings())


def test_enabled_filters_and_rejects_unknown_names(make_settings):
    registry = build_registry(make_settings(tools={"enabled": "time_delta,encyclopedia"}))
    assert registry.names() == ["time_delta", "encyclopedia"]
    with pytest.raises(CatalogError, match="unknown tools: web_serch"):
        build_registry(make_settings(tools={"enabled": ["web_serch"]}))


def test_persona_subset_keeps_only_its_tools():
    registry = build_registry().subset(["encyclopedia", "time_delta", "not_a_tool"])
    assert registry.names() == ["time_delta", "encyclopedia"]


async def test_the_documented_example_loads_and_runs(make_settings, tmp_path):
    doc = (ROOT / "docs" / "custom-tools.md").read_text(encoding="utf-8")
    example = doc.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "doc_example.py").write_text(example, encoding="utf-8")
    registry = build_registry(make_settings(tools={"custom": [str(tmp_path / "doc_example.py")]}))
    spec = registry.get("stock_level")
    assert spec.parameters["required"] == ["sku"] and spec.parameters["properties"]["warehouse"]["default"] == "main"
    assert spec.timeout == 10
    result = await registry.invoke("stock_level", {"sku": " "}, ToolContext(now=NOW))
    assert not result.ok and "sku is empty" in result.text
