"""The operations endpoint `kagentbot run` serves when `ops.port` is set, inside its own event
loop (aiohttp):

  /healthz  200 while the process lives and its event loop keeps time (a heartbeat every
            second; 503 when it ran more than `ops.max_loop_lag` late). A blocked loop answers
            nothing at all, which a supervisor's timeout also reads as unhealthy.
  /readyz   200 when the bot is running, every configured platform is connected, the model
            server answers (and has the model) and the store can be read (in cluster mode: and the
            shared Redis answers); 503 otherwise.
            Both answer JSON, with each check and the reason for any that failed.
  /metrics  the figures of kagentbot.ops.metrics, in Prometheus' text format."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from kagentbot.config.settings import Settings
from kagentbot.ops import metrics
from kagentbot.ops.slots import SlotCounts, llm_slots

log = logging.getLogger(__name__)
HEARTBEAT = 1.0  # seconds between the event loop heartbeats


class Counted(Protocol):
    """The store as /readyz and /metrics read it (kagentbot.memory.contracts.KnowledgeBase)."""

    async def totals(self) -> tuple[int, int]: ...  # (documents, chunks)


class Observed(Protocol):
    """What /readyz and /metrics read of the bot's Services (kagentbot.bot.services.Services)."""

    @property
    def llm(self) -> Any: ...  # an LLMClient: list_models() answers whether the model is served

    @property
    def memory(self) -> Counted: ...

    @property
    def slots(self) -> SlotCounts: ...

    # cluster mode: says whether the shared Redis answers (raises why not); None in one process
    @property
    def cluster_probe(self) -> Callable[[], Awaitable[str]] | None: ...


class Platform(Protocol):
    """What /readyz reads of a platform adapter (kagentbot.chat.adapter.Adapter keeps it)."""

    platform: str

    async def connected(self) -> bool | None:
        """Up now; None where there is no connection state to report."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class OpsServer:
    """Lifecycle: `start()` → `running()` once the bot is up → `stopping()` → `stop()`."""

    def __init__(self, settings: Settings, services: Observed, adapters: Sequence[Platform]) -> None:
        self.settings = settings
        self.services = services
        self.adapters = list(adapters)
        self.state = "starting"
        self.lag = 0.0
        self._started = time.monotonic()
        self._heartbeat: asyncio.Task | None = None
        self._due = float("inf")  # when the next heartbeat should run
        self._runner: Any = None
        self._totals: tuple[float, tuple[int, int] | None] = (-1e9, None)  # (when counted, counts)

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.add_routes([web.get("/healthz", self._healthz), web.get("/readyz", self._readyz),
                        web.get("/metrics", self._metrics), web.get("/", self._index)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        ops = self.settings.ops
        try:
            await web.TCPSite(self._runner, ops.listen, ops.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise RuntimeError(f"cannot serve the ops endpoint on {ops.listen}:{ops.port} ({exc.strerror}): "
                               "set KAGENTBOT_OPS__PORT to a free port") from None
        self._heartbeat = asyncio.create_task(self._beat(), name="ops heartbeat")
        log.info("ops endpoint on http://%s:%d (/healthz, /readyz, /metrics)", ops.listen, ops.port)

    def running(self) -> None:
        self.state = "running"

    def stopping(self) -> None:
        self.state = "stopping"

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._due = loop.time() + HEARTBEAT
            await asyncio.sleep(HEARTBEAT)
            self.lag = max(loop.time() - self._due, 0.0)

    # -- checks --------------------------------------------------------------------------------
    async def readiness(self) -> list[Check]:
        state = Check("bot", self.state == "running", self.state)
        found = await asyncio.gather(*(self._platform(a) for a in self.adapters), self._model(), self._store())
        return [state, *found, *await self._shared()]

    async def _shared(self) -> list[Check]:
        """Cluster mode: the shared Redis answers (without it, events are not acknowledged)."""
        probe = self.services.cluster_probe
        if probe is None:
            return []
        ok, detail = await self._timed(probe())
        return [Check("shared state", ok, detail)]

    async def _platform(self, adapter: Platform) -> Check:
        ok, detail = await self._timed(adapter.connected())
        if ok and detail is None:
            return Check(adapter.platform, True, "no connection state to report")
        up = ok and detail is True
        return Check(adapter.platform, up, "connected" if up else (detail if not ok else "not connected"))

    async def _model(self) -> Check:
        llm = self.settings.llm
        ok, found = await self._timed(self.services.llm.list_models())
        if not ok:
            return Check("model server", False, found)
        if not _serves(found, llm.model):
            return Check("model server", False, f"{llm.backend} at {llm.host} answers but has no model {llm.model!r} (yet)")
        return Check("model server", True, f"{llm.backend} at {llm.host} serves {llm.model}")

    async def _store(self) -> Check:
        ok, counted = await self._timed(self.services.memory.totals())
        if not ok:
            return Check("store", False, counted)
        self._totals = (time.monotonic(), counted)
        return Check("store", True, f"open ({counted[0]} documents, {counted[1]} chunks)")

    async def _timed(self, probe: Awaitable[Any]) -> tuple[bool, Any]:
        """(True, the result), or (False, why it failed) within ops.check_timeout seconds."""
        try:
            return True, await asyncio.wait_for(probe, self.settings.ops.check_timeout)
        except asyncio.TimeoutError:
            return False, f"no answer within {self.settings.ops.check_timeout:g} s"
        except Exception as exc:  # each check reports its failure rather than failing the probe
            return False, str(exc) or type(exc).__name__

    # -- handlers ------------------------------------------------------------------------------
    async def _healthz(self, request: Any) -> Any:
        # the last beat's lateness, or the next one's if it is overdue now
        lag = max(self.lag, asyncio.get_running_loop().time() - self._due)
        healthy = lag <= self.settings.ops.max_loop_lag
        body = {"status": "ok" if healthy else "event loop late", "state": self.state,
                "loop_lag_ms": round(lag * 1000, 1), "uptime_s": round(time.monotonic() - self._started)}
        return _json(body, 200 if healthy else 503)

    async def _readyz(self, request: Any) -> Any:
        checks = await self.readiness()
        ready = all(c.ok for c in checks)
        body: dict[str, Any] = {"ready": ready, "checks": [asdict(c) for c in checks]}
        if not ready:
            body["reason"] = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
        return _json(body, 200 if ready else 503)

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        meters = metrics.live()
        if meters is None:
            return web.Response(status=404, text="metrics are off (KAGENTBOT_OPS__METRICS=false)\n")
        await self._gauges(meters)
        return web.Response(body=generate_latest(meters.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _index(self, request: Any) -> Any:
        return _json({"endpoints": ["/healthz", "/readyz", "/metrics"]}, 200)

    async def _gauges(self, meters: metrics.Meters) -> None:
        """Levels read at scrape time: LLM slots, platform connections, the loop, the store."""
        in_use, waiting = llm_slots(self.services.slots)
        meters.llm_slots.set((), in_use)
        meters.llm_queue.set((), waiting)
        meters.loop_lag.set((), self.lag)
        for adapter, check in zip(self.adapters, await asyncio.gather(*(self._platform(a) for a in self.adapters))):
            meters.connected.set((adapter.platform,), 1 if check.ok else 0)
        counted_at, counted = self._totals
        if time.monotonic() - counted_at >= self.settings.ops.store_refresh:
            await self._store()
            counted = self._totals[1]
        if counted is not None:
            meters.kb_documents.set((), counted[0])
            meters.kb_chunks.set((), counted[1])


class NoEndpoint:
    """What `kagentbot run` holds when `ops.port` is not set: the same lifecycle, doing nothing."""

    async def start(self) -> None:
        return None

    def running(self) -> None:
        return None

    def stopping(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def ops_endpoint(settings: Settings, services: Observed, adapters: Sequence[Platform]) -> OpsServer | NoEndpoint:
    return OpsServer(settings, services, adapters) if settings.ops.port else NoEndpoint()


def _serves(names: Sequence[str], model: str) -> bool:
    """Ollama lists `name:tag`; a model asked for without a tag means `:latest`."""
    wanted = model if ":" in model else f"{model}:latest"
    return any(name in (model, wanted) for name in names)


def _json(body: dict[str, Any], status: int) -> Any:
    from aiohttp import web

    return web.json_response(body, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False))
