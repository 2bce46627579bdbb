"""A fake OpenAI-compatible server (as vLLM and llama.cpp serve it) on loopback: `/v1/models`
and `/v1/chat/completions`, plain JSON and server-sent-event streams, tool calls, error bodies,
`response_format` json_schema (or its refusal), tool calls streamed as deltas; as llama.cpp,
also `/props` and `meta` in the model list."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from aiohttp import web

from tests.fakes.ollama_server import Scripted, capped, trickle_json


class FakeOpenAI:
    def __init__(self, models: tuple[str, ...] = ("kagentlm",), max_model_len: int = 32768, *,
                 llama_cpp: bool = False, n_ctx: int = 4096, template_tools: bool = False) -> None:
        self.models = models
        self.max_model_len = max_model_len
        self.llama_cpp = llama_cpp  # answer as llama-server does: meta.n_ctx, /props, no max_model_len
        self.n_ctx = n_ctx
        self.template_tools = template_tools
        self.accepts_response_format = True  # False: a server without structured output (400)
        self.requests: list[dict[str, Any]] = []
        self.model_lists = 0  # GET /v1/models requests
        self.models_fail = False  # True: the model list answers 500 (a proxy that passes chat completions only)
        self._script: list[Scripted] = []
        self.app = web.Application()
        self.app.add_routes([web.get("/v1/models", self._models), web.post("/v1/chat/completions", self._chat),
                             web.get("/props", self._props)])
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *replies: Scripted | str) -> None:
        self._script.extend(r if isinstance(r, Scripted) else Scripted(r) for r in replies)

    async def __aenter__(self) -> FakeOpenAI:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        self.model_lists += 1
        if self.models_fail:
            return web.json_response({"error": {"message": "upstream error", "code": 500}}, status=500)
        if self.llama_cpp:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "llamacpp",
                     "meta": {"vocab_type": 1, "n_vocab": 262144, "n_ctx": self.n_ctx, "n_ctx_train": 32768}}
                    for m in self.models]
        else:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": self.max_model_len}
                    for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _props(self, request: web.Request) -> web.Response:
        if not self.llama_cpp:
            return web.json_response({"error": {"message": "Not Found", "code": 404}}, status=404)
        return web.json_response({
            "default_generation_settings": {"n_ctx": self.n_ctx, "params": {}}, "total_slots": 1,
            "model_alias": self.models[0], "chat_template": "{{ messages }}",
            "chat_template_caps": {"supports_tools": self.template_tools, "supports_tool_calls": self.template_tools,
                                   "supports_system_role": False},
        })

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        problem = _message_problem(body.get("messages", []))
        if problem:  # what OpenAI, vLLM and llama.cpp refuse: 400 invalid_request_error
            return web.json_response({"error": {"message": problem, "type": "invalid_request_error", "code": 400}},
                                     status=400)
        if body.get("model") not in self.models:
            return web.json_response({"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                                "type": "NotFoundError", "code": 404}}, status=404)
        if body.get("response_format") and not self.accepts_response_format:
            return web.json_response({"error": {"message": "response_format is not supported by this server",
                                                "type": "invalid_request_error", "code": 400}}, status=400)
        reply = self._script.pop(0) if self._script else Scripted(status=500, error="no scripted reply")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status >= 400:
            return web.json_response({"error": {"message": reply.error, "type": "error", "code": reply.status}},
                                     status=reply.status)
        content, cut = capped(reply.content, None if reply.ignore_cap else body.get("max_tokens"))
        reply = replace(reply, content=content)
        finish = "length" if cut else "tool_calls" if reply.tool_calls else "stop"
        if body.get("stream"):
            return await self._stream(request, body, reply, finish)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
                for i, c in enumerate(reply.tool_calls)
            ]
        whole = {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        if reply.interval:
            return await trickle_json(request, whole, reply)
        return web.json_response(whole)

    async def _stream(self, request, body, reply: Scripted, finish: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [reply.content[i : i + reply.chunk] for i in range(0, len(reply.content), reply.chunk)]
        for n, piece in enumerate(pieces):
            if reply.cut_stream and n == len(pieces) // 2:
                request.transport.close()  # type: ignore[union-attr]
                return response
            if n and reply.interval:
                await asyncio.sleep(reply.interval)
            if n == 1 and reply.hold is not None:
                await reply.hold.wait()
            chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        for i, call in enumerate(reply.tool_calls):  # as vLLM and llama.cpp send them: id and name, then arguments in pieces
            arguments = json.dumps(call.get("arguments", {}))
            deltas = [{"index": i, "id": f"call_{i}", "type": "function", "function": {"name": call["name"], "arguments": ""}}]
            deltas += [{"index": i, "function": {"arguments": arguments[j : j + reply.chunk]}}
                       for j in range(0, len(arguments), reply.chunk)]
            for delta in deltas:
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        end = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
               "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


def _message_problem(messages: list[dict[str, Any]]) -> str:
    """The chat-completions message rules a real server enforces on tool calls."""
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        for call in message.get("tool_calls") or ():
            if not isinstance(call.get("id"), str) or call.get("type") != "function":
                return f"messages[{i}].tool_calls: each call needs an 'id' and type 'function'"
            arguments = call.get("function", {}).get("arguments")
            if not isinstance(arguments, str):
                return f"messages[{i}].tool_calls: 'function.arguments' must be a JSON string"
            json.loads(arguments)
            call_ids.add(call["id"])
        if message.get("role") == "tool" and message.get("tool_call_id") not in call_ids:
            return f"messages[{i}]: a 'tool' message must answer a preceding tool call by its tool_call_id"
    return ""
