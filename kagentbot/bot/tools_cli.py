"""`kagentbot tools list` and `kagentbot tools run NAME key=value ...`: see which tools the bot
offers and run one directly, e.g. to check a custom tool before the model gets it."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tools", help="list the tools or run one directly")
    sub = parser.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="name, whether it uses the network, description")
    run_parser = sub.add_parser("run", help="run a tool: kagentbot tools run time_delta start_time=1987-06-24 end_time=1988-02-26")
    run_parser.add_argument("name")
    run_parser.add_argument("arguments", nargs="*", metavar="key=value")
    run_parser.add_argument("--lang", default="en", help="the question language the tool should assume (en or zh)")
    run_parser.add_argument("--full", action="store_true", help="do not cut long output")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Any) -> int:
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
    tools = registry.tools()
    width = max((len(t.name) for t in tools), default=4)
    for spec in tools:
        print(f"{spec.name:<{width}}  {'network' if spec.network else 'offline':<7}  {spec.description}")
    return 0


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    arguments = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"arguments are key=value, got {pair!r}")
        arguments[key.strip()] = value
    return arguments


async def run_tool(registry: Any, args: argparse.Namespace, settings: Any) -> int:
    import aiohttp

    from kagentbot.tools.registry import ToolContext

    if args.name not in registry:
        print(f"kagentbot: no tool named {args.name!r}; `kagentbot tools list` shows them", file=sys.stderr)
        return 2
    try:
        arguments = parse_pairs(args.arguments)
    except ValueError as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 2
    async with aiohttp.ClientSession(headers={"User-Agent": settings.tools.user_agent}) as http:
        context = ToolContext(now=datetime.now().astimezone(), language=args.lang, settings=settings, http=http,
                              user_scope="user:console:cli", chat_scope="chat:console:cli")
        limit = 1_000_000 if args.full else settings.agent.tool_output_chars
        result = await registry.invoke(args.name, arguments, context, timeout=settings.agent.tool_timeout, max_chars=limit)
    print(result.text, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1
