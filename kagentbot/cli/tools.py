"""`kagentbot tools list` and `kagentbot tools run NAME key=value ...`: see which tools the bot
offers, with their arguments, and run one directly, e.g. to check a custom tool before the
model gets it."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kagentbot.cli.kb import os_user
from kagentbot.scope import Scope
from kagentbot.tools.registry import describe_arguments as _describe_arguments

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

WIDTH = 80  # the listing stays readable in a plain terminal


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tools", help="list the tools or run one directly")
    sub = parser.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="each tool's arguments, whether it uses the network, and what it does")
    run_parser = sub.add_parser(
        "run", help="run a tool: kagentbot tools run time_delta start_time=1987-06-24 end_time=1988-02-26",
        epilog="`kagentbot tools list` shows each tool's arguments, e.g. "
               "time_delta(start_time: str, end_time: str): pass them as start_time=... end_time=...")
    run_parser.add_argument("name")
    run_parser.add_argument("arguments", nargs="*", metavar="key=value")
    run_parser.add_argument("--lang", default="en", help="the question language the tool should assume (en or zh)")
    run_parser.add_argument("--full", action="store_true", help="do not cut long output")
    run_parser.add_argument("--user", default=os_user(),
                            help="console user whose knowledge base kb_search reads "
                                 "(default: your OS user, as `kagentbot ask` uses)")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from kagentbot.tools.catalog import CatalogError, build_registry

    try:
        registry = build_registry(settings)
    except CatalogError as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 2
    if args.tools_command == "list":
        return list_tools(registry)
    return await run_tool(registry, args, settings)


def list_tools(registry: Any) -> int:
    for spec in registry.tools():
        print("\n".join(signature_lines(spec)))
        kind = "[network]" if spec.network else "[offline]"
        print(textwrap.fill(f"{kind} {spec.description}", WIDTH, initial_indent="    ", subsequent_indent="    "))
    return 0


def signature(spec: Any) -> str:
    """`name(arg: type, other: type = default)` from the JSON schema the model is given."""
    return f"{spec.name}({', '.join(_describe_arguments(spec.parameters))})"


def signature_lines(spec: Any, width: int = WIDTH) -> list[str]:
    """The signature, wrapped between arguments (never inside one) under the first argument."""
    head, arguments = f"{spec.name}(", _describe_arguments(spec.parameters)
    indent = " " * (len(head) if len(head) <= width // 3 else 8)
    lines, line = [], head
    for i, argument in enumerate(arguments):
        piece = argument + (", " if i < len(arguments) - 1 else ")")
        if line not in (head, indent) and len(line + piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = indent
        line += piece
    if not arguments:
        line += ")"
    return [*lines, line]


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    arguments = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"arguments are key=value, got {pair!r}")
        arguments[key.strip()] = value
    return arguments


def check_names(spec: Any, arguments: dict[str, str]) -> None:
    """A typed argument the tool does not take is a mistake at the terminal, not noise to drop
    (the model's calls stay lenient: the registry ignores extra keys)."""
    known = list(spec.parameters.get("properties", {}))
    takes = ", ".join(_describe_arguments(spec.parameters)) or "no arguments"
    unknown = [name for name in arguments if name not in known]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ValueError(f"{spec.name} does not take {names}; it takes {takes}")
    missing = [name for name in spec.parameters.get("required", []) if name not in arguments]
    if missing:
        raise ValueError(f"{spec.name} needs {', '.join(missing)}; it takes {takes}")


async def run_tool(registry: Any, args: argparse.Namespace, settings: Settings) -> int:
    import aiohttp

    from kagentbot.memory.types import Audience
    from kagentbot.tools.registry import ToolContext

    spec = registry.get(args.name)
    if spec is None:
        print(f"kagentbot: no tool named {args.name!r}; `kagentbot tools list` shows them", file=sys.stderr)
        return 2
    try:
        arguments = parse_pairs(args.arguments)
        check_names(spec, arguments)
    except ValueError as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 2
    # the audience `kagentbot ask --user NAME` has: a direct conversation with that console user
    audience = Audience(user_scope=str(Scope.user("console", args.user)))
    knowledge = ConsoleKnowledge(settings, audience)
    try:
        async with aiohttp.ClientSession(headers={"User-Agent": settings.tools.user_agent}) as http:
            context = ToolContext(now=datetime.now().astimezone(), language=args.lang, settings=settings, http=http,
                                  knowledge=knowledge, user_scope=audience.user_scope, chat_scope=audience.chat_scope)
            limit = 1_000_000 if args.full else settings.agent.tool_output_chars
            result = await registry.invoke(args.name, arguments, context, timeout=settings.agent.tool_timeout,
                                           max_chars=limit)
    finally:
        knowledge.close()
    print(result.text, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


class ConsoleKnowledge:
    """The console user's knowledge base, opened on the first search: most tools never search
    it, and opening the store imports LanceDB."""

    def __init__(self, settings: Settings, audience: Any) -> None:
        self._settings = settings
        self._audience = audience
        self._store: Any = None

    async def search_knowledge(self, query: str, limit: int) -> Sequence[Any]:
        from kagentbot.memory.startup.deferred import store_absent
        from kagentbot.memory.store import MemoryStore, StoreError
        from kagentbot.tools.registry import ToolError

        if self._store is None:
            if store_absent(self._settings):  # nothing was ever added: do not create a store to search it
                return []
            try:
                self._store = await MemoryStore.open(self._settings)
            except StoreError as exc:
                raise ToolError(str(exc)) from None
        return await self._store.for_audience(self._audience).search_knowledge(query, limit)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
