"""How busy the LLM gate is, read in one place for /metrics: the clients let at most
`llm.max_connections` requests be in flight and make the rest wait on an asyncio.Semaphore
(`_in_flight`). When that gate changes, this function is the one to change."""

from __future__ import annotations

from typing import Any


def llm_slots(llm: Any) -> tuple[int, int]:
    """(requests in flight, requests waiting for a slot) of `llm`, or (0, 0) for a client
    without the gate (a test's model)."""
    client = getattr(llm, "inner", llm)
    gate = getattr(client, "_in_flight", None)
    settings = getattr(client, "_settings", None)
    if gate is None or settings is None:
        return 0, 0
    waiting = sum(1 for waiter in (gate._waiters or ()) if not waiter.done())
    return max(settings.max_connections - gate._value, 0), waiting
