"""The LLM behind one small interface: Ollama (default) and any OpenAI-compatible server
(vLLM, llama.cpp server). Both stream; both turn transport failures into `LLMError`s whose
message names the model and says what to do. Messages call the host "the model server": they
reach chat users, who should see no internal address (let alone credentials in it); the log
line written with each error names the host, its userinfo cut out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kagentbot.agent.slots import FairGate, SlotGate, current_claim, holding
from kagentbot.config.redact import redact_url
from kagentbot.config.settings import LLMSettings
from kagentbot.ops.metrics import llm_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatReply:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    cut: bool = False  # the server stopped it at the output cap


@dataclass(frozen=True)
class ModelInfo:
    name: str
    context_length: int | None = None
    supports_tools: bool | None = None  # None: the server does not say
    details: dict[str, Any] = field(default_factory=dict)


class LLMError(Exception):
    """Any failure to get an answer from the model. `str(exc)` is safe to show to a user."""

    retryable = False


class LLMUnavailable(LLMError):
    retryable = True


class LLMTimeout(LLMError):
    retryable = True


class ModelNotFound(LLMError):
    pass


class SchemaRejected(LLMError):
    """The server refused a request for schema-constrained output (it has no structured output)."""


# What a server without structured output answers a schema request with. Other refusals (429 busy,
# 401/403, 404 no such model) say nothing about the schema and must not turn it off for good.
SCHEMA_REFUSALS = frozenset({400, 415, 422, 501})


Message = dict[str, Any]

# What `stream` yields last when the server stopped the answer at its output cap (num_predict /
# max_tokens): the loop tells the user the answer was cut. Compared by identity, never shown.
ANSWER_CUT = "\x00answer cut at the output limit"


class LLMClient(Protocol):
    host: str
    slots: SlotGate  # the server's slots, shared fairly by every call

    async def complete(
        self, messages: Sequence[Message], *, model: str, options: dict[str, Any], tools: Sequence[dict] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> ChatReply: ...

    def stream(self, messages: Sequence[Message], *, model: str, options: dict[str, Any]) -> AsyncIterator[str]: ...

    def stream_reply(
        self, messages: Sequence[Message], *, model: str, options: dict[str, Any], tools: Sequence[dict] | None = None,
    ) -> AsyncIterator[str | ChatReply]: ...

    async def describe(self, model: str) -> ModelInfo: ...

    async def list_models(self) -> list[str]: ...

    async def close(self) -> None: ...


def sampling_options(settings: LLMSettings, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    options = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "num_ctx": settings.num_ctx,
        "num_predict": settings.answer_max_tokens,
    }
    options.update(overrides or {})
    return options


def make_client(settings: LLMSettings, slots: SlotGate | None = None) -> LLMClient:
    """`slots`: the gate every call waits at (default: a fair gate of `max_connections`)."""
    if settings.backend == "openai":
        return OpenAICompatibleClient(settings, slots)
    return OllamaClient(settings, slots)


def _slot(gate: SlotGate):
    """One call's slot, claimed for the turn running in this task."""
    return holding(gate, current_claim.get())


class _SchemaFallback:
    """Constrained output where the server has it: a server that refuses a JSON schema once is
    asked in plain text from then on (the caller's text parser is the fallback)."""

    host: str
    schema_refused = False

    async def complete(self, messages, *, model, options, tools=None, schema=None) -> ChatReply:
        if schema is not None and not self.schema_refused:
            try:
                return await self._complete(messages, model=model, options=options, tools=tools, schema=schema)
            except SchemaRejected as exc:
                self.schema_refused = True
                log.warning("%s refused schema-constrained output (%s); planning from free text from now on",
                            self.host, exc)
        return await self._complete(messages, model=model, options=options, tools=tools, schema=None)

    async def _complete(self, messages, *, model, options, tools, schema) -> ChatReply:
        raise NotImplementedError


class OllamaClient(_SchemaFallback):
    """Ollama's HTTP API through the official `ollama` AsyncClient."""

    def __init__(self, settings: LLMSettings, slots: SlotGate | None = None) -> None:
        import httpx
        import ollama

        self.host = redact_url(settings.host)  # for logs and the doctor; the client gets the real one
        self._settings = settings
        self._ollama = ollama
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        self._client = ollama.AsyncClient(host=settings.host, timeout=timeout, limits=_pool_limits(settings))
        self.slots = slots or FairGate(settings.max_connections)

    async def _complete(self, messages, *, model, options, tools=None, schema=None) -> ChatReply:
        tool_specs = [{"type": "function", "function": spec} for spec in tools] if tools else None
        async with _slot(self.slots), self._errors(model, constrained=schema is not None):
            response = await self._deadline(model).wait(self._client.chat(
                model=model, messages=list(messages), options=options, tools=tool_specs,
                keep_alive=self._settings.keep_alive, stream=False, format=schema,
            ))
        llm_tokens(response.prompt_eval_count, response.eval_count)
        calls = tuple(
            ToolCall(call.function.name, dict(call.function.arguments or {}))
            for call in (response.message.tool_calls or ())
        )
        return _logged(ChatReply(response.message.content or "", calls, response.done_reason == "length"), model)

    async def stream(self, messages, *, model, options) -> AsyncIterator[str]:
        async with _slot(self.slots), self._errors(model):
            deadline = self._deadline(model)
            parts = await deadline.wait(self._client.chat(
                model=model, messages=list(messages), options=options,
                keep_alive=self._settings.keep_alive, stream=True,
            ))
            said = _Said(model)
            async with contextlib.aclosing(deadline.each(parts)) as pieces:
                async for part in pieces:
                    if part.message.content:
                        said.add(part.message.content)
                        yield part.message.content
                    if part.done:
                        llm_tokens(part.prompt_eval_count, part.eval_count)
                    if part.done and part.done_reason == "length":
                        yield ANSWER_CUT
            said.log()

    async def stream_reply(self, messages, *, model, options, tools=None) -> AsyncIterator[str | ChatReply]:
        """A reply that may call tools, streamed: its text as it comes, then the whole ChatReply
        (Ollama sends the calls in a part of their own)."""
        tool_specs = [{"type": "function", "function": spec} for spec in tools] if tools else None
        async with _slot(self.slots), self._errors(model):
            deadline = self._deadline(model)
            parts = await deadline.wait(self._client.chat(
                model=model, messages=list(messages), options=options, tools=tool_specs,
                keep_alive=self._settings.keep_alive, stream=True,
            ))
            text: list[str] = []
            calls: list[ToolCall] = []
            cut = False
            try:
                async with contextlib.aclosing(deadline.each(parts)) as pieces:
                    async for part in pieces:
                        calls.extend(ToolCall(call.function.name, dict(call.function.arguments or {}))
                                     for call in (part.message.tool_calls or ()))
                        if part.message.content:
                            text.append(part.message.content)
                            yield part.message.content
                        if part.done:
                            llm_tokens(part.prompt_eval_count, part.eval_count)
                            cut = part.done_reason == "length"
            except GeneratorExit:  # the reader stopped early (the answer cap): what came is still logged
                _logged(ChatReply("".join(text), tuple(calls), True), model)
                raise
            yield _logged(ChatReply("".join(text), tuple(calls), cut), model)

    async def describe(self, model: str) -> ModelInfo:
        async with self._errors(model):
            shown = await self._client.show(model)
        info = dict(shown.modelinfo or {})
        context = next((v for k, v in info.items() if k.endswith(".context_length")), None)
        capabilities = list(getattr(shown, "capabilities", None) or [])
        if capabilities:
            tools = "tools" in capabilities
        else:
            tools = ".Tools" in (shown.template or "")
        return ModelInfo(model, int(context) if context else None, tools, {"capabilities": capabilities})

    async def list_models(self) -> list[str]:
        async with self._errors(""):
            listed = await self._client.list()
        return [m.model for m in listed.models if m.model]

    async def close(self) -> None:
        await self._client._client.aclose()  # the ollama client exposes no close of its own

    def _errors(self, model: str, constrained: bool = False) -> _Translate:
        return _Translate(self._translate_ollama, model, self.host, constrained)

    def _deadline(self, model: str) -> _Deadline:
        return _Deadline(self._settings.call_deadline, "the model server (Ollama)", model)

    def _translate_ollama(self, exc: BaseException, model: str, spent: float, constrained: bool) -> LLMError | None:
        import httpx
        import pydantic

        if isinstance(exc, self._ollama.ResponseError):
            return self._status_error(exc, model, constrained)
        if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):
            return LLMError(
                f"the model server sent a reply that is not in Ollama's format ({_first_line(exc)}): "
                "check the server, or set KAGENTBOT_LLM__BACKEND=openai if it is an OpenAI-compatible one"
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(
                f"the model server (Ollama) did not answer within {self._settings.timeout:g} s "
                f"(gave up after {spent:.0f} s): the model may still be loading or too slow for this length; "
                "try again, or raise KAGENTBOT_LLM__TIMEOUT"
            )
        if _broke_off(exc):
            return LLMUnavailable(
                f"the connection to the model server (Ollama) broke off while {model!r} was answering: try again; "
                "if it keeps happening, check the server's log (it may have run out of memory or restarted)"
            )
        if isinstance(exc, (ConnectionError, httpx.TransportError)):
            return LLMUnavailable(
                f"cannot reach the model server (Ollama): start it with `ollama serve`, or point "
                "KAGENTBOT_LLM__HOST (or OLLAMA_HOST) at a running server"
            )
        return None

    def _status_error(self, exc: Any, model: str, constrained: bool) -> LLMError:
        detail = error_text(str(exc.error))
        if exc.status_code == 404 and not model:  # the model list itself is missing: not Ollama
            return LLMError(
                f"the model server is not an Ollama server (404 for /api/tags: {detail}): "
                "set KAGENTBOT_LLM__BACKEND=openai if it is OpenAI-compatible (llama.cpp, vLLM), "
                "or point KAGENTBOT_LLM__HOST at Ollama"
            )
        if exc.status_code == 404 and "not found" in detail.lower():
            return ModelNotFound(
                f"the model {model!r} is not on the model server (Ollama): "
                f"run `ollama pull {model}` there, or set KAGENTBOT_LLM__MODEL to a model it has"
            )
        kind = SchemaRejected if constrained and exc.status_code in SCHEMA_REFUSALS else LLMError
        return kind(f"the model server (Ollama) answered {exc.status_code} for the model {model!r}: {detail}")


class _Translate:
    """`async with` block that re-raises transport errors as LLMErrors, logging which host; it
    times the call, so a timeout's message says how long was really spent."""

    def __init__(self, translate, model: str, host: str, constrained: bool = False) -> None:
        self._translate = translate
        self._model = model
        self._host = host  # already without userinfo
        self._constrained = constrained
        self._started = time.perf_counter()

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, LLMError):
            return False
        spent = time.perf_counter() - self._started
        translated = self._translate(exc, self._model, spent, self._constrained)
        if translated is None:
            return False
        log.warning("LLM server %s: %s (%s: %s)", self._host, translated, type(exc).__name__, exc)
        raise translated from exc


class _Deadline:
    """One call's overall deadline, from the moment it holds its slot. `llm.timeout` bounds each
    read only: a server that trickles a token every few seconds would hold the slot forever.
    Only awaits are timed (never a span across a `yield`), so the consumer's own work between
    pieces is never cancelled by it."""

    def __init__(self, seconds: float, server: str, model: str) -> None:
        self._seconds = seconds
        self._when = asyncio.get_running_loop().time() + seconds
        self._server = server
        self._model = model

    async def wait(self, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout_at(self._when):
                return await awaitable
        except TimeoutError as exc:
            raise LLMTimeout(
                f"{self._server} took longer than {self._seconds:g} s (llm.call_deadline) to answer with "
                f"{self._model!r}: it may be overloaded or stuck repeating itself; try again, or raise "
                "KAGENTBOT_LLM__CALL_DEADLINE"
            ) from exc

    async def each(self, items: Any) -> AsyncGenerator[Any, None]:
        """The pieces of a streamed reply, each awaited within the deadline; the stream is closed
        however the iteration ends (deadline, error, or the consumer stopping early)."""
        try:
            while True:
                try:
                    item = await self.wait(anext(items))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await _close_stream(items)


async def _close_stream(items: Any) -> None:
    close = getattr(items, "aclose", None) or getattr(items, "close", None)  # ollama: a generator; openai: AsyncStream
    if close is not None:
        await close()


class OpenAICompatibleClient(_SchemaFallback):
    """Any server with OpenAI's chat-completions API: vLLM, llama.cpp server, LM Studio."""

    def __init__(self, settings: LLMSettings, slots: SlotGate | None = None) -> None:
        import openai

        self._openai = openai
        self._settings = settings
        base = settings.host if settings.host.rstrip("/").endswith("/v1") else settings.host + "/v1"
        self.host = redact_url(base)
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        # no hidden retries: a retried call doubles the wait while the message names one timeout
        self._client = openai.AsyncOpenAI(base_url=base, api_key=key, timeout=settings.timeout, max_retries=0,
                                          http_client=openai.DefaultAsyncHttpxClient(limits=_pool_limits(settings)))
        self.slots = slots or FairGate(settings.max_connections)

    def _params(self, messages, model, options) -> dict[str, Any]:
        extra = {k: v for k, v in options.items() if k not in ("temperature", "top_p", "num_ctx", "num_predict")}
        params = {
            "model": model, "messages": _openai_messages(messages),
            "temperature": options.get("temperature"), "top_p": options.get("top_p"),
            "extra_body": extra or None,
        }
        if options.get("num_predict", -1) > 0:  # Ollama's -1 (or a persona's 0): no cap
            params["max_tokens"] = options["num_predict"]
        return params

    async def _complete(self, messages, *, model, options, tools=None, schema=None) -> ChatReply:
        params = self._params(messages, model, options)
        if tools:
            params["tools"] = [{"type": "function", "function": spec} for spec in tools]
        if schema is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "plan", "schema": schema, "strict": True}}
        async with _slot(self.slots), self._errors(model, constrained=schema is not None):
            response = await self._deadline(model).wait(self._client.chat.completions.create(**params))
        if response.usage is not None:
            llm_tokens(response.usage.prompt_tokens, response.usage.completion_tokens)
        choice = response.choices[0]
        calls = tuple(
            ToolCall(call.function.name, _json_object(call.function.arguments)) for call in (choice.message.tool_calls or ())
        )
        return _logged(ChatReply(choice.message.content or "", calls, choice.finish_reason == "length"), model)

    async def stream(self, messages, *, model, options) -> AsyncIterator[str]:
        async with _slot(self.slots), self._errors(model):
            deadline = self._deadline(model)
            chunks = await deadline.wait(self._client.chat.completions.create(
                **self._params(messages, model, options), stream=True
            ))
            said = _Said(model)
            async with contextlib.aclosing(deadline.each(chunks)) as pieces:
                async for chunk in pieces:
                    if chunk.usage is not None:  # servers that send it unasked (vLLM with usage on)
                        llm_tokens(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    if chunk.choices and chunk.choices[0].delta.content:
                        said.add(chunk.choices[0].delta.content)
                        yield chunk.choices[0].delta.content
                    if chunk.choices and chunk.choices[0].finish_reason == "length":
                        yield ANSWER_CUT
            said.log()

    async def stream_reply(self, messages, *, model, options, tools=None) -> AsyncIterator[str | ChatReply]:
        """A reply that may call tools, streamed: its text as it comes, then the whole ChatReply
        (each call's name and arguments gathered from its deltas, by index)."""
        params = self._params(messages, model, options)
        if tools:
            params["tools"] = [{"type": "function", "function": spec} for spec in tools]
        async with _slot(self.slots), self._errors(model):
            deadline = self._deadline(model)
            chunks = await deadline.wait(self._client.chat.completions.create(**params, stream=True))
            text: list[str] = []
            calls: dict[int, list[str]] = {}  # index: [name, arguments so far]
            cut = False
            try:
                async with contextlib.aclosing(deadline.each(chunks)) as pieces:
                    async for chunk in pieces:
                        if chunk.usage is not None:
                            llm_tokens(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        for delta in choice.delta.tool_calls or ():
                            call = calls.setdefault(delta.index, ["", ""])
                            if delta.function is not None:
                                call[0] += delta.function.name or ""
                                call[1] += delta.function.arguments or ""
                        if choice.delta.content:
                            text.append(choice.delta.content)
                            yield choice.delta.content
                        cut = cut or choice.finish_reason == "length"
            except GeneratorExit:  # the reader stopped early (the answer cap): what came is still logged
                _logged(ChatReply("".join(text), (), True), model)
                raise
            found = tuple(ToolCall(name, _json_object(args)) for _, (name, args) in sorted(calls.items()) if name)
            yield _logged(ChatReply("".join(text), found, cut), model)

    async def describe(self, model: str) -> ModelInfo:
        async with self._errors(model):
            listed = await self._client.models.list()
        for entry in listed.data:
            if entry.id == model:
                extra = entry.model_extra or {}
                props = await self._props()
                return ModelInfo(model, _context_length(extra, props), _template_tools(props), {**extra, **props})
        raise ModelNotFound(f"the model server does not serve {model!r}; it serves: "
                            + ", ".join(e.id for e in listed.data))

    async def list_models(self) -> list[str]:
        async with self._errors(""):
            listed = await self._client.models.list()
        return [entry.id for entry in listed.data]

    async def _props(self) -> dict[str, Any]:
        """llama.cpp's `/props` (context size, chat template capabilities); {} where there is none."""
        root = self.host.rstrip("/").removesuffix("/v1")
        try:
            response = await self._client._client.get(root + "/props", timeout=self._settings.connect_timeout)
            body = response.json() if response.status_code == 200 else {}
        except Exception:  # optional: other servers have no such endpoint, or answer it with anything
            return {}
        return body if isinstance(body, dict) else {}

    async def close(self) -> None:
        await self._client.close()

    def _errors(self, model: str, constrained: bool = False) -> _Translate:
        return _Translate(self._translate_openai, model, self.host, constrained)

    def _deadline(self, model: str) -> _Deadline:
        return _Deadline(self._settings.call_deadline, "the model server", model)

    def _translate_openai(self, exc: BaseException, model: str, spent: float, constrained: bool) -> LLMError | None:
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeout(f"the model server did not answer within {self._settings.timeout:g} s "
                              f"(gave up after {spent:.0f} s): raise KAGENTBOT_LLM__TIMEOUT, or lower the output caps")
        if _broke_off(exc):
            return LLMUnavailable(
                f"the connection to the model server broke off while {model!r} was answering: try again; "
                "if it keeps happening, check the server's log"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailable(
                f"cannot reach the model server (OpenAI-compatible): start it, or fix KAGENTBOT_LLM__HOST"
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelNotFound(f"the model server does not serve the model {model!r}: check KAGENTBOT_LLM__MODEL")
        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = error_text(str(body.get("message") or _body_text(exc) or exc.message))  # the server's own words
            kind = SchemaRejected if constrained and exc.status_code in SCHEMA_REFUSALS else LLMError
            return kind(f"the model server answered {exc.status_code} for the model {model!r}: {detail}")
        return None


def _pool_limits(settings: LLMSettings) -> Any:
    """As many pooled connections as requests we let be in flight (the rest wait on a semaphore
    before httpx sees them), all kept alive. httpx's pool scans every connection for each queued
    request, so hundreds of requests queued inside it cost more than the model calls."""
    import httpx

    return httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections)


def _broke_off(exc: BaseException) -> bool:
    """The server was reached, then the connection dropped mid-reply. The SDKs wrap the cause, and
    not always in the same httpx (the openai SDK may ship its own copy): match by class name."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if type(seen).__name__ in ("RemoteProtocolError", "ReadError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _openai_messages(messages: Sequence[Message]) -> list[Message]:
    """The loop keeps Ollama's message shape (arguments as an object, tool results by name);
    chat-completions servers want each call's id, arguments as a JSON string, and each tool
    result tied to its call by `tool_call_id`."""
    converted: list[Message] = []
    pending: list[str] = []  # ids of calls not yet answered, in order
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            calls: list[dict[str, Any]] = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                arguments = function.get("arguments", {})
                call_id = call.get("id") or f"call_{len(converted)}_{len(calls)}"
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False),
                }})
            message["tool_calls"] = calls
            pending = [c["id"] for c in calls]
        elif message.get("role") == "tool":
            message.pop("tool_name", None)
            if "tool_call_id" not in message and pending:
                message["tool_call_id"] = pending.pop(0)
        converted.append(message)
    return converted


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _context_length(models_entry: dict[str, Any], props: dict[str, Any]) -> int | None:
    """vLLM's `max_model_len`, llama.cpp's `meta.n_ctx` (the served context) or `/props`."""
    meta = models_entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    settings = props.get("default_generation_settings") or {}
    for value in (models_entry.get("max_model_len"), meta.get("n_ctx"), settings.get("n_ctx")):
        if isinstance(value, int) and value > 0:
            return value
    return None


def _template_tools(props: dict[str, Any]) -> bool | None:
    """Whether llama.cpp's chat template renders tools (without, the server drops them silently)."""
    caps = props.get("chat_template_caps")
    if isinstance(caps, dict) and "supports_tools" in caps:
        return bool(caps["supports_tools"])
    return None


_TAGS = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)
ERROR_CHARS = 300


def error_text(body: str) -> str:
    """A server's error body as one short line: an HTML page becomes its title (or its text)."""
    text = body.strip()
    if text[:200].lstrip().lower().startswith(("<!doctype", "<html", "<head", "<body")) or "</html>" in text[-200:].lower():
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAGS.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _body_text(exc: Any) -> str:
    """A non-JSON error body (an HTML page from a proxy), which the SDK does not parse."""
    try:
        return exc.response.text if isinstance(exc.body, (str, type(None))) else ""
    except Exception:  # a streamed response whose body was not read
        return ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


# Secrets a reply might repeat (from a prompt, a tool result): never written to the log.
_SECRETS = re.compile(
    r"(xox[abpr]-[\w-]+|xapp-[\w-]+|\b\d{6,}:[\w-]{30,}|(?i:bearer)\s+[\w.~+/-]+=*|sk-[\w-]{16,}|//[^/\s:@]+:[^/\s@]+@)"
)
REPLY_LOG_CHARS = 800


def redacted(text: str, limit: int = REPLY_LOG_CHARS) -> str:
    text = _SECRETS.sub("[redacted]", text)
    return text if len(text) <= limit else text[:limit] + f"…[{len(text) - limit} more chars]"


def _logged(reply: ChatReply, model: str) -> ChatReply:
    """`-v` shows every raw reply, so what the model said can be seen when a turn goes wrong."""
    if log.isEnabledFor(logging.DEBUG):
        calls = "; ".join(f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in reply.tool_calls)
        log.debug("model %s replied%s: %s%s", model, " (cut at the cap)" if reply.cut else "",
                  redacted(reply.content) or "(no text)", f" | tool calls: {redacted(calls)}" if calls else "")
    return reply


class _Said:
    """A streamed reply gathered for the debug log (only when it is on)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._parts: list[str] | None = [] if log.isEnabledFor(logging.DEBUG) else None

    def add(self, piece: str) -> None:
        if self._parts is not None:
            self._parts.append(piece)

    def log(self) -> None:
        if self._parts is not None:
            log.debug("model %s streamed: %s", self._model, redacted("".join(self._parts)) or "(no text)")
