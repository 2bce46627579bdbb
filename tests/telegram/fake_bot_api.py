"""A fake Telegram Bot API on loopback, speaking the real wire format: `POST /bot<token>/<method>`
with form-encoded, multipart or JSON bodies (or query strings), `{"ok": ..., "result": ...}`
envelopes and the API's error bodies (400 descriptions, 401, 429 with `parameters.retry_after`),
long-polled `getUpdates` with offsets, HTML parse-mode checking, and file downloads from
`/file/bot<token>/<file_path>`. The real python-telegram-bot talks to it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

# Parameters that arrive as JSON text in form bodies, and those that are integers.
JSON_FIELDS = {"reply_parameters", "commands", "scope", "reply_markup", "link_preview_options", "entities",
               "allowed_updates"}
INT_FIELDS = {"chat_id", "message_id", "message_thread_id", "offset", "limit", "timeout", "max_connections"}
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler", "span",
                "blockquote", "tg-emoji"}
TOO_MANY = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    content_type: str
    result: Any = None  # what the API answered when ok


class _TelegramHTML(HTMLParser):
    """Checks text the way Telegram's HTML parse mode does and collects the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.visible: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag not in ALLOWED_TAGS:
            raise ValueError(f'Unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise ValueError(f'Unmatched end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def visible_text(text: str, parse_mode: str | None) -> str:
    """What a user would see; raises ValueError as Telegram answers "can't parse entities"."""
    if parse_mode is None:
        return text
    if parse_mode != "HTML":
        raise ValueError(f"unsupported parse mode {parse_mode} in this fake")
    if re.search(r"<(?![a-zA-Z/])", text) or re.search(r"&(?!#?\w+;)", text):
        raise ValueError("Can't find end of the entity")
    parser = _TelegramHTML()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ValueError(f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return "".join(parser.visible)


class FakeBotAPI:
    def __init__(self, token: str = "123456:TEST-token", username: str = "KAgentTestBot", bot_id: int = 123456) -> None:
        self.token, self.username, self.bot_id = token, username, bot_id
        self.calls: list[Call] = []
        self.updates: list[dict[str, Any]] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id → (file_path, content)
        self.messages: dict[tuple[int, int], str] = {}  # (chat_id, message_id) → visible text
        self.deleted: dict[tuple[int, int], str] = {}  # taken back by deleteMessage: their last text
        self.markup: dict[tuple[int, int], str] = {}  # (chat_id, message_id) → text as sent, with tags
        self.commands: list[dict[str, str]] = []
        self.blocked_by: set[int] = set()  # users who blocked the bot: sending to them is 403
        self.migrated: dict[int, int] = {}  # group id → its supergroup's id, after an upgrade
        self.webhook: dict[str, Any] = {}
        self._limited: dict[str, int] = {}
        self._update_ids = itertools.count(900_000_001)
        self._message_ids = itertools.count(5001)
        self._new_update = asyncio.Event()
        self._changed = asyncio.Condition()
        self.app = web.Application()
        self.app.add_routes([
            web.route("*", "/bot{token}/{method}", self._method),
            web.get("/file/bot{token}/{path:.+}", self._download),
        ])
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.root = ""

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> FakeBotAPI:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.root = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._new_update.set()  # end a pending long poll now rather than at its timeout
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"{self.root}/bot"

    # -- scripting -----------------------------------------------------------------------------
    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        self._new_update.set()
        return update

    def add_file(self, file_id: str, content: bytes, file_path: str = "") -> None:
        self.files[file_id] = (file_path or f"documents/file_{len(self.files)}.bin", content)

    def rate_limit_next(self, method: str, times: int = 1) -> None:
        self._limited[method] = self._limited.get(method, 0) + times

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    def shown(self, params: dict[str, Any], markup: bool = False) -> str:
        """What users see now of the message that this sendMessage call created (or its
        latest text as sent, tags included)."""
        call = next(c for c in self.calls if c.params is params)
        if not isinstance(call.result, dict):
            raise AssertionError(f"{call.method} was refused: {params}")
        key = (call.result["chat"]["id"], call.result["message_id"])
        return (self.markup if markup else self.messages)[key]

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # -- wire ----------------------------------------------------------------------------------
    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        call = Call(method, params, request.content_type)
        self.calls.append(call)
        await self._notify()
        try:
            if self._limited.get(method):
                self._limited[method] -= 1
                return web.json_response(TOO_MANY, status=429)
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                return _error(404, "Not Found")
            response = await handler(params)
            call.result = json.loads(response.body).get("result")
            return response
        finally:
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        for path, content in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=content, content_type="application/octet-stream")
        return _error(404, "Not Found")

    # -- methods -------------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "KAgent", "username": self.username,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def _api_getMe(self, params):
        return _ok(self.me())

    async def _api_deleteWebhook(self, params):
        self.webhook = {}
        return _ok(True)

    async def _api_setWebhook(self, params):
        if not str(params.get("url", "")).startswith("https://"):
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = params
        return _ok(True)

    async def _api_getUpdates(self, params):
        if self.webhook:
            return _error(409, "Conflict: can't use getUpdates method while webhook is active; "
                               "use deleteWebhook to delete the webhook first")
        offset = params.get("offset")
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates and params.get("timeout") and not self._closing:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):  # long poll, but briefly: tests stop quickly
                async with asyncio.timeout(min(float(params["timeout"]), 1.0)):
                    await self._new_update.wait()
        return _ok(self.updates[: params.get("limit") or 100])

    async def _api_setMyCommands(self, params):
        commands = params.get("commands")
        for command in commands or []:
            valid_name = re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", ""))
            if not valid_name or not 1 <= len(command.get("description", "")) <= 256:
                return _error(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands = commands or []
        return _ok(True)

    async def _api_sendChatAction(self, params):
        if params.get("action") not in ("typing", "upload_document", "upload_photo", "record_voice", "choose_sticker"):
            return _error(400, "Bad Request: wrong parameter action in request")
        return _ok(True)

    async def _api_sendMessage(self, params):
        chat_id, text = params.get("chat_id"), params.get("text", "")
        if chat_id is None:
            return _error(400, "Bad Request: chat_id is empty")
        if int(chat_id) in self.blocked_by:
            return _error(403, "Forbidden: bot was blocked by the user")
        if int(chat_id) in self.migrated:
            return self._upgraded(int(chat_id))
        try:
            shown = visible_text(text, params.get("parse_mode"))
        except ValueError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")
        if not shown.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(shown) > 4096:
            return _error(400, "Bad Request: message is too long")
        message_id = next(self._message_ids)
        self.messages[(chat_id, message_id)] = shown
        self.markup[(chat_id, message_id)] = text
        result = self._message(chat_id, message_id, shown)
        if params.get("message_thread_id"):
            result |= {"message_thread_id": params["message_thread_id"], "is_topic_message": True}
        return _ok(result)

    async def _api_getChat(self, params):
        chat_id = int(params.get("chat_id", 0))
        if chat_id in self.migrated:
            return self._upgraded(chat_id)
        if chat_id > 0:
            return _ok({"id": chat_id, "type": "private", "first_name": "someone", "accent_color_id": 0, "max_reaction_count": 11})
        return _error(400, "Bad Request: chat not found")

    def _upgraded(self, chat_id: int) -> web.Response:
        return web.json_response({"ok": False, "error_code": 400,
                                  "description": "Bad Request: group chat was upgraded to a supergroup chat",
                                  "parameters": {"migrate_to_chat_id": self.migrated[chat_id]}}, status=400)

    async def _api_deleteMessage(self, params):
        key = (params.get("chat_id"), params.get("message_id"))
        if key not in self.messages:
            return _error(400, "Bad Request: message to delete not found")
        self.deleted[key] = self.messages.pop(key)
        return _ok(True)

    async def _api_editMessageText(self, params):
        key = (params.get("chat_id"), params.get("message_id"))
        if key not in self.messages:
            return _error(400, "Bad Request: message to edit not found")
        try:
            shown = visible_text(params.get("text", ""), params.get("parse_mode"))
        except ValueError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")
        if shown.strip() == self.messages[key].strip():
            return _error(400, NOT_MODIFIED)
        self.messages[key] = shown
        self.markup[key] = params["text"]
        return _ok(self._message(*key, shown) | {"edit_date": int(time.time())})

    def _message(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        return {"message_id": message_id, "from": self.me(), "chat": chat, "date": int(time.time()), "text": text}

    async def _api_getFile(self, params):
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            return _error(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        return _ok({"file_id": file_id, "file_unique_id": f"u{file_id[-8:]}", "file_size": len(content),
                    "file_path": path})


async def _params(request: web.Request) -> dict[str, Any]:
    """The Bot API takes query strings, form bodies (values as text, objects as JSON) and JSON."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.read()
        params |= json.loads(body) if body else {}
        return params
    if request.method == "POST":
        form = await request.post()
        params |= {k: v for k, v in form.items() if isinstance(v, str)}
    for key in JSON_FIELDS & params.keys():
        if isinstance(params[key], str):
            params[key] = json.loads(params[key])
    for key in INT_FIELDS & params.keys():
        if isinstance(params[key], str) and re.fullmatch(r"-?\d+", params[key]):
            params[key] = int(params[key])
    return params


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)

