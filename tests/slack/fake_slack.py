"""A fake Slack on loopback, speaking the real wire formats, for the real slack-sdk / slack-bolt:

- the Web API, `POST /api/<method>` with form, JSON or query parameters and a Bearer token,
  answering `{"ok": ..., ...}` (errors as `{"ok": false, "error": "..."}` with HTTP 200, rate
  limits as HTTP 429 with `Retry-After`);
- Socket Mode: `apps.connections.open` hands out `ws://.../socket`, where the fake says hello,
  pushes envelopes and records the acknowledgements;
- private file downloads (`url_private_download`, Bearer token required) and slash commands'
  `response_url`s.

Events API requests over HTTP are signed by `signed_headers` with a signing secret, as Slack does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0FAKE01"
BOT_USER_ID = "U0KAGENT"
BOT_ID = "B0KAGENT"
APP_ID = "A0KAGENT"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str
    result: dict[str, Any] | None = None  # the body answered when ok


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    thread_ts: str = ""
    broadcast: bool = False
    edits: list[str] = field(default_factory=list)


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: list[Posted] = []  # chat.postMessage, in order; edits applied
        self.deleted: list[Posted] = []  # chat.delete took them out of `messages`
        self._by_ts: dict[tuple[str, str], Posted] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # what arrived at response_urls
        self.acks: dict[str, tuple[float, dict[str, Any]]] = {}  # envelope_id → (monotonic time, body)
        self.downloads: list[dict[str, str]] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        self._failures: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = {}
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Event()
        self.app = web.Application()
        self.app.add_routes([
            web.post("/api/{method}", self._api),
            web.get("/api/{method}", self._api),
            web.get("/socket", self._socket),
            web.get("/files-pri/{id}/{name}", self._file),
            web.post("/commands/{id}", self._response_url),
        ])
        self._runner: web.AppRunner | None = None
        self.base = ""
        self.socket_url = ""  # set to hand out another WebSocket URL (one nothing listens on)

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> FakeSlack:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    # -- scripting -----------------------------------------------------------------------------
    def fail_next(self, method: str, times: int = 1, status: int = 429, retry_after: int = 1,
                  error: str = "ratelimited") -> None:
        headers = {"Retry-After": str(retry_after)} if status == 429 else {}
        self._failures.setdefault(method, []).extend([(status, headers, {"ok": False, "error": error})] * times)

    def add_file(self, name: str, data: bytes, mimetype: str = "text/plain") -> dict[str, Any]:
        """A file as Slack describes it in a `file_share` message event."""
        file_id = f"F{uuid.uuid4().hex[:9].upper()}"
        self.files[file_id] = (data, mimetype)
        url = f"{self.base}/files-pri/{TEAM_ID}-{file_id}/{name}"
        return {"id": file_id, "created": int(time.time()), "name": name, "title": name, "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1], "user": "", "mode": "hosted", "size": len(data),
                "url_private": url, "url_private_download": url + "?download=1", "is_external": False}

    def response_url(self) -> str:
        return f"{self.base}/commands/{uuid.uuid4().hex[:12]}"

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    async def wait_for(self, condition, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError("timed out waiting for the fake Slack")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except asyncio.TimeoutError:
                pass

    def in_thread(self, channel: str, thread_ts: str) -> list[Posted]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts]

    # -- Socket Mode ---------------------------------------------------------------------------
    async def push(self, payload: dict[str, Any], kind: str = "events_api") -> str:
        """Send one envelope to every connected Socket Mode client; returns its envelope_id."""
        await self.wait_for(lambda: bool(self._sockets))
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "payload": payload, "type": kind,
                    "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""}
        for ws in self._sockets:
            await ws.send_str(json.dumps(envelope))
        return envelope_id

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                      "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                                      "connection_info": {"app_id": APP_ID}}))
        self._notify()
        try:
            await self.take_acks(ws)
        finally:
            self._sockets.remove(ws)
        return ws

    async def take_acks(self, ws: web.WebSocketResponse) -> None:
        """Until the socket closes: each acknowledgement the app sends, kept with its time."""
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                body = json.loads(message.data)
                if "envelope_id" in body:
                    self.acks[body["envelope_id"]] = (time.monotonic(), body)
                    self._notify()

    # -- Web API -------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(await request.post())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or str(params.get("token", ""))
        call = Call(method, params, token)
        self.calls.append(call)
        self._notify()
        failures = self._failures.get(method)
        if failures:
            status, headers, body = failures.pop(0)
            return web.json_response(body, status=status, headers=headers)
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth" if token else "not_authed"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        body = handler(params)
        if body.get("ok"):
            call.result = body
        self._notify()
        return web.json_response(body)

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake-team.slack.com/", "team": "Fake Team", "user": "kagentbot",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.socket_url or self.base.replace("http://", "ws://") + "/socket?ticket=fake"}

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1700000000 + n}.{n:06d}"

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, text = str(params.get("channel", "")), str(params.get("text", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not text.strip():
            return {"ok": False, "error": "no_text"}
        if len(text) > 40000:
            return {"ok": False, "error": "msg_too_long"}
        broadcast = str(params.get("reply_broadcast", "")).lower() in ("true", "1")
        posted = Posted(channel, self._next_ts(), text, str(params.get("thread_ts") or ""), broadcast)
        self.messages.append(posted)
        self._by_ts[(channel, posted.ts)] = posted
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": text, "ts": posted.ts}
        if posted.thread_ts:
            message["thread_ts"] = posted.thread_ts
        return {"ok": True, "channel": channel, "ts": posted.ts, "message": message}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self._by_ts.get((str(params.get("channel")), str(params.get("ts"))))
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        found.text = str(params.get("text", ""))
        found.edits.append(found.text)
        return {"ok": True, "channel": found.channel, "ts": found.ts, "text": found.text}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self._by_ts.pop((str(params.get("channel")), str(params.get("ts"))), None)
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        self.messages.remove(found)
        self.deleted.append(found)
        return {"ok": True, "channel": found.channel, "ts": found.ts}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        self.ephemeral.append(params)
        return {"ok": True, "message_ts": self._next_ts()}

    # -- files and response URLs ---------------------------------------------------------------
    async def _file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["id"].split("-", 1)[-1]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        self.downloads.append({"file": file_id, "token": token})
        self._notify()
        if token != BOT_TOKEN or file_id not in self.files:
            # Slack answers an unauthorised download with its sign-in page, not an error status
            return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")
        data, mimetype = self.files[file_id]
        return web.Response(body=data, content_type=mimetype)

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        self._notify()
        return web.Response(text="ok")

    def _notify(self) -> None:
        self._changed.set()


# -- payloads, shaped as in Slack's documentation ------------------------------------------------
def event_callback(event: dict[str, Any], event_id: str = "") -> dict[str, Any]:
    return {
        "token": "XXYYZZ", "team_id": TEAM_ID, "api_app_id": APP_ID, "event": event, "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}", "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False, "event_context": "4-fake",
    }


def app_mention(text: str, user: str = "U0ALICE", channel: str = "C0GENERAL", ts: str = "",
                thread_ts: str = "") -> dict[str, Any]:
    ts = ts or _ts()
    event = {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts,
             "client_msg_id": str(uuid.uuid4()), "team": TEAM_ID}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def direct_message(text: str, user: str = "U0ALICE", channel: str = "D0ALICE", ts: str = "",
                   files: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    ts = ts or _ts()
    event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts,
             "channel_type": "im", "team": TEAM_ID, **extra}
    if files:
        event.update(subtype="file_share", files=files, upload=False, display_as_bot=False)
    return event


def slash_command(command: str, text: str, response_url: str, user: str = "U0ALICE",
                  channel: str = "C0GENERAL") -> dict[str, str]:
    return {"token": "XXYYZZ", "team_id": TEAM_ID, "team_domain": "fake-team", "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "general", "user_id": user,
            "user_name": "alice", "command": command, "text": text, "api_app_id": APP_ID,
            "is_enterprise_install": "false", "response_url": response_url,
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.fake"}


def signed_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None,
                   content_type: str = "application/json") -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}", "Content-Type": content_type}


def form_body(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


_counter = itertools.count(1)


def _ts() -> str:
    n = next(_counter)
    return f"{int(time.time())}.{n:06d}"
