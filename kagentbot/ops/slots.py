"""How busy the LLM gate is, read in one place for /metrics: every call of the LLM clients
waits at their fair slot gate (kagentbot.agent.slots), which counts both."""

from __future__ import annotations

from kagentbot.agent.slots import SlotGate


def llm_slots(gate: SlotGate) -> tuple[int, int]:
    """(requests in flight, requests waiting for a slot) at `gate`."""
    return gate.in_use(), gate.queue_length()
