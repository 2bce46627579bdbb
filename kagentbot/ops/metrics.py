"""kagentbot's own figures, in Prometheus' format. The rest of the code calls the few functions
below; each is a no-op until `enable()` (the runner calls it when the ops endpoint is on), so
`kagentbot ask` and the tests pay nothing, not even prometheus_client's import. Labels are
low-cardinality on purpose: platform, outcome, tool, error kind; never a user, chat or message id.

The figures are plain numbers in dicts, updated from the event loop's thread only (every caller
is a coroutine or runs on the loop), which costs a fraction of a microsecond per update; they
become Prometheus metric families only when /metrics is read (prometheus_client's own counters
take a lock and a label lookup per update, several microseconds: a turn makes ~20 updates)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

TURN_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
FIRST_STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

Key = tuple[str, ...]


class Counter:
    __slots__ = ("name", "help", "labels", "values")

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[Key, float] = {}

    def inc(self, key: Key, amount: float = 1) -> None:
        self.values[key] = self.values.get(key, 0) + amount

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.help, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(key, value)
        return family


class Gauge(Counter):
    __slots__ = ()

    def set(self, key: Key, value: float) -> None:
        self.values[key] = value

    def family(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(key, value)
        return family


class Histogram:
    __slots__ = ("name", "help", "labels", "bounds", "series")

    def __init__(self, name: str, help: str, labels: tuple[str, ...], bounds: tuple[float, ...]) -> None:
        self.name, self.help, self.labels, self.bounds = name, help, labels, bounds
        self.series: dict[Key, list[float]] = {}  # per key: a count per bucket (+Inf last), then the sum

    def observe(self, key: Key, value: float) -> None:
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        counts[-1] += value

    def family(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(self.name, self.help, labels=self.labels)
        for key, counts in self.series.items():
            cumulative: float = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*map(_bound, self.bounds), "+Inf"), counts[:-1]):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(key, buckets, counts[-1])
        return family


def _bound(value: float) -> str:
    return repr(float(value))


class Meters:
    """Every metric; `registry` is a prometheus_client registry of its own (the process's
    default registry stays clean) that reads them when scraped."""

    def __init__(self) -> None:
        self.turns = Counter("kagentbot_turns", "Questions handled, by platform and outcome (answered, failed: "
                             "the model could not answer, error, cancelled)", ("platform", "outcome"))
        self.turn_seconds = Histogram("kagentbot_turn_seconds", "Seconds from a question to its last message",
                                      ("platform",), TURN_BUCKETS)
        self.first_step_seconds = Histogram(
            "kagentbot_turn_first_step_seconds", "Seconds from a question to the first thing shown for it "
            "(a planned step, or the answer's first words)", ("platform",), FIRST_STEP_BUCKETS)
        self.llm_calls = Counter("kagentbot_llm_calls", "Calls to the LLM server, by call (complete: planning or "
                                 "native tool calls; stream: the answer) and outcome (ok, or the error kind)",
                                 ("call", "outcome"))
        self.llm_seconds = Histogram("kagentbot_llm_call_seconds", "Seconds one LLM call took, to its last token",
                                     ("call",), LLM_BUCKETS)
        self.llm_tokens = Counter("kagentbot_llm_tokens", "Tokens the LLM server reported, by direction "
                                  "(prompt, output)", ("direction",))
        self.llm_slots = Gauge("kagentbot_llm_slots_in_use", "LLM requests in flight now")
        self.llm_queue = Gauge("kagentbot_llm_queue_length", "LLM requests waiting for a free slot")
        self.tools = Counter("kagentbot_tool_calls", "Tool runs, by tool and outcome (ok, failed)", ("tool", "outcome"))
        self.tool_seconds = Histogram("kagentbot_tool_seconds", "Seconds one tool run took", ("tool",), TOOL_BUCKETS)
        self.sent = Counter("kagentbot_messages_sent", "Messages posted to a platform", ("platform",))
        self.edits = Counter("kagentbot_message_edits", "Edits of posted messages (streamed answers, steps)",
                             ("platform",))
        self.rate_limited = Counter("kagentbot_rate_limited", "Sends and edits the platform answered with 429 "
                                    "(waited out, then tried again)", ("platform",))
        self.retries = Counter("kagentbot_send_retries", "Sends and edits tried again after a network error "
                               "or a 5xx", ("platform",))
        self.scheduled = Counter("kagentbot_scheduled_runs", "Scheduled questions, by outcome (started, "
                                 "failed: could not be handed to the bot)", ("outcome",))
        self.kb_documents = Gauge("kagentbot_kb_documents", "Documents in the knowledge base, every scope")
        self.kb_chunks = Gauge("kagentbot_kb_chunks", "Chunks in the knowledge base, every scope")
        self.connected = Gauge("kagentbot_platform_connected", "1 while the platform's connection is up",
                               ("platform",))
        self.loop_lag = Gauge("kagentbot_event_loop_lag_seconds", "How late the event loop's last heartbeat ran")
        self._registry: Any = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(self)
        return self._registry

    def collect(self) -> Iterator[Any]:
        """prometheus_client's Collector protocol: every metric as a family, read now."""
        for value in vars(self).values():
            if isinstance(value, (Counter, Histogram)):
                yield value.family()


_live: Meters | None = None


def enable(meters: Meters | None = None) -> Meters:
    """Start counting (idempotent): the figures live as long as the process. `meters`: go on
    counting into these (a benchmark switching counting off and on again)."""
    global _live
    if meters is not None:
        _live = meters
    elif _live is None:
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
    m.turns.inc((platform, outcome))
    m.turn_seconds.observe((platform,), seconds)
    if first_step is not None:
        m.first_step_seconds.observe((platform,), first_step)


def llm_call(call: str, outcome: str, seconds: float) -> None:
    m = _live
    if m is None:
        return
    m.llm_calls.inc((call, outcome))
    m.llm_seconds.observe((call,), seconds)


def llm_tokens(prompt: int | None, output: int | None) -> None:
    m = _live
    if m is None:
        return
    if prompt:
        m.llm_tokens.inc(("prompt",), prompt)
    if output:
        m.llm_tokens.inc(("output",), output)


def tool_call(tool: str, ok: bool, seconds: float) -> None:
    m = _live
    if m is None:
        return
    m.tools.inc((tool, "ok" if ok else "failed"))
    m.tool_seconds.observe((tool,), seconds)


def message_sent(platform: str) -> None:
    m = _live
    if m is not None:
        m.sent.inc((platform,))


def message_edited(platform: str) -> None:
    m = _live
    if m is not None:
        m.edits.inc((platform,))


def rate_limited(platform: str) -> None:
    m = _live
    if m is not None:
        m.rate_limited.inc((platform,))


def send_retried(platform: str) -> None:
    m = _live
    if m is not None:
        m.retries.inc((platform,))


def scheduled_run(outcome: str) -> None:
    m = _live
    if m is not None:
        m.scheduled.inc((outcome,))
