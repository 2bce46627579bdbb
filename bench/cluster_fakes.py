"""The loopback world `bench/cluster.py` runs its replicas in, built on the fakes in tests/fakes,
tests/slack and tests/telegram:

- `LoggedModel`: the fake Ollama with a fixed latency and one GLOBAL cap of requests worked on at
  once (whoever asks: every replica shares it), logging each chat request with the question it
  serves (`question ID:` in the prompt), whether it plans or answers, and when it started and
  ended. It runs in a process of its own (`python bench/cluster_fakes.py model CAP LATENCY`).
- `RoutedSlack`: the fake Slack with one Socket Mode connection per replica (replica N uses the
  Web API under `/rN/api/`), each event sent to ONE connection picked at random, a share of them
  sent again (a redelivery, as Slack retries), and any envelope left unacknowledged for
  ACK_SECONDS sent again to another connection, as Slack does.
- `TelegramFront`: the fake Bot API, and updates posted to a webhook behind a round-robin proxy
  in front of the replicas' webhook servers; a share redelivered, failures retried as Telegram
  does.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import random
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.ollama_server import FakeOllama, Scripted, task  # noqa: E402
from tests.slack.fake_slack import FakeSlack  # noqa: E402
from tests.telegram.fake_bot_api import FakeBotAPI  # noqa: E402

QUESTION = re.compile(r"question ([A-Za-z0-9.]+?):")
STEP = task("count days", "time_delta", start_time="1987-06-24", end_time="1988-02-26")
ANSWER = "answer to "
CURSOR = " ▍"
ACK_SECONDS = 3.0  # Slack sends an unacknowledged envelope again after this
SLACK_RETRIES = 3
WEBHOOK_PATH = "telegram/hook"
WEBHOOK_SECRET = "bench-webhook-secret"


# -- the model ------------------------------------------------------------------------------------
def question_of(body: dict[str, Any]) -> str:
    """The id of the question a chat request serves: the last `question ID:` in its last message."""
    messages = body.get("messages") or [{}]
    found = QUESTION.findall(str(messages[-1].get("content", "")))
    return found[-1] if found else "?"


class LoggedModel(FakeOllama):
    """Plans one step (time_delta), then answers `answer to ID.`; every chat request is logged."""

    def __init__(self, cap: int, latency: float) -> None:
        super().__init__(parallel=cap)
        self.latency = latency
        self.log: list[dict[str, Any]] = []
        self.responder = self._reply
        self.app.router.add_get("/_bench/log", self._log_view)
        self.app.router.add_post("/_bench/config", self._config)

    def _reply(self, body: dict[str, Any]) -> Scripted:
        if body.get("stream") is False:  # a planning call
            return Scripted(STEP, delay=self.latency)
        return Scripted(f"{ANSWER}{question_of(body)}. All is well.", delay=self.latency, chunk=64)

    async def _work(self, request: web.Request, body: dict[str, Any], shape) -> web.StreamResponse:
        entry = {"q": question_of(body), "kind": "plan" if body.get("stream") is False else "answer",
                 "start": time.time()}
        try:
            return await super()._work(request, body, shape)
        finally:
            entry["end"] = time.time()
            self.log.append(entry)

    async def _log_view(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response({"entries": self.log[since:], "next": len(self.log)})

    async def _config(self, request: web.Request) -> web.Response:
        self.latency = float((await request.json())["latency"])
        return web.json_response({"latency": self.latency})


def serve_model(cap: int, latency: float) -> None:
    async def main() -> None:
        model = LoggedModel(cap, latency)
        print(await model.start(), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_s3(bucket: str) -> None:
    """moto's S3 server with one bucket, for the replicas' shared memory (`--s3`)."""
    from tests.fakes.s3_server import MotoS3

    with MotoS3() as s3:
        s3.bucket(bucket)
        print(s3.endpoint, flush=True)
        threading.Event().wait()


# -- Slack ----------------------------------------------------------------------------------------
_replica: contextvars.ContextVar[int] = contextvars.ContextVar("replica", default=-1)


@dataclass
class Sent:
    envelope: dict[str, Any]
    replica: int  # the connection it went to first
    at: float
    attempts: int = 1
    monotonic: float = field(default_factory=time.monotonic)


class RoutedSlack(FakeSlack):
    def __init__(self, redelivery: float, seed: int = 19) -> None:
        super().__init__()
        self.redelivery = redelivery
        self.random = random.Random(seed)
        self.connections: dict[int, web.WebSocketResponse] = {}
        self.sent: dict[str, Sent] = {}  # envelope id → where and when it went
        self.redelivered = 0
        self.retried = 0  # unacknowledged, sent again elsewhere
        self.by_url: dict[str, list[dict[str, Any]]] = {}  # response_url id → replies
        self._tasks: set[asyncio.Task] = set()
        self.app.router.add_post("/r{replica}/api/{method}", self._routed_api)
        self.app.router.add_get("/r{replica}/socket", self._routed_socket)
        self.app.router.add_post("/replies/{id}", self._reply_url)

    def api_for(self, replica: int) -> str:
        return f"{self.base}/r{replica}/api/"

    def response_url(self) -> str:
        return f"{self.base}/replies/{uuid.uuid4().hex[:12]}"

    # -- the wire -----------------------------------------------------------------------------
    async def _routed_api(self, request: web.Request) -> web.Response:
        _replica.set(int(request.match_info["replica"]))
        return await self._api(request)

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.base.replace("http://", "ws://") + f"/r{_replica.get()}/socket?ticket=fake"}

    async def _routed_socket(self, request: web.Request) -> web.WebSocketResponse:
        replica = int(request.match_info["replica"])
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections[replica] = ws
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self.connections),
                                      "connection_info": {"app_id": "A0KAGENT"}}))
        self._notify()
        try:
            await self.take_acks(ws)
        finally:
            if self.connections.get(replica) is ws:
                del self.connections[replica]
        return ws

    async def _reply_url(self, request: web.Request) -> web.Response:
        self.by_url.setdefault(request.match_info["id"], []).append(await request.json())
        self._notify()
        return web.Response(text="ok")

    # -- sending ------------------------------------------------------------------------------
    def live(self, among: list[int] | None = None) -> list[int]:
        return sorted(r for r, ws in self.connections.items() if not ws.closed and (among is None or r in among))

    async def send(self, payload: dict[str, Any], kind: str = "events_api", among: list[int] | None = None,
                   redeliver: bool = True) -> Sent:
        """Send one envelope to one live connection of `among` (default: all), at random; with
        probability `redelivery` the same envelope goes again shortly after, maybe elsewhere."""
        deadline = time.monotonic() + 20
        while not self.live(among):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no live Socket Mode connection among {among}")
            await asyncio.sleep(0.05)
        replica = self.random.choice(self.live(among))
        envelope = {"envelope_id": str(uuid.uuid4()), "payload": payload, "type": kind,
                    "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""}
        sent = Sent(envelope, replica, time.time())
        self.sent[envelope["envelope_id"]] = sent
        await self._to(replica, envelope)
        if redeliver and self.random.random() < self.redelivery:
            self.redelivered += 1
            self._track(self._again(sent, self.random.uniform(0.05, 0.5), "http_timeout", among))
        self._track(self._unless_acked(sent, among))
        return sent

    async def _to(self, replica: int, envelope: dict[str, Any]) -> None:
        ws = self.connections.get(replica)
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(json.dumps(envelope))
            except (ConnectionError, RuntimeError):
                pass  # the connection died under it: the envelope stays unacknowledged

    async def _again(self, sent: Sent, after: float, reason: str, among: list[int] | None) -> None:
        await asyncio.sleep(after)
        live = self.live(among)
        if not live:
            return
        sent.attempts += 1
        again = {**sent.envelope, "retry_attempt": sent.attempts - 1, "retry_reason": reason}
        await self._to(self.random.choice(live), again)

    async def _unless_acked(self, sent: Sent, among: list[int] | None) -> None:
        for _ in range(SLACK_RETRIES):
            await asyncio.sleep(ACK_SECONDS)
            if sent.envelope["envelope_id"] in self.acks:
                return
            self.retried += 1
            await self._again(sent, 0, "timeout", among)

    def _track(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self.connections.values()):
            await ws.close()

    # -- what was posted ----------------------------------------------------------------------
    def answered(self) -> list[tuple[str, str]]:
        """(question id, channel) of each finished answer posted (edits applied)."""
        return [(answer_to(p.text), p.channel) for p in self.messages if answer_to(p.text)]

    def acked_after(self, envelope_ids: list[str]) -> list[float]:
        """Seconds from each envelope's first send to its acknowledgement (sent after the event
        was stored, in cluster mode)."""
        return [self.acks[e][0] - self.sent[e].monotonic for e in envelope_ids if e in self.acks and e in self.sent]

    def acked_at(self, envelope_id: str) -> float | None:
        return self.acks[envelope_id][0] if envelope_id in self.acks else None

    def replies_to(self, url: str) -> list[str]:
        return [str(r.get("text", "")) for r in self.by_url.get(url.rsplit("/", 1)[-1], [])]


# -- Telegram -------------------------------------------------------------------------------------
@dataclass
class TelegramFront:
    """The fake Bot API, a round-robin proxy in front of the replicas' webhook ports, and a
    sender that posts updates to the proxy as Telegram does (a share twice; failures retried)."""

    redelivery: float
    api: FakeBotAPI = field(default_factory=lambda: FakeBotAPI(username="KAgentTestBot", bot_id=123456))
    ports: dict[int, int] = field(default_factory=dict)  # replica → its webhook port
    random: random.Random = field(default_factory=lambda: random.Random(91))
    proxy_url: str = ""
    redelivered: int = 0
    retried: int = 0
    failed: int = 0  # updates Telegram gave up on
    stored_after: dict[int, float] = field(default_factory=dict)  # update id → seconds to its first 200
    stored_at: dict[int, float] = field(default_factory=dict)  # update id → when its first 200 came (monotonic)
    _next: itertools.count = field(default_factory=itertools.count)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(800_000_001))
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _tasks: set = field(default_factory=set)

    async def start(self) -> None:
        await self.api.__aenter__()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        app = web.Application()
        app.router.add_post("/" + WEBHOOK_PATH, self._proxy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.proxy_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/{WEBHOOK_PATH}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.api.__aexit__(None, None, None)

    async def _proxy(self, request: web.Request) -> web.Response:
        """Round robin; a replica that refuses the connection is skipped (as a load balancer's
        next-upstream retry does)."""
        body, headers = await request.read(), {k: v for k, v in request.headers.items() if k.lower().startswith("x-telegram")}
        order = sorted(self.ports)
        start = next(self._next)
        for n in range(len(order)):
            port = self.ports[order[(start + n) % len(order)]]
            try:
                async with self._session.post(f"http://127.0.0.1:{port}/{WEBHOOK_PATH}", data=body,  # type: ignore[union-attr]
                                              headers={**headers, "Content-Type": "application/json"}) as answer:
                    return web.Response(status=answer.status, body=await answer.read())
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                continue
        return web.Response(status=502, text="no upstream")

    def send(self, text: str, user_id: int) -> dict[str, Any]:
        """A private message from `user_id`, posted to the webhook (in the background)."""
        user = {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"}
        update = {"update_id": next(self._ids),
                  "message": {"message_id": next(self._ids) % 1_000_000, "from": user, "date": int(time.time()),
                              "chat": {"id": user_id, "first_name": user["first_name"], "type": "private"}, "text": text}}
        self._track(self._deliver(update))
        if self.random.random() < self.redelivery:
            self.redelivered += 1
            self._track(self._deliver(update, after=self.random.uniform(0.05, 0.5)))
        return update

    async def _deliver(self, update: dict[str, Any], after: float = 0.0, tries: int = 5) -> None:
        await asyncio.sleep(after)
        started = time.monotonic()
        for attempt in range(tries):
            try:
                async with self._session.post(self.proxy_url, json=update,  # type: ignore[union-attr]
                                              headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as answer:
                    if answer.status == 200:
                        self.stored_after.setdefault(update["update_id"], time.monotonic() - started)
                        self.stored_at.setdefault(update["update_id"], time.monotonic())
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            self.retried += 1
            await asyncio.sleep(1.0 * (attempt + 1))
        self.failed += 1

    def _track(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answered(self) -> list[tuple[str, str]]:
        """(question id, chat id) of each finished answer sent (edits applied)."""
        return [(answer_to(text), str(chat)) for (chat, _), text in self.api.messages.items() if answer_to(text)]


def answer_to(text: str) -> str:
    """The question id a finished answer (`answer to ID. ...`, no streaming cursor) answers, or ''."""
    if not text.startswith(ANSWER) or text.rstrip().endswith(CURSOR.strip()):
        return ""
    return text[len(ANSWER):].split(". ", 1)[0]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "model":
        serve_model(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "s3":
        serve_s3(sys.argv[2])
    else:
        sys.exit("usage: python bench/cluster_fakes.py model CAP LATENCY | s3 BUCKET")
