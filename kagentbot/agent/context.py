"""The prompt budget each request gets: `agent.prompt_budget_tokens`, or less where the model
server's context is known to be smaller. The context is read once per model through `describe`
(Ollama's show endpoint, llama.cpp's `/props` and `/v1/models` meta, vLLM's `max_model_len`), in
the background from a turn's start, and remembered; until it is known, or where it cannot be
read, the configured budget stands."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# The longest a turn waits for the lookup before its first request (it runs while memory is read,
# so it has usually finished by then); a turn that would wait longer uses the configured budget.
CONTEXT_WAIT = 0.5
RETRY_AFTER = 300.0  # seconds before a failed lookup is tried again (the server may have been down)
MIN_BUDGET = 256  # tokens: the question and the prompt's fixed text still go out whole


def prompt_budget(configured: int, context: int | None, output_tokens: int, share: float) -> int:
    """`configured`, or `share` of the known context less the request's output cap, if smaller.
    The reserve for the output is at most a quarter of the context: a cap as large as the context
    (a persona's, or the default answer cap on a small server) would otherwise leave no prompt."""
    if not context or context <= 0:
        return configured
    reserve = min(max(output_tokens, 0), context // 4)
    return max(min(configured, int(context * share) - reserve), MIN_BUDGET)


class ContextSizes:
    """Each model's context size, as its server reports it, looked up once (shared by every turn)."""

    def __init__(self) -> None:
        self._known: dict[str, int | None] = {}  # None: the server does not say
        self._looking: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, float] = {}  # model: when the lookup last failed (monotonic)

    def start(self, llm: Any, model: str) -> None:
        """Begin the lookup for `model` in the background unless it is known or under way."""
        if model in self._known or model in self._looking:
            return
        if time.monotonic() - self._failed.get(model, float("-inf")) < RETRY_AFTER:
            return
        task = asyncio.get_running_loop().create_task(self._look_up(llm, model), name=f"context size of {model}")
        self._looking[model] = task
        task.add_done_callback(lambda _: self._looking.pop(model, None))

    async def context(self, model: str, wait: float = CONTEXT_WAIT) -> int | None:
        """`model`'s context in tokens; None when unknown (yet), after waiting `wait` s at most."""
        task = self._looking.get(model)
        if task is not None:
            await asyncio.wait({task}, timeout=wait)  # never cancels it: a later turn gets the answer
        return self._known.get(model)

    async def close(self) -> None:
        for task in list(self._looking.values()):
            task.cancel()
        await asyncio.gather(*self._looking.values(), return_exceptions=True)

    async def _look_up(self, llm: Any, model: str) -> None:
        try:
            info = await llm.describe(model)
        except Exception as exc:  # a failure keeps the configured budget; the turn itself will say what is wrong
            self._failed[model] = time.monotonic()
            log.info("could not read the context size of %s (%s); using agent.prompt_budget_tokens", model, exc)
            return
        self._known[model] = info.context_length
        log.info("the model server gives %s a context of %s tokens", model, info.context_length or "an unknown number of")
