"""kagentbot's own figures, in Prometheus' format. The rest of the code calls the few functions
below; each is a no-op until `enable()` (the runner calls it when the ops endpoint is on), so
`kagentbot ask` and the tests pay nothing, not even the import. Labels are low-cardinality on purpose: platform,
outcome, tool, error kind; never a user, chat or message id."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter

TURN_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
FIRST_STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class Meters:
    """Every metric, in one registry of its own (the process's default registry stays clean)."""

    def __init__(self) -> None:
        # imported here: prometheus_client costs ~50 ms to import, which `kagentbot ask` need not pay
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("kagentbot_turns", "Questions answered, by platform and outcome "
                             "(answered, failed: the model could not answer, error, cancelled)",
                             ["platform", "outcome"], registry=r)
        self.turn_seconds = Histogram("kagentbot_turn_seconds", "Seconds from a question to its last message",
                                      ["platform"], buckets=TURN_BUCKETS, registry=r)
        self.first_step_seconds = Histogram(
            "kagentbot_turn_first_step_seconds", "Seconds from a question to the first thing shown for it "
            "(a planned step, or the answer's first words)", ["platform"], buckets=FIRST_STEP_BUCKETS, registry=r)
        self.llm_calls = Counter("kagentbot_llm_calls", "Calls to the LLM server, by call (complete: planning "
                                 "or native tool calls; stream: the answer) and outcome (ok, or the error kind)",
                                 ["call", "outcome"], registry=r)
        self.llm_seconds = Histogram("kagentbot_llm_call_seconds", "Seconds one LLM call took, to its last token",
                                     ["call"], buckets=LLM_BUCKETS, registry=r)
        self.llm_tokens = Counter("kagentbot_llm_tokens", "Tokens the LLM server reported, by direction "
                                  "(prompt, output)", ["direction"], registry=r)
        self.llm_slots = Gauge("kagentbot_llm_slots_in_use", "LLM requests in flight now", registry=r)
        self.llm_queue = Gauge("kagentbot_llm_queue_length", "LLM requests waiting for a free slot", registry=r)
        self.tools = Counter("kagentbot_tool_calls", "Tool runs, by tool and outcome (ok, failed)",
                             ["tool", "outcome"], registry=r)
        self.tool_seconds = Histogram("kagentbot_tool_seconds", "Seconds one tool run took", ["tool"],
                                      buckets=TOOL_BUCKETS, registry=r)
        self.sent = Counter("kagentbot_messages_sent", "Messages posted to a platform", ["platform"], registry=r)
        self.edits = Counter("kagentbot_message_edits", "Edits of posted messages (streamed answers, steps)",
                             ["platform"], registry=r)
        self.rate_limited = Counter("kagentbot_rate_limited", "Sends and edits the platform answered with "
                                    "429 (waited out, then tried again)", ["platform"], registry=r)
        self.retries = Counter("kagentbot_send_retries", "Sends and edits tried again after a network "
                               "error or a 5xx", ["platform"], registry=r)
        self.scheduled = Counter("kagentbot_scheduled_runs", "Scheduled questions started, by outcome "
                                 "(started, failed: could not be handed to the bot)", ["outcome"], registry=r)
        self.kb_documents = Gauge("kagentbot_kb_documents", "Documents in the knowledge base, every scope", registry=r)
        self.kb_chunks = Gauge("kagentbot_kb_chunks", "Chunks in the knowledge base, every scope", registry=r)
        self.connected = Gauge("kagentbot_platform_connected", "1 while the platform's connection is up",
                               ["platform"], registry=r)
        self.loop_lag = Gauge("kagentbot_event_loop_lag_seconds", "How late the event loop's last heartbeat ran",
                              registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: looking a child up costs more than using it."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


_live: Meters | None = None


def enable() -> Meters:
    """Start counting (idempotent): the figures live as long as the process."""
    global _live
    if _live is None:
        _live = Meters()
    return _live


def disable() -> None:
    """Stop counting and forget the figures (tests, benchmarks)."""
    global _live
    _live = None


def live() -> Meters | None:
    return _live


def turn_finished(platform: str, outcome: str, seconds: float, first_step: float | None) -> None:
    m = _live
    if m is None:
        return
    m.child(m.turns, platform, outcome).inc()
    m.child(m.turn_seconds, platform).observe(seconds)
    if first_step is not None:
        m.child(m.first_step_seconds, platform).observe(first_step)


def llm_call(call: str, outcome: str, seconds: float) -> None:
    m = _live
    if m is None:
        return
    m.child(m.llm_calls, call, outcome).inc()
    m.child(m.llm_seconds, call).observe(seconds)


def llm_tokens(prompt: int | None, output: int | None) -> None:
    m = _live
    if m is None:
        return
    if prompt:
        m.child(m.llm_tokens, "prompt").inc(prompt)
    if output:
        m.child(m.llm_tokens, "output").inc(output)


def tool_call(tool: str, ok: bool, seconds: float) -> None:
    m = _live
    if m is None:
        return
    m.child(m.tools, tool, "ok" if ok else "failed").inc()
    m.child(m.tool_seconds, tool).observe(seconds)


def _counter(pick: Callable[[Meters], Counter]) -> Callable[[str], None]:
    def count(label: str) -> None:
        m = _live
        if m is not None:
            m.child(pick(m), label).inc()

    return count


message_sent = _counter(lambda m: m.sent)
message_edited = _counter(lambda m: m.edits)
rate_limited = _counter(lambda m: m.rate_limited)
send_retried = _counter(lambda m: m.retries)
scheduled_run = _counter(lambda m: m.scheduled)
