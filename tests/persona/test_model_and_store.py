"""Persona files and the store: validation, built-ins, selection precedence, persistence, audit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kagentbot.persona.model import Persona, PersonaError, parse_fields, persona_from_toml, persona_to_toml
from kagentbot.persona.store import PersonaStore, PersonaStoreError, builtin_personas

GOOD = 'name = "pirate"\ndisplay_name = "Captain"\nbio = "Talks like a pirate."\ntools = ["time_now"]\nmax_steps = 3\n[options]\ntemperature = 0.9\n'


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ('name = "Bad Name"\ndisplay_name = "X"', "name", "pattern"),
        ('name = "x"', "display_name", "required"),
        ('name = "x"\ndisplay_name = "X"\nlanguage = "fr"', "language", "'auto', 'en' or 'zh'"),
        ('name = "x"\ndisplay_name = "X"\nmax_steps = 99', "max_steps", "less than or equal to 20"),
        ('name = "x"\ndisplay_name = "X"\ncolour = "red"', "colour", "unknown field"),
        ('name = "x"\ndisplay_name = "X"\ntools = "time_now"', "tools", "tuple"),
    ],
)
def test_bad_persona_files_name_the_field_and_the_reason(text, field, reason):
    with pytest.raises(PersonaError) as caught:
        persona_from_toml(text, "bad.toml")
    message = str(caught.value)
    assert "bad.toml" in message and f"field '{field}'" in message and reason in message


def test_broken_toml_and_bytes_are_refused_clearly():
    with pytest.raises(PersonaError, match="not valid TOML"):
        persona_from_toml('name = "x', "f.toml")
    with pytest.raises(PersonaError, match="not UTF-8"):
        persona_from_toml(b"\xff\xfe", "f.toml")


def test_a_persona_round_trips_through_its_file_form():
    persona = persona_from_toml(GOOD)
    assert persona.tools == ("time_now",) and persona.options == {"temperature": 0.9} and persona.max_steps == 3
    assert persona_from_toml(persona_to_toml(persona)) == persona
    quoted = Persona(name="q", display_name='Say "hi"\\ now', bio="line one\nline two 中文")
    assert persona_from_toml(persona_to_toml(quoted)) == quoted


def test_inline_fields():
    fields = parse_fields(["name=x", "display_name=X Y", "tools=time_now,time_delta", "options.temperature=0.3", "max_steps=4"])
    assert fields == {"name": "x", "display_name": "X Y", "tools": ("time_now", "time_delta"), "options": {"temperature": 0.3}, "max_steps": 4}
    with pytest.raises(PersonaError, match="field 'colour': unknown field"):
        parse_fields(["colour=red"])
    with pytest.raises(PersonaError, match="key=value"):
        parse_fields(["justaword"])


def test_builtins_ship_as_valid_data_files():
    builtins = builtin_personas()
    assert {"assistant", "research", "zh-assistant"} <= set(builtins)
    assert builtins["zh-assistant"].language == "zh" and "中文" in builtins["zh-assistant"].instructions
    assert builtins["research"].bio and builtins["assistant"].instructions


async def test_selection_precedence_user_then_chat_then_default(make_settings):
    store = await PersonaStore.open(make_settings())
    assert (await store.resolve("slack:U1", "slack:C1")).reason == "default"
    assert (await store.resolve("slack:U1", "slack:C1")).persona.name == "assistant"
    await store.select_persona("slack:ADMIN", "chats", "slack:C1", "research")
    chat = await store.resolve("slack:U1", "slack:C1")
    assert (chat.persona.name, chat.reason) == ("research", "this channel's persona")
    await store.select_persona("slack:U1", "users", "slack:U1", "zh-assistant")
    mine = await store.resolve("slack:U1", "slack:C1")
    assert (mine.persona.name, mine.reason) == ("zh-assistant", "your choice")
    other = await store.resolve("slack:U2", "slack:C1")
    assert other.persona.name == "research"  # someone else in the same channel
    elsewhere = await store.resolve("slack:U2", "slack:C2")
    assert (elsewhere.persona.name, elsewhere.reason) == ("assistant", "default")
    await store.select_persona("slack:U1", "users", "slack:U1", None)
    assert (await store.resolve("slack:U1", "slack:C1")).persona.name == "research"


async def test_configured_default_is_used(make_settings):
    store = await PersonaStore.open(make_settings(persona={"default": "research"}))
    assert (await store.resolve("slack:U1")).persona.name == "research"


async def test_choices_survive_a_new_store_and_another_process(make_settings, tmp_path):
    settings = make_settings()
    store = await PersonaStore.open(settings)
    await store.save_persona("console:root", persona_from_toml(GOOD), mode="create")
    await store.select_persona("console:root", "chats", "discord:42", "pirate")
    await store.select_persona("telegram:7", "users", "telegram:7", "research")

    again = PersonaStore(settings)
    assert (await again.resolve("discord:1", "discord:42")).persona.display_name == "Captain"
    script = (
        "import asyncio, sys\n"
        "from kagentbot.config.settings import load_settings\n"
        "from kagentbot.persona.store import PersonaStore\n"
        f"s = load_settings(environ={{}}, data_dir={str(settings.data_dir)!r})\n"
        "r = asyncio.run(PersonaStore(s).resolve('telegram:7', 'telegram:9'))\n"
        "c = asyncio.run(PersonaStore(s).resolve('discord:1', 'discord:42'))\n"
        "print(r.persona.name, r.reason, '|', c.persona.name, c.reason)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "research your choice | pirate this channel's persona"
    leftovers = [p.name for p in (settings.data_dir / "personas").rglob("*.tmp")]
    assert leftovers == []  # atomic writes leave no temp files behind


async def test_a_deleted_persona_falls_back_to_the_default_with_a_note(make_settings):
    store = await PersonaStore.open(make_settings())
    await store.save_persona("console:root", persona_from_toml(GOOD), mode="create")
    await store.select_persona("slack:U1", "users", "slack:U1", "pirate")
    await store.delete_persona("console:root", "pirate")
    resolution = await store.resolve("slack:U1", "slack:C1")
    assert resolution.persona.name == "assistant" and resolution.reason == "default"
    assert "'pirate'" in resolution.note and "no longer exists" in resolution.note


async def test_builtins_cannot_be_deleted_but_can_be_overridden(make_settings):
    store = await PersonaStore.open(make_settings())
    with pytest.raises(PersonaStoreError, match="built-in"):
        await store.delete_persona("console:root", "research")
    override = Persona(name="research", display_name="Team Research", bio="Ours.")
    replaced = await store.save_persona("console:root", override, mode="create")
    assert replaced.display_name == "Research Assistant"
    sources = {l.persona.name: l.source for l in await store.list()}
    assert sources["research"] == "custom (overrides built-in)" and sources["assistant"] == "built-in"
    assert (await store.get("research")).display_name == "Team Research"
    restored = await store.delete_persona("console:root", "research")
    assert restored.display_name == "Research Assistant" == (await store.get("research")).display_name


async def test_store_refusals(make_settings):
    store = await PersonaStore.open(make_settings())
    with pytest.raises(PersonaStoreError, match="no persona named 'ghost'"):
        await store.select_persona("slack:U1", "users", "slack:U1", "ghost")
    with pytest.raises(PersonaStoreError, match="use create"):
        await store.save_persona("console:root", Persona(name="new", display_name="N"), mode="edit")
    await store.save_persona("console:root", Persona(name="new", display_name="N"), mode="create")
    with pytest.raises(PersonaStoreError, match="already exists"):
        await store.save_persona("console:root", Persona(name="new", display_name="N2"), mode="create")
    with pytest.raises(PersonaStoreError, match="not a persona name"):
        await store.delete_persona("console:root", "../../etc")


async def test_audit_log_is_append_only_json_lines_with_before_and_after(make_settings):
    settings = make_settings()
    store = await PersonaStore.open(settings)
    await store.save_persona("slack:ADMIN", Persona(name="new", display_name="N"), mode="create")
    await store.save_persona("slack:ADMIN", Persona(name="new", display_name="N2"), mode="edit")
    await store.select_persona("slack:ADMIN", "chats", "slack:C1", "new")
    await store.select_persona("slack:U1", "users", "slack:U1", "research")
    await store.delete_persona("slack:ADMIN", "new")
    lines = (settings.data_dir / "personas" / "audit.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("slack:ADMIN", "create", "new"), ("slack:ADMIN", "edit", "new"), ("slack:ADMIN", "set-chat", "chat:slack:C1"),
        ("slack:U1", "use", "user:slack:U1"), ("slack:ADMIN", "delete", "new"),
    ]
    assert entries[1]["before"]["display_name"] == "N" and entries[1]["after"]["display_name"] == "N2"
    assert entries[2]["before"] is None and entries[2]["after"] == "new"
    assert entries[4]["after"] is None and all(e["when"].endswith("+00:00") for e in entries)
    await (await PersonaStore.open(settings)).select_persona("slack:U1", "users", "slack:U1", None)
    assert (settings.data_dir / "personas" / "audit.jsonl").read_text().splitlines()[:5] == lines  # appended, not rewritten
    assert [e.action for e in await store.audit(limit=2)] == ["delete", "clear-user"]


def test_selections_from_several_processes_are_all_kept(make_settings):
    """A running bot and the CLI write the same file: a file lock keeps every change."""
    settings = make_settings()
    script = (
        "import asyncio, sys\n"
        "from kagentbot.config.settings import load_settings\n"
        "from kagentbot.persona.store import PersonaStore\n"
        f"s = load_settings(environ={{}}, data_dir={str(settings.data_dir)!r})\n"
        "async def main(tag):\n"
        "    store = PersonaStore(s)\n"
        "    for i in range(15):\n"
        "        await store.select_persona('console:root', 'users', f'slack:{tag}{i}', 'research')\n"
        "asyncio.run(main(sys.argv[1]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    workers = [subprocess.Popen([sys.executable, "-c", script, tag], cwd=root) for tag in "AB"]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    import asyncio

    users = asyncio.run(PersonaStore(settings).selections())["users"]
    assert len(users) == 30 and set(users.values()) == {"research"}
    assert len((settings.data_dir / "personas" / "audit.jsonl").read_text().splitlines()) == 30


def test_the_example_persona_file_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "persona.toml"
    persona = persona_from_toml(example.read_bytes(), example.name)
    assert persona.name == "ops" and persona.tools and persona.options == {"temperature": 0.2}
