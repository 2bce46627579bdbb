"""A fake Ollama server on loopback that speaks Ollama's HTTP wire format: streamed NDJSON and
plain `/api/chat` and `/api/generate`, tool calls, `/api/show`, `/api/tags`, `/api/embed`,
`/api/version`, and Ollama's error bodies. Tests script its replies; the real `ollama` client
talks to it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

CREATED_AT = "2026-11-25T00:00:00.000000Z"


@dataclass
class Scripted:
    """One reply. `content` is streamed in `chunk` sized pieces when the client streams."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name":..., "arguments": {...}}]
    status: int = 200
    error: str = ""  # with status >= 400: Ollama's {"error": ...} body
    delay: float = 0.0  # seconds before answering
    chunk: int = 6
    cut_stream: bool = False  # drop the connection mid-stream
    interval: float = 0.0  # seconds between streamed pieces (or between pieces of a plain body): a trickle
    ignore_cap: bool = False  # send all of `content` whatever num_predict / max_tokens say
    raw_lines: list[str] = field(default_factory=list)  # streamed as they are (a server that is not quite Ollama)
    hold: asyncio.Event | None = None  # a stream stops after its first piece until this is set


Responder = Callable[[dict[str, Any]], Scripted]


def capped(content: str, limit: Any) -> tuple[str, bool]:
    """`content` cut at `limit` tokens (a word with its trailing space counts as one), and whether
    it was: what a server does at num_predict / max_tokens."""
    if not isinstance(limit, int) or limit <= 0:
        return content, False
    words = re.findall(r"\S+\s*", content)
    if len(words) <= limit:
        return content, False
    return "".join(words[:limit]).rstrip(), True


@dataclass
class FakeModel:
    name: str
    context_length: int = 8192
    capabilities: tuple[str, ...] = ("completion",)
    family: str = "qwen2"


class FakeOllama:
    def __init__(self, models: list[FakeModel] | None = None, parallel: int = 0) -> None:
        # like OLLAMA_NUM_PARALLEL: at most `parallel` chat/generate requests are worked on at
        # once, the rest wait their turn inside the server (0: no limit)
        self._parallel = asyncio.Semaphore(parallel) if parallel else None
        self.calls = 0  # chat/generate requests taken up, errors included
        self.models = {m.name: m for m in (models or [FakeModel("kagentlm"), FakeModel("qwen2.5", capabilities=("completion", "tools"))])}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._script: list[Scripted] = []
        self.responder: Responder | None = None
        self.embed_dim = 16
        self.accepts_format = True  # False: an Ollama too old for JSON-schema `format` (400, as such servers answer)
        self.in_flight = 0  # chat/generate requests being answered now
        self.max_in_flight = 0
        self.app = web.Application()
        self.app.add_routes([
            web.post("/api/chat", self._chat),
            web.post("/api/generate", self._generate),
            web.post("/api/show", self._show),
            web.get("/api/tags", self._tags),
            web.post("/api/embed", self._embed),
            web.get("/api/version", self._version),
            web.get("/", self._root),
        ])
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- scripting ---------------------------------------------------------------------------
    def script(self, *replies: Scripted | str) -> None:
        self._script.extend(r if isinstance(r, Scripted) else Scripted(r) for r in replies)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path == "/api/chat"]

    def prompts(self) -> list[str]:
        """The text of the last user message of each chat request."""
        return [body["messages"][-1]["content"] for body in self.chat_requests()]

    def _next(self, body: dict[str, Any]) -> Scripted:
        if self._script:
            return self._script.pop(0)
        if self.responder is not None:
            return self.responder(body)
        return Scripted(status=500, error="fake Ollama: no scripted reply left")

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeOllama:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- endpoints ---------------------------------------------------------------------------
    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.0"})

    async def _tags(self, request: web.Request) -> web.Response:
        models = [{"name": f"{m}:latest" if ":" not in m else m, "model": m, "modified_at": CREATED_AT,
                   "size": 4_000_000_000, "digest": hashlib.sha256(m.encode()).hexdigest(),
                   "details": {"format": "gguf", "family": self.models[m].family, "parameter_size": "7B",
                               "quantization_level": "Q4_K_M"}} for m in self.models]
        return web.json_response({"models": models})

    def _missing(self, name: str) -> web.Response:
        return web.json_response({"error": f"model '{name}' not found"}, status=404)

    async def _show(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("/api/show", body))
        model = self.models.get(body.get("model") or body.get("name", ""))
        if model is None:
            return self._missing(body.get("model", ""))
        template = "{{ .System }}{{ .Prompt }}" + ("{{ if .Tools }}{{ .Tools }}{{ end }}" if "tools" in model.capabilities else "")
        return web.json_response({
            "modelfile": f"FROM {model.name}", "parameters": "temperature 0.1", "template": template,
            "details": {"format": "gguf", "family": model.family, "parameter_size": "7B", "quantization_level": "Q4_K_M"},
            "model_info": {"general.architecture": model.family, f"{model.family}.context_length": model.context_length},
            "capabilities": list(model.capabilities), "modified_at": CREATED_AT,
        })

    async def _embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("/api/embed", body))
        if body.get("model") not in self.models:
            return self._missing(body.get("model", ""))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"model": body["model"], "embeddings": [self._vector(t) for t in inputs]})

    def _vector(self, text: str) -> list[float]:
        """Deterministic: texts sharing words get similar vectors."""
        vec = [0.0] * self.embed_dim
        for word in text.lower().split():
            digest = hashlib.md5(word.encode()).digest()
            vec[digest[0] % self.embed_dim] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/api/chat", body))
        return await self._answer(request, body, lambda piece, calls: {"message": _message(piece, calls)})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/api/generate", body))
        return await self._answer(request, body, lambda piece, calls: {"response": piece})

    async def _answer(self, request: web.Request, body: dict[str, Any], shape) -> web.StreamResponse:
        if body.get("model") not in self.models:
            return self._missing(body.get("model", ""))
        if isinstance(body.get("format"), dict) and not self.accepts_format:
            return web.json_response({"error": "invalid format: expected \"json\" or a JSON schema"}, status=400)
        if self._parallel is None:
            return await self._work(request, body, shape)
        async with self._parallel:
            return await self._work(request, body, shape)

    async def _work(self, request: web.Request, body: dict[str, Any], shape) -> web.StreamResponse:
        self.calls += 1
        reply = self._next(body)
        if reply.delay:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await _think(request, reply.delay)
            finally:
                self.in_flight -= 1
        if request.transport is None or request.transport.is_closing():
            return web.Response(status=499)  # the client gave up waiting: nobody to answer
        if reply.status >= 400:
            return web.json_response({"error": reply.error or "internal error"}, status=reply.status)
        content, cut = capped(reply.content, None if reply.ignore_cap else (body.get("options") or {}).get("num_predict"))
        reply = replace(reply, content=content)
        base = {"model": body["model"], "created_at": CREATED_AT}
        final = {**base, "done": True, "done_reason": "length" if cut else "stop", "total_duration": 1000,
                 "load_duration": 10, "prompt_eval_count": 10, "eval_count": 10}
        if body.get("stream", True) is False:
            whole = {**base, **shape(reply.content, reply.tool_calls), **final}
            if reply.interval:
                return await trickle_json(request, whole, reply)
            return web.json_response(whole)
        return await self._stream(request, reply, base, final, shape)

    async def _stream(self, request, reply: Scripted, base, final, shape) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        if reply.raw_lines:
            for line in reply.raw_lines:
                await response.write((line + "\n").encode())
            await response.write_eof()
            return response
        pieces = [reply.content[i : i + reply.chunk] for i in range(0, len(reply.content), reply.chunk)]
        for n, piece in enumerate(pieces):
            if reply.cut_stream and n == len(pieces) // 2:
                request.transport.close()  # type: ignore[union-attr]
                return response
            if n and reply.interval:
                await asyncio.sleep(reply.interval)
            if n == 1 and reply.hold is not None:
                await reply.hold.wait()
            await response.write((json.dumps({**base, **shape(piece, []), "done": False}) + "\n").encode())
        if reply.tool_calls:
            await response.write((json.dumps({**base, **shape("", reply.tool_calls), "done": False}) + "\n").encode())
        await response.write((json.dumps({**final, **shape("", [])}) + "\n").encode())
        await response.write_eof()
        return response


async def trickle_json(request: web.Request, whole: dict[str, Any], reply: Scripted) -> web.StreamResponse:
    """A plain JSON reply sent `reply.chunk` bytes at a time, `reply.interval` seconds apart: each
    read gets something, so only a deadline on the whole call ends it."""
    data = json.dumps(whole).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for start in range(0, len(data), reply.chunk):
        if start:
            await asyncio.sleep(reply.interval)
        await response.write(data[start : start + reply.chunk])
    await response.write_eof()
    return response


async def _think(request: web.Request, seconds: float) -> None:
    """Take `seconds` over a reply, stopping early if the client hangs up (as Ollama drops a
    request whose client went away, freeing its slot)."""
    ends = asyncio.get_running_loop().time() + seconds
    while (left := ends - asyncio.get_running_loop().time()) > 0:
        if request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(min(left, 0.25))  # one sleep for a usual reply: each wake-up can run late


def _message(content: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [{"function": {"name": c["name"], "arguments": c.get("arguments", {})}} for c in calls]
    return message


def task(name: str, tool: str, **args: Any) -> str:
    """A KAgentSys one-task reply, as a KAgentLM writes it."""
    return json.dumps({"task_name": name, "command": {"name": tool, "args": args}}, ensure_ascii=False)


def complete(reason: str = "enough information") -> str:
    return task("finish", "task_complete", reason=reason)


def _serve_forever(port: int) -> None:
    """`python -m tests.fakes.ollama_server PORT`: a fake for trying the CLI by hand. Planning
    prompts get `task_complete`; everything else gets an answer quoting the prompt's last line."""

    async def main() -> None:
        fake = FakeOllama()
        fake.responder = lambda body: Scripted(
            complete() if "A new Task:" in body["messages"][-1]["content"]
            else "(fake model) " + body["messages"][-1]["content"].strip().splitlines()[-1][:200]
        )
        print(await fake.start(port), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    import sys

    _serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 11434)
