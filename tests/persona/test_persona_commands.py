"""`/persona` driven through the real router and handler with real IncomingMessage values on every
platform: admin enforcement on every admin path, replies, attachments, inline fields, audit."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kagentbot.bot.persona_commands import persona_command, target_user
from kagentbot.chat.commands import CommandContext, CommandRouter
from kagentbot.chat.messages import Attachment, IncomingMessage
from kagentbot.persona.store import PersonaStore

PLATFORMS = ("slack", "discord", "telegram", "console")
PIRATE = b'name = "pirate"\ndisplay_name = "Captain"\nbio = "Talks like a pirate."\n'


@dataclass
class Services:  # the slice of the bot's Services that /persona reads (PersonaServices)
    personas: PersonaStore
    tools: None = None  # no tool registry: persona tool names are not checked


def admin_id(platform: str) -> str:
    return {"slack": "UADMIN", "discord": "1001", "telegram": "2002", "console": "root"}[platform]


@pytest.fixture
async def bot(make_settings):
    settings = make_settings(admins=[f"{p}:{admin_id(p)}" for p in PLATFORMS])
    store = await PersonaStore.open(settings)
    router = CommandRouter()
    router.add(persona_command())

    async def say(platform: str, user: str, text: str, *, chat: str = "C1", is_dm: bool = False, files: tuple = ()):
        message = IncomingMessage(platform, chat, user, text, attachments=files, is_dm=is_dm)
        context = CommandContext(message, Services(store), settings.is_admin(message.user_key))
        return await router.dispatch(context)

    return say, store


def attached(data: bytes, name: str = "p.toml") -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment(name, len(data), "application/toml", fetch)


ADMIN_COMMANDS = [
    "/persona set research",
    "/persona set research user:U9",
    "/persona set --clear",
    "/persona create name=evil display_name=Evil",
    "/persona edit name=assistant bio=hijacked",
    "/persona delete research",
    "/persona audit",
]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_non_admins_are_refused_on_every_admin_command(bot, platform):
    say, store = bot
    for text in ADMIN_COMMANDS:
        reply = await say(platform, "U9", text)
        assert reply.private and reply.text.startswith("Only admins can use /persona"), (text, reply.text)
    refused_file = await say(platform, "U9", "/persona create", files=(attached(PIRATE),))
    assert refused_file.text.startswith("Only admins")
    assert await store.audit() == [] and await store.selections() == {"users": {}, "chats": {}}
    assert {l.persona.name for l in await store.list()} == {"assistant", "research", "zh-assistant"}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_admins_can_do_each_admin_command_and_each_is_audited(bot, platform):
    say, store = bot
    admin = admin_id(platform)
    assert "Created persona pirate" in (await say(platform, admin, "/persona create", files=(attached(PIRATE),))).text
    assert "Updated persona pirate" in (await say(platform, admin, '/persona edit name=pirate bio="Arr, matey." options.temperature=0.9')).text
    assert "is now pirate" in (await say(platform, admin, "/persona set pirate")).text
    assert f"{platform}:U5 set to research" in (await say(platform, admin, "/persona set research user:U5")).text
    assert "Created persona scratch" in (await say(platform, admin, '/persona create name=scratch display_name="Scratch pad"')).text
    assert "Deleted persona scratch" in (await say(platform, admin, "/persona delete scratch")).text
    edited = await store.get("pirate")
    assert edited.bio == "Arr, matey." and edited.display_name == "Captain" and edited.options == {"temperature": 0.9}
    assert (await store.resolve(f"{platform}:U4", f"{platform}:C1")).persona.name == "pirate"
    assert (await store.resolve(f"{platform}:U5", f"{platform}:C1")).persona.name == "research"
    audit = await say(platform, admin, "/persona audit")
    entries = await store.audit()
    assert [e.action for e in entries] == ["create", "edit", "set-chat", "set-user", "create", "delete"]
    assert all(e.actor == f"{platform}:{admin}" for e in entries)
    assert f"{platform}:{admin} set-chat chat:{platform}:C1: none → pirate" in audit.text


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_anyone_can_see_list_and_pick_for_themselves(bot, platform):
    say, store = bot
    shown = await say(platform, "U1", "/persona")
    assert "KAgent (assistant) — default" in shown.text
    listing = await say(platform, "U1", "/persona list")
    assert "• research — Research Assistant [built-in]" in listing.text and "assistant — KAgent [built-in] ← active" in listing.text
    assert "you talk to zh-assistant" in (await say(platform, "U1", "/persona use zh-assistant")).text
    assert "— your choice" in (await say(platform, "U1", "/persona")).text
    assert "default" in (await say(platform, "U2", "/persona")).text  # only the asker changed
    await say(platform, admin_id(platform), "/persona set research")
    assert "Research Assistant (research) — this channel's persona" in (await say(platform, "U2", "/persona")).text
    assert "KAgent (assistant) — default" in (await say(platform, "U2", "/persona", chat="C2")).text
    (entry,) = [e for e in await store.audit() if e.action == "use"]
    assert entry.actor == entry.target[5:] == f"{platform}:U1"


async def test_mistakes_get_a_clear_answer_and_change_nothing(bot):
    say, store = bot
    assert "no persona named 'ghost'" in (await say("slack", "U1", "/persona use ghost")).text
    assert "Usage: /persona" in (await say("slack", "U1", "/persona frobnicate")).text
    bad_file = await say("slack", "UADMIN", "/persona create", files=(attached(b'name = "Bad"\ndisplay_name = ""'),))
    assert "field 'name'" in bad_file.text and "field 'display_name'" in bad_file.text and "p.toml" in bad_file.text
    assert "field 'colour': unknown field" in (await say("slack", "UADMIN", "/persona create name=x display_name=X colour=red")).text
    assert "field 'name': required" in (await say("slack", "UADMIN", "/persona create display_name=X")).text
    assert "built-in persona and cannot be deleted" in (await say("slack", "UADMIN", "/persona delete assistant")).text
    assert "no persona named 'nope' to edit" in (await say("slack", "UADMIN", "/persona edit name=nope bio=x")).text
    assert "A DM has no channel persona" in (await say("slack", "UADMIN", "/persona set research", is_dm=True)).text
    assert "not a user" in (await say("slack", "UADMIN", "/persona set research bob!")).text
    big = Attachment("huge.toml", 10_000_000, "", attached(b"").fetch)
    assert "too large" in (await say("slack", "UADMIN", "/persona create", files=(big,))).text
    assert await store.audit() == []


def test_user_targets_on_each_platform():
    assert target_user("slack", "<@U123|ann>") == "slack:U123"
    assert target_user("discord", "<@!42>") == "discord:42"
    assert target_user("telegram", "user:777") == "telegram:777"
    assert target_user("slack", "user:discord:9") == "discord:9"
    assert target_user("console", "@alice") == "console:alice"


async def test_unknown_tool_names_are_pointed_out(make_settings):
    from kagentbot.tools.registry import ToolRegistry
    from kagentbot.tools.timetools import TIME_TOOLS

    settings = make_settings(admins=["discord:1001"])

    @dataclass
    class WithTools:
        personas: PersonaStore
        tools: ToolRegistry

    services = WithTools(await PersonaStore.open(settings), ToolRegistry(TIME_TOOLS))
    router = CommandRouter()
    router.add(persona_command())
    text = "/persona create name=clock display_name=Clock tools=get_current_time,web_serch"
    reply = await router.dispatch(CommandContext(IncomingMessage("discord", "5", "1001", text), services, True))
    assert "Created persona clock" in reply.text and "no tool named web_serch" in reply.text and "get_current_time" not in reply.text
