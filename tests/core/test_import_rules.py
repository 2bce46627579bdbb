"""The directions imports may point (DESIGN.md, "Which way imports point"; ARCHITECTURE.md), read
from the source with `ast`, so every import counts: top-level, inside functions and under
TYPE_CHECKING. A new subpackage must be placed in LAYERS before its first import passes."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "kagentbot"
TOP = "cli"  # kagentbot/cli/ and kagentbot/__init__.py: the command line sits on top

# package -> the packages of ours it may import (its own always). Lowest first.
LAYERS: dict[str, set[str]] = {
    "scope": set(),  # kagentbot/scope.py: the Scope value, for everyone
    "config": set(),  # imported by everything, imports nothing of ours
    "net": {"config"},  # the SSRF-guarded fetcher, shared by memory and tools
    "persona": {"config"},
    "memory": {"config", "net"},
    "tools": {"config", "net", "memory"},
    "ops": {"config"},  # a leaf: bot, adapters and agent report into it
    "agent": {"config", "ops", "memory", "tools", "persona"},  # headless: never bot or adapters
    "chat": {"config", "ops", "agent", "memory"},  # the bot <-> adapters contract
    "adapters": {"config", "ops", "agent", "chat"},  # never memory or tools
    # shared state for replicas: implements the agent's, chat's and memory's swap points in Redis
    "cluster": {"config", "ops", "persona", "memory", "agent", "chat"},
    "bot": {"config", "ops", "net", "persona", "memory", "tools", "agent", "chat", "adapters", "cluster"},
    "eval": {"config", "agent", "memory", "persona", "tools"},  # a runner beside the bot
    TOP: {"config", "ops", "net", "persona", "memory", "tools", "agent", "chat", "adapters", "bot", "eval", "cluster"},
}
for _name, _allowed in LAYERS.items():
    if _name not in ("scope", "config"):  # config still imports nothing of ours
        _allowed.add("scope")

# Where a package may reach another only for some of its modules: (importer, imported) -> allowed.
NARROW: dict[tuple[str, str], set[str]] = {
    ("chat", "agent"): {"kagentbot.agent.events"},  # the renderer reads agent events
    ("chat", "memory"): {"kagentbot.memory.types"},  # a message's audience is a memory value
    ("adapters", "agent"): {"kagentbot.agent.events"},  # the terminal prints agent events
}

# Single module edges allowed against LAYERS, each for a reason that is not the layering's.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("kagentbot.ops.image", "kagentbot.memory.embedders"):
        "the container's build step, run as `python -m kagentbot.ops.image`: an entry point",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("cli", "__main__"):
        return TOP
    return parts[1]


def imports_of(path: Path, module: str) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield from _from_names(node, module, is_package)


def _from_names(node: ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    yield target
    for alias in node.names:  # `from kagentbot.agent import events` names a module
        if (ROOT.parent / Path(*f"{target}.{alias.name}".split("."))).with_suffix(".py").exists():
            yield f"{target}.{alias.name}"


def edges(root: Path) -> list[tuple[str, str]]:
    """(importer module, imported module) for every import of ours between packages."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        for target in imports_of(path, module):
            if target.startswith("kagentbot.") and package_of(target) != package_of(module):
                found.append((module, target))
    return found


def violations(found: list[tuple[str, str]]) -> list[str]:
    bad = []
    for importer, target in found:
        source, dest = package_of(importer), package_of(target)
        if source not in LAYERS:
            bad.append(f"{importer}: package {source!r} has no place in LAYERS")
        elif (importer, target) in EXCEPTIONS:
            continue
        elif dest not in LAYERS[source]:
            bad.append(f"{importer} imports {target}: {source} may not import {dest}")
        elif (source, dest) in NARROW and not _within(target, NARROW[(source, dest)]):
            bad.append(f"{importer} imports {target}: {source} may import only {sorted(NARROW[(source, dest)])}")
    return bad


def _within(target: str, allowed: set[str]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def package_cycles(found: list[tuple[str, str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for importer, target in found:
        if (importer, target) not in EXCEPTIONS:
            graph.setdefault(package_of(importer), set()).add(package_of(target))
    return [cycle for start in sorted(graph) if (cycle := _cycle_from(start, graph))]


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str]:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return []


def test_every_import_points_the_allowed_way() -> None:
    assert violations(edges(ROOT)) == []


def test_no_cycle_between_packages() -> None:
    assert package_cycles(edges(ROOT)) == []


def test_every_package_has_a_place() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), f"place {sorted(packages - set(LAYERS))} in LAYERS"


def test_nothing_imports_the_command_line_or_the_eval_runner() -> None:
    found = edges(ROOT)
    assert [e for e in found if package_of(e[1]) == TOP] == []
    assert [e for e in found if package_of(e[1]) == "eval" and package_of(e[0]) != TOP] == []


def test_the_exceptions_are_still_needed() -> None:
    assert set(EXCEPTIONS) <= set(edges(ROOT)), "drop the exceptions no module needs any more"


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        ("agent/plan.py", "from kagentbot.bot.app import Bot\n", "agent may not import bot"),
        ("memory/fetch.py", "def f():\n    import kagentbot.tools.browse\n", "memory may not import tools"),
        ("adapters/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    from kagentbot.memory.store import MemoryStore\n", "adapters may not import memory"),
        ("config/x.py", "from kagentbot.ops import metrics\n", "config may not import ops"),
        ("chat/x.py", "from kagentbot.agent.loop import Agent\n", "chat may import only"),
        ("tools/x.py", "from ..agent import loop\n", "tools may not import agent"),
        ("newpkg/x.py", "from kagentbot.config.settings import Settings\n", "no place in LAYERS"),
    ],
)
def test_the_rules_catch_a_wrong_import(tmp_path: Path, where: str, source: str, expected: str) -> None:
    root = tmp_path / "kagentbot"
    module = root / where
    module.parent.mkdir(parents=True)
    (module.parent / "__init__.py").write_text("")
    module.write_text(source)
    assert any(expected in v for v in violations(edges(root)))


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "kagentbot"
    for pkg, source in (("bot", "import kagentbot.adapters.slack\n"), ("adapters", "import kagentbot.bot.app\n")):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "m.py").write_text(source)
    assert ["adapters", "bot", "adapters"] in package_cycles(edges(root))
