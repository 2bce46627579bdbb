"""How busy the LLM gate is, read in one place for /metrics: every call of the LLM clients
waits at their fair slot gate (kagentbot.agent.slots), which counts both."""

from __future__ import annotations

from typing import Protocol


class SlotCounts(Protocol):
    """What /metrics reads of a slot gate (kagentbot.agent.slots.SlotGate keeps it)."""

    def in_use(self) -> int: ...

    def queue_length(self) -> int: ...


def llm_slots(gate: SlotCounts) -> tuple[int, int]:
    """(requests in flight, requests waiting for a slot) at `gate`."""
    return gate.in_use(), gate.queue_length()
