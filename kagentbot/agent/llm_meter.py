"""Counting LLM calls without touching the clients: `metered(client)` wraps any LLMClient
(when metrics are on) to time each call and name how it ended. Tokens are reported by the
clients themselves (`metrics.llm_tokens`), since only they see the server's usage figures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from kagentbot.agent.llm import LLMClient, LLMError, LLMTimeout, LLMUnavailable, ModelNotFound
from kagentbot.ops import metrics

_KINDS: tuple[tuple[type[LLMError], str], ...] = (
    (LLMTimeout, "timeout"), (LLMUnavailable, "unavailable"), (ModelNotFound, "model_not_found"),
)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    for kind, name in _KINDS:
        if isinstance(exc, kind):
            return name
    return "server_error" if isinstance(exc, LLMError) else "error"


def metered(client: LLMClient) -> LLMClient:
    """`client`, counted when metrics are on; itself otherwise (no cost for `ask` and `chat`)."""
    return MeteredLLM(client) if metrics.live() is not None else client


class MeteredLLM:
    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner
        self.host = inner.host
        self.slots = inner.slots

    async def complete(self, messages, *, model, options, tools=None, schema=None):
        started, outcome = time.perf_counter(), "ok"
        try:
            return await self.inner.complete(messages, model=model, options=options, tools=tools, schema=schema)
        except BaseException as exc:
            outcome = error_kind(exc)
            raise
        finally:
            metrics.llm_call("complete", outcome, time.perf_counter() - started)

    async def stream(self, messages, *, model, options) -> AsyncIterator[str]:
        async with contextlib.aclosing(_counted("stream", self.inner.stream(messages, model=model,
                                                                             options=options))) as pieces:
            async for piece in pieces:
                yield piece

    async def stream_reply(self, messages, *, model, options, tools=None) -> AsyncIterator[Any]:
        replies = self.inner.stream_reply(messages, model=model, options=options, tools=tools)
        async with contextlib.aclosing(_counted("stream_reply", replies)) as pieces:
            async for piece in pieces:
                yield piece

    async def describe(self, model: str):
        return await self.inner.describe(model)

    async def list_models(self) -> list[str]:
        return await self.inner.list_models()

    async def close(self) -> None:
        await self.inner.close()


async def _counted(call: str, inner: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """`inner`'s pieces, the call timed and its outcome counted; `inner` is closed however it ends
    (the clients' streams hold a server slot until closed)."""
    started, outcome = time.perf_counter(), "cancelled"  # stays so when the reader stops early
    try:
        async with contextlib.aclosing(cast(AsyncGenerator[Any, None], inner)) as pieces:  # the clients' are generators
            async for piece in pieces:
                yield piece
        outcome = "ok"
    except BaseException as exc:
        outcome = "cancelled" if isinstance(exc, GeneratorExit) else error_kind(exc)
        raise
    finally:
        metrics.llm_call(call, outcome, time.perf_counter() - started)
