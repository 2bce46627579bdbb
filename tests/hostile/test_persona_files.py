"""Hostile persona files and fields: a clear refusal, nothing saved, nothing audited."""

from __future__ import annotations

import pytest

from kagentbot.bot.persona_commands import persona_command
from kagentbot.chat.commands import CommandContext, CommandRouter
from kagentbot.chat.messages import Attachment, IncomingMessage
from kagentbot.config.settings import SettingsError, load_settings
from kagentbot.persona.model import PersonaError
from kagentbot.persona.store import PersonaStore
from tests.persona.test_persona_commands import Services, attached

DEEP_ARRAY = b'name = "deep"\ndisplay_name = "Deep"\n[options]\nx = ' + b"[" * 20_000 + b"]" * 20_000 + b"\n"
DEEP_TABLE = b'name = "deep"\ndisplay_name = "Deep"\n[options]\nx = ' + b"{a = " * 5_000 + b"1" + b"}" * 5_000 + b"\n"


@pytest.fixture
async def say(make_settings):
    settings = make_settings(admins=["slack:UADMIN"])
    store = await PersonaStore.open(settings)
    router = CommandRouter()
    router.add(persona_command())

    async def send(text: str, files: tuple[Attachment, ...] = ()):
        message = IncomingMessage("slack", "C1", "UADMIN", text, attachments=files)
        return await router.dispatch(CommandContext(message, Services(store), True))

    return send, store


@pytest.mark.parametrize("data", [DEEP_ARRAY, DEEP_TABLE], ids=["arrays", "inline-tables"])
async def test_a_deeply_nested_persona_file_is_refused_clearly(say, data):
    send, store = say
    assert len(data) < 64 * 1024  # within the attachment limit: only the nesting is hostile
    reply = await send("/persona create", (attached(data, "deep.toml"),))
    assert "deep.toml" in reply.text and "too deeply" in reply.text
    assert [p.persona.name for p in await store.list()] == ["assistant", "research", "zh-assistant"]
    assert await store.audit() == []


async def test_a_deeply_nested_inline_option_is_refused_clearly(say):
    send, store = say
    reply = await send("/persona create name=deep display_name=Deep options.x=" + "[" * 2_000 + "]" * 2_000)
    assert "too deeply" in reply.text
    assert await store.audit() == []


async def test_a_deeply_nested_file_left_in_the_custom_folder_is_skipped(say):
    send, store = say
    (store.root / "custom" / "deep.toml").write_bytes(DEEP_ARRAY)
    assert "deep" not in [p.persona.name for p in await store.list()]
    assert "no persona named 'deep'" in (await send("/persona use deep")).text
    with pytest.raises(PersonaError, match="too deeply"):
        await store.get("deep", strict=True)  # what `kagentbot persona show deep` reports


def test_a_deeply_nested_settings_file_is_a_settings_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep.toml").write_bytes(b"admins = " + b"[" * 2_000 + b"]" * 2_000 + b"\n")
    with pytest.raises(SettingsError, match="could not read"):
        load_settings(tmp_path / "deep.toml", environ={})
