"""`kagentbot persona ...` through its argparse parser and `run`; the operator acts as an admin."""

from __future__ import annotations

import argparse
import getpass

from kagentbot.cli import persona as persona_cli
from kagentbot.persona.store import PersonaStore


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kagentbot")
    persona_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["persona", *argv])


async def cli(settings, *argv: str) -> int:
    args = parse(*argv)
    return await args.func(args, settings)


async def test_cli_list_show_use_create_delete_audit(make_settings, tmp_path, capsys):
    settings = make_settings()
    assert await cli(settings, "list", "--user", "ann") == 0
    out = capsys.readouterr().out
    assert "* assistant" in out and "  research         Research Assistant [built-in]" in out and "zh-assistant" in out

    assert await cli(settings, "use", "research", "--user", "ann") == 0
    assert await cli(settings, "show", "--user", "ann") == 0
    out = capsys.readouterr().out
    assert "# active for console:ann: research (your choice)" in out and 'display_name = "Research Assistant"' in out

    file = tmp_path / "pirate.toml"
    file.write_text('name = "pirate"\ndisplay_name = "Captain"\nbio = "Arr."\n')
    assert await cli(settings, "create", str(file)) == 0
    assert await cli(settings, "create", str(file)) == 1  # exists already: needs --replace
    assert "already exists" in capsys.readouterr().err
    file.write_text('name = "pirate"\ndisplay_name = "Captain Two"\n')
    assert await cli(settings, "create", str(file), "--replace") == 0
    assert await cli(settings, "show", "pirate") == 0
    assert 'display_name = "Captain Two"' in capsys.readouterr().out
    assert await cli(settings, "delete", "pirate") == 0
    assert await cli(settings, "delete", "assistant") == 1
    assert "cannot be deleted" in capsys.readouterr().err
    assert await cli(settings, "use", "--clear", "--user", "ann") == 0

    entries = await PersonaStore(settings).audit()
    assert [e.action for e in entries] == ["set-user", "create", "edit", "delete", "clear-user"]
    assert {e.actor for e in entries} == {f"console:{getpass.getuser()}"}
    assert entries[0].target == "user:console:ann"
    assert await cli(settings, "audit") == 0
    assert "set-user user:console:ann: none -> research" in capsys.readouterr().out


async def test_cli_bad_file_and_unknown_names(make_settings, tmp_path, capsys):
    settings = make_settings()
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ndisplay_name = "X"\nmax_steps = 0\n')
    assert await cli(settings, "create", str(bad)) == 1
    err = capsys.readouterr().err
    assert "bad.toml" in err and "field 'max_steps'" in err and "greater than or equal to 1" in err
    assert await cli(settings, "create", str(tmp_path / "missing.toml")) == 1
    assert await cli(settings, "show", "ghost") == 1
    assert await cli(settings, "use", "ghost") == 1
    assert await cli(settings, "use") == 2
    assert await PersonaStore(settings).audit() == []


async def test_a_hand_broken_custom_file_falls_back_and_show_says_why(make_settings, capsys):
    from kagentbot.persona.model import Persona

    settings = make_settings()
    store = await PersonaStore.open(settings)
    await store.save_persona("console:root", Persona(name="ops", display_name="Ops"), mode="create")
    await store.select_persona("console:root", "users", "console:ann", "ops")
    (settings.data_dir / "personas" / "custom" / "ops.toml").write_text('name = "ops"\ndisplay_name = ""\n')
    resolution = await store.resolve("console:ann")
    assert resolution.persona.name == "assistant" and "'ops'" in resolution.note
    assert await cli(settings, "show", "ops") == 1
    assert "field 'display_name'" in capsys.readouterr().err
    assert await cli(settings, "delete", "ops") == 0  # a broken file can still be removed
    assert not (settings.data_dir / "personas" / "custom" / "ops.toml").exists()
