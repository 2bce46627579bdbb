"""`/persona` chat command: see and pick personas; admins set them for a chat or a user and
create, edit or delete them. The store comes from `ctx.services.personas`. Every change is
written to the store's audit log with the asker's platform-qualified id."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

from kagentbot.chat.commands import Command, CommandContext, CommandError, Reply
from kagentbot.persona.model import Persona, PersonaError, parse_fields, persona_from_mapping, persona_from_toml
from kagentbot.persona.store import PersonaStoreError, chat_key

USAGE = (
    "/persona · /persona list · /persona use NAME|--clear · admins: /persona set NAME|--clear [@user|user:ID] · "
    "/persona create|edit (attach a .toml file, or fields like name=x display_name=\"X\" bio=\"...\") · "
    "/persona delete NAME · /persona audit"
)
ADMIN_ACTIONS = frozenset({"set", "create", "edit", "delete", "audit"})
MAX_FILE_BYTES = 64 * 1024

if TYPE_CHECKING:
    from kagentbot.persona.store import PersonaStore
    from kagentbot.tools.registry import ToolRegistry


class PersonaServices(Protocol):
    """What /persona reads of the bot's Services."""

    @property
    def personas(self) -> PersonaStore | None: ...

    @property
    def tools(self) -> ToolRegistry | None: ...


def persona_command() -> Command:
    return Command("persona", "who the bot is for you and this chat: show, list, use; admins manage", USAGE, handle_persona)


async def handle_persona(ctx: CommandContext[PersonaServices], args: list[str]) -> Reply:
    store = ctx.services.personas
    if store is None:
        return Reply("Personas are not available on this bot.", private=True)
    action, rest = (args[0].lower(), args[1:]) if args else ("show", [])
    handler = _ACTIONS.get(action)
    if handler is None:
        raise CommandError(f"Unknown /persona action {action!r}.")
    if action in ADMIN_ACTIONS and not ctx.is_admin:
        return Reply(f"Only admins can use /persona {action}. Ask an admin, or pick a persona for yourself with /persona use NAME.", private=True)
    try:
        return await handler(ctx, store, rest)
    except (PersonaError, PersonaStoreError) as exc:
        return Reply(str(exc), private=True)


async def _show(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    resolution = await store.resolve_message(ctx.message)
    persona = resolution.persona
    lines = [f"Active persona: {persona.display_name} ({persona.name}) — {resolution.reason}."]
    if resolution.note:
        lines.append(f"Note: {resolution.note}.")
    if persona.bio:
        lines.append(persona.bio)
    return Reply("\n".join(lines), private=True)


async def _list(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    active = (await store.resolve_message(ctx.message)).persona.name
    lines = ["Personas:"]
    for listed in await store.list():
        p = listed.persona
        mark = " ← active" if p.name == active else ""
        lines.append(f"• {p.name} — {p.display_name} [{listed.source}]{mark}")
    lines.append("Pick one for yourself with /persona use NAME.")
    return Reply("\n".join(lines), private=True)


async def _use(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    name = _one_name(args, "/persona use NAME")
    me = ctx.message.user_key
    await store.select_persona(me, "users", me, name)
    if name is None:
        return Reply("Your persona choice is cleared; this chat's persona or the default applies.", private=True)
    return Reply(f"From now on you talk to {name}.", private=True)


async def _set(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    if not args:
        raise CommandError("Say which persona to set.")
    name = _one_name(args[:1], "/persona set NAME")
    if len(args) > 2:
        raise CommandError("Too many words: give a persona name and at most one user.")
    if len(args) == 2:
        user = target_user(ctx.message.platform, args[1])
        await store.select_persona(ctx.message.user_key, "users", user, name)
        return Reply(f"Persona for {user} {'cleared' if name is None else f'set to {name}'}.")
    if ctx.message.is_dm:
        raise CommandError("A DM has no channel persona; name a user, or use /persona use for yourself.")
    chat = chat_key(ctx.message.platform, ctx.message.chat_id)
    await store.select_persona(ctx.message.user_key, "chats", chat, name)
    return Reply(f"This channel's persona {'is cleared' if name is None else f'is now {name}'}.")


async def _create(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    persona = await _persona_from_input(ctx, store, args, editing=False)
    before = await store.save_persona(ctx.message.user_key, persona, mode="create")
    extra = " It overrides the built-in of the same name." if before is not None else ""
    return Reply(f"Created persona {persona.name} ({persona.display_name}).{extra}{_tool_warning(ctx, persona)}")


async def _edit(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    persona = await _persona_from_input(ctx, store, args, editing=True)
    await store.save_persona(ctx.message.user_key, persona, mode="edit")
    return Reply(f"Updated persona {persona.name}.{_tool_warning(ctx, persona)}")


async def _delete(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    name = _one_name(args, "/persona delete NAME", allow_clear=False)
    restored = await store.delete_persona(ctx.message.user_key, name)
    extra = " The built-in of that name applies again." if restored is not None else ""
    return Reply(f"Deleted persona {name}.{extra}")


async def _audit(ctx: CommandContext[PersonaServices], store: Any, args: list[str]) -> Reply:
    entries = await store.audit(limit=15)
    if not entries:
        return Reply("No persona changes yet.", private=True)
    lines = ["Recent persona changes:"]
    for e in entries:
        lines.append(f"• {e.when} {e.actor} {e.action} {e.target}: {_brief(e.before)} → {_brief(e.after)}")
    return Reply("\n".join(lines), private=True)


_ACTIONS = {"show": _show, "list": _list, "use": _use, "set": _set, "create": _create, "edit": _edit,
            "delete": _delete, "audit": _audit}


# -- helpers ------------------------------------------------------------------------------------
def _one_name(args: list[str], usage: str, allow_clear: bool = True) -> str | None:
    if len(args) != 1:
        raise CommandError(f"Give exactly one persona name: {usage}.")
    if allow_clear and args[0] == "--clear":
        return None
    return args[0].lower()


MENTION = re.compile(r"^<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>$")  # Slack <@U1|name>, Discord <@1> / <@!1>


def target_user(platform: str, word: str) -> str:
    """A user named in a command, as a platform-qualified key on the asker's platform."""
    if m := MENTION.match(word):
        return f"{platform}:{m.group(1)}"
    if word.startswith("user:") and len(word) > 5:
        rest = word[5:]
        return rest if ":" in rest else f"{platform}:{rest}"
    if word.startswith("@") and len(word) > 1 and word[1:].isalnum():
        return f"{platform}:{word[1:]}"
    raise CommandError(f"{word!r} is not a user: mention them, or write user:ID.")


async def _persona_from_input(ctx: CommandContext[PersonaServices], store: Any, args: list[str], editing: bool) -> Persona:
    attachments = [a for a in ctx.message.attachments if a.fetch is not None]
    if attachments and not args:
        data = await _fetch(attachments[0])
        return persona_from_toml(data, f"attached file {attachments[0].name}")
    if not args:
        raise CommandError("Attach a .toml persona file, or give fields like name=x display_name=\"X\".")
    fields = parse_fields(args)
    if "name" not in fields:
        raise PersonaError("field 'name': required (e.g. name=research)")
    if not editing:
        return persona_from_mapping(fields, "the given fields")
    current = await store.get(str(fields["name"]))
    if current is None:
        raise PersonaStoreError(f"There is no persona named {fields['name']!r} to edit; use create.")
    merged = current.model_dump() | fields
    if "options" in fields:
        merged["options"] = current.options | fields["options"]
    return persona_from_mapping(merged, "the edited persona")


async def _fetch(attachment: Any) -> bytes:
    if attachment.size > MAX_FILE_BYTES:
        raise PersonaError(f"attached file {attachment.name} is too large ({attachment.size} bytes; at most {MAX_FILE_BYTES})")
    data = await attachment.fetch()
    if len(data) > MAX_FILE_BYTES:
        raise PersonaError(f"attached file {attachment.name} is too large (at most {MAX_FILE_BYTES} bytes)")
    return data


def _tool_warning(ctx: CommandContext[PersonaServices], persona: Persona) -> str:
    """Names the bot does not have are kept (a tool may be enabled later) but offered to nobody now."""
    tools = ctx.services.tools
    if tools is None or persona.tools is None:
        return ""
    unknown = [name for name in persona.tools if name not in tools]
    return f" Note: this bot has no tool named {', '.join(unknown)}; it is not offered." if unknown else ""


def _brief(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict):
        return f"{value.get('name')} ({value.get('display_name')})"
    return str(value)
