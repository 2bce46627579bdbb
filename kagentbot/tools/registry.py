"""Tools are typed async functions. Name, description and JSON schema come from the signature
and docstring; the same schema feeds the KAgentSys `Commands:` list and native tool calling."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

if typing.TYPE_CHECKING:
    from kagentbot.config.settings import Settings
    from kagentbot.memory.types import Passage
    from kagentbot.tools.links import TurnLinks

TOOL_ATTRIBUTE = "__kagentbot_tool__"
log = logging.getLogger(__name__)


class ToolError(Exception):
    """A failure the model should read and reflect on (bad argument, service down)."""


@dataclass(frozen=True)
class ToolOutput:
    """What a tool may return when the prompt text and the chat rendering differ."""

    text: str
    display: str = ""


class KnowledgeSearcher(Protocol):
    """The knowledge base as seen by tools (implemented by kagentbot.memory)."""

    async def search_knowledge(self, query: str, limit: int) -> Sequence[Passage]: ...


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use besides its arguments. Built per turn by the agent's caller."""

    now: datetime  # timezone-aware
    language: str = "en"  # "en" | "zh": the question's language
    settings: Settings | None = None
    http: Any = None  # aiohttp.ClientSession shared by network tools
    knowledge: KnowledgeSearcher | None = None
    user_scope: str = ""  # "user:<platform>:<id>"
    chat_scope: str = ""  # "chat:<platform>:<id>"
    services: Any = None  # extension point: a typed services object of the bot
    links: TurnLinks | None = None  # addresses seen this turn; None: not a model's turn (the CLI)


@dataclass(frozen=True)
class ToolResult:
    name: str
    ok: bool
    text: str  # what the model reads (truncated to the budget)
    display: str  # compact, for chat
    elapsed: float


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Awaitable[Any]]
    arguments_model: type[BaseModel]
    context_param: str | None  # the parameter that receives the ToolContext, if any
    timeout: float | None = None
    network: bool = False

    def function_spec(self) -> dict[str, Any]:
        """The OpenAI-function JSON object KAgentLMs were trained on."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def tool(
    func: Callable[..., Awaitable[Any]] | None = None,
    *,
    name: str | None = None,
    timeout: float | None = None,
    network: bool = False,
) -> Any:
    """Mark an async function as a tool: `@tool` or `@tool(name=..., timeout=..., network=True)`."""

    def mark(f: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        setattr(f, TOOL_ATTRIBUTE, describe(f, name=name, timeout=timeout, network=network))
        return f

    return mark(func) if func is not None else mark


def describe(
    func: Callable[..., Awaitable[Any]],
    *,
    name: str | None = None,
    timeout: float | None = None,
    network: bool = False,
) -> Tool:
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"tool {func.__qualname__} must be an async function")
    summary, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    model, context_param = _arguments_model(func, arg_docs)
    return Tool(
        name=name or func.__name__,
        description=summary or func.__name__.replace("_", " "),
        parameters=_clean_schema(model.model_json_schema()),
        func=func,
        arguments_model=model,
        context_param=context_param,
        timeout=timeout,
        network=network,
    )


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Google style: a summary, then `Args:` with `name: description` lines."""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for raw in doc.splitlines():
        line = raw.strip()
        if line.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args and line.endswith(":") and " " not in line:  # next section (Returns:)
            in_args = False
            continue
        if not in_args:
            summary_lines.append(line)
            continue
        head, sep, rest = line.partition(":")
        if sep and raw.startswith((" ", "\t")) and " " not in head.strip() and not raw.startswith("        "):
            current = head.strip().split(" ")[0]
            args[current] = rest.strip()
        elif current and line:
            args[current] = f"{args[current]} {line}".strip()
    summary = " ".join(" ".join(summary_lines).split())
    return summary, args


def _arguments_model(func: Callable[..., Any], arg_docs: dict[str, str]) -> tuple[type[BaseModel], str | None]:
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    context_param = None
    for pname, param in inspect.signature(func).parameters.items():
        annotation = hints.get(pname, str)
        if annotation is ToolContext:
            context_param = pname
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, Field(default, description=arg_docs.get(pname)))
    # models often send numbers as strings and extra keys; accept both
    config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    model = create_model(f"{func.__name__}_arguments", __config__=config, **fields)
    return model, context_param


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles so the Commands: lines stay short."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    props = {}
    for key, value in schema.get("properties", {}).items():
        props[key] = {k: v for k, v in value.items() if k != "title"}
    schema["properties"] = props
    schema.setdefault("required", [])
    return schema


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool | Callable[..., Any]) -> Tool:
        spec = item if isinstance(item, Tool) else getattr(item, TOOL_ATTRIBUTE, None) or describe(item)
        if spec.name in self._tools and self._tools[spec.name].func is not spec.func:
            raise ValueError(f"two tools are named {spec.name!r}")
        self._tools[spec.name] = spec
        return spec

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def subset(self, names: Iterable[str] | None) -> ToolRegistry:
        """Only the named tools (unknown names ignored); None keeps them all."""
        if names is None:
            return self
        wanted = set(names)
        return ToolRegistry(t for n, t in self._tools.items() if n in wanted)

    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    async def invoke(
        self,
        name: str,
        args: dict[str, Any],
        context: ToolContext,
        *,
        timeout: float = 30.0,
        max_chars: int = 3000,
    ) -> ToolResult:
        """Run a tool; every failure becomes a ToolResult with ok=False and a readable text."""
        started = time.perf_counter()
        spec = self._tools.get(name)
        try:
            if spec is None:
                raise ToolError(f"there is no tool named {name!r}; available: {', '.join(self._tools)}")
            output = await asyncio.wait_for(self._call(spec, args, context), spec.timeout or timeout)
            text, display = _render(output)
            ok = True
        except ToolError as exc:
            text = display = f"error: {exc}"
            ok = False
        except (TimeoutError, asyncio.TimeoutError):
            text = display = f"error: {name} took longer than {spec.timeout if spec and spec.timeout else timeout:g} s"
            ok = False
        except Exception as exc:  # a tool's own bug (often a custom tool): one failed step, not a failed turn
            log.exception("tool %s failed", name)
            text = f"error: {name} failed unexpectedly ({type(exc).__name__}: {exc})"
            display = f"error: {name} failed unexpectedly ({type(exc).__name__}; details in the bot's log)"
            ok = False
        return ToolResult(name, ok, truncate(text, max_chars), truncate(display, 400), time.perf_counter() - started)

    async def _call(self, spec: Tool, args: dict[str, Any], context: ToolContext) -> Any:
        try:
            parsed = spec.arguments_model.model_validate(args or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"bad arguments for {spec.name}: {problems}{_unknown_names(spec, args)}") from None
        kwargs = dict(parsed)
        if spec.context_param:
            kwargs[spec.context_param] = context
        return await spec.func(**kwargs)


def _unknown_names(spec: Tool, args: dict[str, Any] | None) -> str:
    """The model's wrong argument names, said back to it with the right ones (a bare 'start_time
    is missing' does not tell it that its `start` was the mistake)."""
    unknown = [name for name in (args or {}) if name not in spec.parameters.get("properties", {})]
    if not unknown:
        return ""
    takes = ", ".join(describe_arguments(spec.parameters)) or "no arguments"
    return f". {spec.name} does not take {', '.join(repr(n) for n in unknown)}; it takes {takes}"


_JSON_TYPES: dict[str, str] = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
               "array": "list", "object": "dict", "null": "None"}


def describe_arguments(schema: dict[str, Any]) -> list[str]:
    """`name: type = default` for each argument, as a person (or a model) reads a signature."""
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        text = f"{name}: {_type_name(prop)}"
        if name not in required and "default" in prop:
            text += f" = {json.dumps(prop['default'], ensure_ascii=False)}"
        parts.append(text)
    return parts


def _type_name(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " | ".join(_type_name(option) for option in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(json.dumps(value, ensure_ascii=False) for value in prop["enum"])
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(_json_type(k) for k in kind)
    return _json_type(kind)


def _json_type(name: str) -> str:
    return _JSON_TYPES.get(name, name)


def _render(output: Any) -> tuple[str, str]:
    if isinstance(output, ToolOutput):
        return output.text, output.display or output.text
    if isinstance(output, str):
        return output, output
    text = json.dumps(output, ensure_ascii=False, default=str, separators=(",", ":"))
    return text, text


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = " …[truncated]"
    return text[: max(0, limit - len(marker))] + marker
