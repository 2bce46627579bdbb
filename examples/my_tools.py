"""An example of custom kagentbot tools: typed async functions marked with @tool.

Enable with `tools.custom = ["examples/my_tools.py"]` in kagentbot.toml (a file path), or
`tools.custom = ["my_tools"]` when the module is importable, then check it with
`kagentbot tools run convert_units value=100 from_unit=km to_unit=mi`."""

from __future__ import annotations

from kagentbot.tools import ToolContext, ToolError, ToolOutput, tool

# factors to a base unit per kind: metres, kilograms, litres
UNITS = {
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mi": ("length", 1609.344),
    "ft": ("length", 0.3048), "in": ("length", 0.0254), "里": ("length", 500.0),
    "kg": ("mass", 1.0), "g": ("mass", 0.001), "lb": ("mass", 0.45359237), "斤": ("mass", 0.5),
    "l": ("volume", 1.0), "ml": ("volume", 0.001), "gal": ("volume", 3.785411784),
}


@tool
async def convert_units(value: float, from_unit: str, to_unit: str) -> ToolOutput:
    """Convert a quantity between units of length, mass or volume (metric, imperial and Chinese units).

    Args:
        value: the number to convert, e.g. 100
        from_unit: the unit it is in, e.g. km, mi, lb, 斤
        to_unit: the unit wanted, e.g. mi, kg
    """
    source, target = UNITS.get(from_unit.strip().lower()), UNITS.get(to_unit.strip().lower())
    if source is None or target is None:
        raise ToolError(f"known units: {', '.join(UNITS)}")
    if source[0] != target[0]:
        raise ToolError(f"cannot convert {source[0]} ({from_unit}) to {target[0]} ({to_unit})")
    result = value * source[1] / target[1]
    return ToolOutput(text=f"{value:g} {from_unit} = {result:.6g} {to_unit}", display=f"📏 {value:g} {from_unit} = {result:.4g} {to_unit}")


@tool(timeout=5)
async def greet_user(context: ToolContext, name: str = "") -> str:
    """Say hello to the person asking, in the language of the question.

    Args:
        name: how to address them; empty to use their user id
    """
    who = name or context.user_scope.rsplit(":", 1)[-1] or "there"
    return f"你好，{who}！" if context.language == "zh" else f"Hello, {who}!"
