"""Which tools a bot offers: the built-in ones plus the user's own modules."""

from __future__ import annotations

from typing import Any

from kagentbot.tools.registry import ToolRegistry
from kagentbot.tools.timetools import TIME_TOOLS


def build_registry(settings: Any = None) -> ToolRegistry:
    registry = ToolRegistry(TIME_TOOLS)
    if settings is not None and settings.tools.enabled:
        registry = registry.subset(settings.tools.enabled)
    return registry
