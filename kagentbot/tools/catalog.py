"""Which tools a bot offers: the built-in ones plus the user's own modules (by module path in
`tools.custom`, or installed packages advertising the `kagentbot.tools` entry point group)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kagentbot.tools.registry import TOOL_ATTRIBUTE, Tool, ToolRegistry
from kagentbot.tools.timetools import TIME_TOOLS

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

ENTRY_POINT_GROUP = "kagentbot.tools"


class CatalogError(Exception):
    """A custom tool module or the `tools.enabled` list is wrong; the message names the culprit."""


def builtin_tools() -> tuple[Any, ...]:
    from kagentbot.tools.browse import browse_website
    from kagentbot.tools.encyclopedia import encyclopedia
    from kagentbot.tools.kbtool import kb_search
    from kagentbot.tools.weather import get_weather_info
    from kagentbot.tools.websearch import web_search

    return (*TIME_TOOLS, web_search, browse_website, encyclopedia, get_weather_info, kb_search)


def build_registry(settings: Settings | None = None) -> ToolRegistry:
    registry = ToolRegistry(builtin_tools())
    if settings is None:
        return registry
    for path in settings.tools.custom:
        _add_all(registry, tools_in_module(path), f"module {path!r}")
    for name, tools in entry_point_tools():
        _add_all(registry, tools, f"entry point {name!r}")
    if settings.tools.enabled:
        unknown = sorted(set(settings.tools.enabled) - set(registry.names()))
        if unknown:
            raise CatalogError(f"tools.enabled names unknown tools: {', '.join(unknown)}; known: {', '.join(registry.names())}")
        registry = registry.subset(settings.tools.enabled)
    return registry


def tools_in_module(path: str) -> list[Tool]:
    """Every @tool-marked function of a module given by its import path or a .py file's path."""
    try:
        module = _load_file(path) if path.endswith(".py") else importlib.import_module(path)
    except Exception as exc:  # a user's module can fail in any way; name it, do not crash blind
        raise CatalogError(f"custom tool module {path!r} could not be imported: {type(exc).__name__}: {exc}") from exc
    found = _marked(module)
    if not found:
        raise CatalogError(f"custom tool module {path!r} defines no @tool functions")
    return found


def _load_file(path: str) -> ModuleType:
    """A module from a file, for users who keep tools beside their kagentbot.toml."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"no such file {file}")
    name = "kagentbot_custom_" + "".join(ch if ch.isalnum() else "_" for ch in file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


def entry_point_tools() -> list[tuple[str, list[Tool]]]:
    """Tools of installed packages: each entry point names a module or a single @tool function."""
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = point.load()
        except Exception as exc:  # same reason as above: a third-party package failed to import
            raise CatalogError(f"tool entry point {point.name!r} ({point.value}) could not be loaded: {type(exc).__name__}: {exc}") from exc
        tools = _marked(target) if isinstance(target, ModuleType) else _marked_one(target)
        if not tools:
            raise CatalogError(f"tool entry point {point.name!r} ({point.value}) is not a @tool function or a module with any")
        found.append((point.name, tools))
    return found


def _marked(module: ModuleType) -> list[Tool]:
    return [spec for value in vars(module).values() for spec in _marked_one(value)]


def _marked_one(value: Any) -> list[Tool]:
    spec = getattr(value, TOOL_ATTRIBUTE, None)
    return [spec] if isinstance(spec, Tool) else []


def _add_all(registry: ToolRegistry, tools: Iterable[Tool], origin: str) -> None:
    for spec in tools:
        try:
            registry.add(spec)
        except ValueError as exc:
            raise CatalogError(f"{origin}: {exc}") from None
