from __future__ import annotations

import argparse
from pathlib import Path

from kagentbot.cli import tools as tools_cli

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kagentbot")
    tools_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


async def test_list_shows_every_tool_with_its_kind(make_settings, capsys):
    assert await tools_cli.run(parse("tools", "list"), make_settings()) == 0
    lines = capsys.readouterr().out.splitlines()
    # each tool: its signature, then its kind and description indented below it
    kinds = {lines[i - 1].split("(")[0]: line.split()[0] for i, line in enumerate(lines) if line.startswith("    [")}
    assert kinds["web_search"] == "[network]" and kinds["time_delta"] == "[offline]" and kinds["kb_search"] == "[offline]"
    encyclopedia = next(i for i, line in enumerate(lines) if line.startswith("encyclopedia("))
    assert "Wikipedia" in lines[encyclopedia + 1]


async def test_run_prints_the_result(make_settings, capsys):
    code = await tools_cli.run(parse("tools", "run", "time_delta", "start_time=1987-06-24", "end_time=1988-02-26"), make_settings())
    assert code == 0 and '"total_days":247' in capsys.readouterr().out
    code = await tools_cli.run(parse("tools", "run", "get_solar_terms_info", "year=2027"), make_settings())
    assert code == 0 and "2027-02-04 立春" in capsys.readouterr().out


async def test_run_a_custom_tool_and_a_network_tool(make_settings, capsys, web):
    settings = make_settings(tools={"custom": [str(ROOT / "examples" / "my_tools.py")], "geocoding_url": web.base + "/geo",
                                    "open_meteo_url": web.base + "/meteo"})
    code = await tools_cli.run(parse("tools", "run", "convert_units", "value=100", "from_unit=km", "to_unit=mi"), settings)
    assert code == 0 and "100 km = 62.1371 mi" in capsys.readouterr().out
    code = await tools_cli.run(parse("tools", "run", "get_weather_info", "location=Nowhereville"), settings)
    assert code == 1 and "no place called 'Nowhereville'" in capsys.readouterr().err


async def test_run_errors_exit_non_zero(make_settings, capsys):
    settings = make_settings()
    assert await tools_cli.run(parse("tools", "run", "time_delta", "start_time=yesterday", "end_time=1988-02-26"), settings) == 1
    assert "start_time must look like" in capsys.readouterr().err
    assert await tools_cli.run(parse("tools", "run", "no_such_tool"), settings) == 2
    assert "no tool named 'no_such_tool'" in capsys.readouterr().err
    assert await tools_cli.run(parse("tools", "run", "time_delta", "start_time"), settings) == 2
    assert "key=value" in capsys.readouterr().err
    bad = make_settings(tools={"custom": ["missing_tools_module_xyz"]})
    assert await tools_cli.run(parse("tools", "list"), bad) == 2
    assert "missing_tools_module_xyz" in capsys.readouterr().err
