"""`kagentbot persona ...`: personas from the command line. The operator owns the data directory,
so the CLI acts as an admin; its changes are audited as `console:<os user>`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagentbot.cli.kb import os_user

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("persona", help="list, show, use, create and delete personas")
    actions = parser.add_subparsers(dest="persona_action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every persona, built-in and custom")
    show = actions.add_parser("show", help="one persona as a TOML file (default: the one active for --user)")
    show.add_argument("name", nargs="?")
    use = actions.add_parser("use", help="choose the persona for a console user (--clear to unset)")
    use.add_argument("name", nargs="?", help="a persona name")
    use.add_argument("--clear", action="store_true", help="forget the choice: the default applies")
    create = actions.add_parser("create", help="create (or with --replace, update) a persona from a TOML file")
    create.add_argument("file", type=Path)
    create.add_argument("--replace", action="store_true", help="update the persona if it exists")
    delete = actions.add_parser("delete", help="delete a custom persona")
    delete.add_argument("name")
    actions.add_parser("audit", help="recent persona changes")
    for sub in actions.choices.values():
        sub.add_argument("--user", default=os_user(), help="console user (key console:NAME); default: your OS user")
    parser.set_defaults(func=run)



async def run(args: argparse.Namespace, settings: Settings) -> int:
    from kagentbot.persona.model import PersonaError
    from kagentbot.bot import replicas
    from kagentbot.persona.store import PersonaStore, PersonaStoreError

    shared = await replicas.open_shared(settings)  # cluster.enabled: the replicas' shared personas
    store = await PersonaStore.open(settings, replicas.persona_files(shared))
    try:
        return await _ACTIONS[args.persona_action](args, store)
    except (PersonaError, PersonaStoreError, OSError) as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 1
    finally:
        if shared is not None:
            await shared.close()


def _actor(args: argparse.Namespace) -> str:
    return f"console:{os_user()}"  # who ran the command, whichever --user it acted for


async def _list(args: argparse.Namespace, store: Any) -> int:
    active = (await store.resolve(f"console:{args.user}")).persona.name
    for listed in await store.list():
        p = listed.persona
        print(f"{'*' if p.name == active else ' '} {p.name:<16} {p.display_name} [{listed.source}]")
    return 0


async def _show(args: argparse.Namespace, store: Any) -> int:
    from kagentbot.persona.model import persona_to_toml

    if args.name:
        persona = await store.get(args.name, strict=True)
        if persona is None:
            print(f"kagentbot: there is no persona named {args.name!r}", file=sys.stderr)
            return 1
        print(f"# {args.name}")
    else:
        resolution = await store.resolve(f"console:{args.user}")
        persona = resolution.persona
        print(f"# active for console:{args.user}: {persona.name} ({resolution.reason})")
        if resolution.note:
            print(f"# note: {resolution.note}")
    print(persona_to_toml(persona), end="")
    return 0


async def _use(args: argparse.Namespace, store: Any) -> int:
    if bool(args.name) == bool(args.clear):
        print("kagentbot: give a persona name or --clear", file=sys.stderr)
        return 2
    name = None if args.clear else args.name
    await store.select_persona(_actor(args), "users", f"console:{args.user}", name)
    print(f"console:{args.user} now uses {name or 'the default persona'}")
    return 0


async def _create(args: argparse.Namespace, store: Any) -> int:
    import asyncio

    from kagentbot.persona.model import persona_from_toml

    data = await asyncio.to_thread(args.file.read_bytes)
    persona = persona_from_toml(data, str(args.file))
    exists = await store.get(persona.name) is not None
    custom_exists = any(l.persona.name == persona.name and l.source != "built-in" for l in await store.list())
    mode = "edit" if args.replace and custom_exists else "create"
    await store.save_persona(_actor(args), persona, mode=mode)
    print(f"{'updated' if mode == 'edit' else 'created'} persona {persona.name}" + (" (overrides the built-in)" if exists and mode == "create" else ""))
    return 0


async def _delete(args: argparse.Namespace, store: Any) -> int:
    restored = await store.delete_persona(_actor(args), args.name)
    print(f"deleted persona {args.name}" + ("; the built-in of that name applies again" if restored else ""))
    return 0


async def _audit(args: argparse.Namespace, store: Any) -> int:
    for e in await store.audit(limit=50):
        print(f"{e.when} {e.actor} {e.action} {e.target}: {_name(e.before)} -> {_name(e.after)}")
    return 0


def _name(value: Any) -> str:
    return "none" if value is None else str(value.get("name") if isinstance(value, dict) else value)


_ACTIONS = {"list": _list, "show": _show, "use": _use, "create": _create, "delete": _delete, "audit": _audit}
