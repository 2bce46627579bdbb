"""What dpytest 0.7 does not fake, added in its own style.

dpytest replaces discord.py's HTTPClient with `FakeHttp`, whose methods answer each REST route
from an in-memory Discord, and feeds gateway events into the client's ConnectionState with the
`parse_*` handlers. It has no threads, no application commands, no interactions and no login or
gateway connection. Here, the same way:

- `FakeDiscordHttp` adds the REST routes the adapter uses: log in (GET /users/@me), sync
  commands (PUT /applications/{id}/commands), start a thread on a message (POST
  /channels/{c}/messages/{m}/threads, checking Create Public Threads like Discord and then
  emitting THREAD_CREATE), and send_message with Discord's 2,000-character limit and scripted
  429 answers. Its `ws_connect` opens `FakeGatewaySocket`, which speaks the gateway's opening
  (HELLO, IDENTIFY, heartbeats) and its close codes; events still arrive through dpytest.
- `FakeWebhookAdapter` answers interaction callbacks and follow-ups (discord.py sends those
  through its webhook adapter, not the HTTPClient).
- `slash_command` delivers an INTERACTION_CREATE with the payload shape Discord documents.
"""

from __future__ import annotations

import asyncio
import json
import typing
from dataclasses import dataclass, field

import aiohttp
import discord
import discord.ext.test as dpytest
from discord.ext.test import backend as back
from discord.ext.test import callbacks
from discord.ext.test import factories as facts
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

MAX_CONTENT = 2000


class FakeResponse(typing.NamedTuple):
    """What discord.HTTPException reads from an aiohttp response."""

    status: int
    reason: str
    headers: dict[str, str] = {}


def http_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> discord.HTTPException:
    response = FakeResponse(status, message, headers or {})
    body = {"code": code, "message": message}
    if status == 403:
        return discord.Forbidden(response, body)
    return discord.HTTPException(response, body)


class FakeGatewaySocket:
    """The gateway side of the websocket: HELLO, then it takes IDENTIFY and acknowledges
    heartbeats. `close_from_server(code)` ends the session the way Discord does."""

    def __init__(self) -> None:
        self.received: list[dict[str, typing.Any]] = []
        self.close_code: int | None = None
        self.closed = False
        self._inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self._push({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})

    def _push(self, payload: dict[str, typing.Any]) -> None:
        self._inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, json.dumps(payload), None))

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        return await self._inbox.get()

    async def send_str(self, data: str) -> None:
        payload = json.loads(data)
        self.received.append(payload)
        if payload["op"] == 1:  # heartbeat
            self._push({"op": 11, "d": None, "s": None, "t": None})

    def identified(self) -> bool:
        return any(p["op"] == 2 for p in self.received)

    def close_from_server(self, code: int) -> None:
        self.close_code = code
        self._inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, code, ""))

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self.closed = True
        self.close_code = self.close_code or code
        self._inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))
        return True


class FakeDiscordHttp(back.FakeHttp):
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop=loop)
        self.synced_commands: list[dict[str, typing.Any]] = []
        self.threads: list[dict[str, typing.Any]] = []
        self.sent_payloads: list[tuple[int, dict[str, typing.Any]]] = []
        self.rate_limit_next_sends = 0
        self.refuse_next_sends = 0  # 403 Missing Permissions, as in a channel the bot may not write to
        self.send_attempts = 0
        self.gateways: list[FakeGatewaySocket] = []
        self.valid_token: str | None = None  # None: any token logs in

    @classmethod
    def install(cls, client: discord.Client) -> FakeDiscordHttp:
        """Call after `dpytest.configure(client)`: swaps its FakeHttp for this one."""
        http = cls(loop=asyncio.get_running_loop())
        http.state = client._connection
        client.http = http
        client._connection.http = http
        # dpytest builds its state without the hooks discord.Client gives its own (IDENTIFY uses one)
        client._connection.hooks = {"before_identify": client._call_before_identify_hook}
        # before connecting, a discord.Client has no websocket; dpytest's stand-in has no socket to close
        client.ws = None
        return http

    # GET /users/@me; discord.py turns Discord's 401 for a wrong token into LoginFailure
    async def static_login(self, token: str) -> dict[str, typing.Any]:
        if self.valid_token is not None and token != self.valid_token:
            raise discord.LoginFailure("Improper token has been passed.")
        self.token = token
        return facts.dict_from_user(self.state.user)

    async def ws_connect(self, url: str, *, compress: int = 0) -> FakeGatewaySocket:
        socket = FakeGatewaySocket()
        self.gateways.append(socket)
        return socket

    # PUT /applications/{application_id}/commands
    async def bulk_upsert_global_commands(self, application_id: int, payload: list[dict[str, typing.Any]]) -> list[dict[str, typing.Any]]:
        self.synced_commands = payload
        return [{"type": 1, "options": [], **command, "id": str(facts.make_id()), "application_id": str(application_id),
                 "version": str(facts.make_id()), "default_member_permissions": None, "nsfw": False}
                for command in payload]

    # POST /channels/{channel_id}/messages/{message_id}/threads
    async def start_thread_with_message(self, channel_id: int, message_id: int, *, name: str,
                                        auto_archive_duration: int, rate_limit_per_user: int | None = None,
                                        reason: str | None = None) -> dict[str, typing.Any]:
        channel = self.state.get_channel(int(channel_id))
        permissions = channel.permissions_for(channel.guild.me)
        if not (permissions.create_public_threads or permissions.administrator):
            raise http_error(403, 50013, "Missing Permissions")
        if not 1 <= len(name) <= 100:
            raise http_error(400, 50035, "Invalid Form Body: name must be between 1 and 100 in length")
        if channel.guild.get_thread(int(message_id)) is not None:
            raise http_error(400, 160004, "A thread has already been created for this message")
        data = thread_payload(channel, int(message_id), name, auto_archive_duration, self.state.user.id)
        self.threads.append(data)
        self.state.parse_thread_create({**data, "newly_created": True})  # the THREAD_CREATE event
        await callbacks.dispatch_event("start_thread", data)
        return data

    # POST /channels/{channel_id}/messages
    async def send_message(self, channel_id: int, *, params: typing.Any) -> dict[str, typing.Any]:
        payload = params.payload or {}
        self.send_attempts += 1
        if self.refuse_next_sends:
            self.refuse_next_sends -= 1
            raise http_error(403, 50013, "Missing Permissions")
        if self.rate_limit_next_sends:
            self.rate_limit_next_sends -= 1
            raise http_error(429, 0, "You are being rate limited.", {"Retry-After": "0.05"})
        if len(payload.get("content") or "") > MAX_CONTENT:
            raise http_error(400, 50035, "Invalid Form Body: content must be 2000 or fewer in length")
        self.sent_payloads.append((int(channel_id), payload))
        channel = back._get_higher_locs(1)["channel"]  # noqa: F841 -- dpytest's route reads its caller's `channel`
        return await super().send_message(channel_id, params=params)


def thread_payload(channel: discord.TextChannel, message_id: int, name: str, archive: int, owner_id: int) -> dict[str, typing.Any]:
    """A public thread started on a message: Discord gives it the message's id."""
    return {
        "id": str(message_id), "guild_id": str(channel.guild.id), "parent_id": str(channel.id),
        "owner_id": str(owner_id), "name": name, "type": discord.ChannelType.public_thread.value,
        "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
        "total_message_sent": 0, "flags": 0,
        "thread_metadata": {"archived": False, "auto_archive_duration": archive,
                            "archive_timestamp": discord.utils.utcnow().isoformat(), "locked": False},
    }


@dataclass
class FollowUp:
    interaction_token: str
    content: str
    ephemeral: bool
    message: discord.Message


@dataclass
class FakeWebhookAdapter(AsyncWebhookAdapter):
    """Interaction responses and follow-ups, which discord.py sends through its webhook adapter."""

    channels: dict[str, discord.abc.Messageable] = field(default_factory=dict)  # interaction token → channel
    callbacks: list[tuple[int, dict[str, typing.Any]]] = field(default_factory=list)  # (interaction id, body)
    followups: list[FollowUp] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    async def request(self, route: discord.http.Route, session: typing.Any = None, *, payload: dict | None = None,
                      multipart: list | None = None, files: typing.Any = None, params: dict | None = None,
                      **kwargs: typing.Any) -> typing.Any:
        if route.method == "POST" and route.path == "/interactions/{webhook_id}/{webhook_token}/callback":
            self.callbacks.append((int(route.webhook_id), payload or {}))
            return {"interaction": {"id": str(route.webhook_id), "type": 2,
                                    "response_message_loading": (payload or {}).get("type") == 5,
                                    "response_message_ephemeral": bool(((payload or {}).get("data") or {}).get("flags", 0) & 64)}}
        if route.method == "POST" and route.path == "/webhooks/{webhook_id}/{webhook_token}":
            return await self._follow_up(route.webhook_token, payload or _multipart_json(multipart))
        if route.method == "PATCH" and route.path == "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}":
            return self._edit(route, payload or _multipart_json(multipart))
        raise NotImplementedError(f"fake webhook adapter: {route.method} {route.path}")

    async def _follow_up(self, token: str, payload: dict[str, typing.Any]) -> dict[str, typing.Any]:
        channel = self.channels[token]
        state = back.get_state()
        guild = getattr(channel, "guild", None)
        extra = {"guild_id": guild.id} if guild is not None else {}
        data = facts.make_message_dict(channel, state.user, content=payload.get("content", ""), **extra)
        data["flags"] = payload.get("flags", 0)
        message = discord.Message(state=state, channel=channel, data=data)
        self.followups.append(FollowUp(token, message.content, bool(payload.get("flags", 0) & 64), message))
        await callbacks.dispatch_event("send_message", message)  # into dpytest's sent queue
        return data

    def _edit(self, route: discord.http.Route, payload: dict[str, typing.Any]) -> dict[str, typing.Any]:
        followup = next(f for f in self.followups if f.message.id == int(route.url.rsplit("/", 1)[-1]))
        followup.content = payload.get("content", followup.content)
        return {**facts.dict_from_message(followup.message), "content": followup.content}


def _multipart_json(multipart: list | None) -> dict[str, typing.Any]:
    for part in multipart or []:
        if part.get("name") == "payload_json":
            return json.loads(part["value"])
    return {}


def slash_command(webhooks: FakeWebhookAdapter, name: str, *, channel: discord.abc.Messageable,
                  user: discord.abc.User, args: str | None = None,
                  attachment: discord.Attachment | None = None) -> str:
    """Deliver an APPLICATION_COMMAND interaction (INTERACTION_CREATE) as Discord would.
    Returns the interaction token, which follow-ups are addressed with."""
    state = back.get_state()
    token = f"interaction-token-{facts.make_id()}"
    webhooks.channels[token] = channel
    async_context.set(webhooks)  # the tasks discord.py starts for this interaction inherit it
    options: list[dict[str, typing.Any]] = []
    if args is not None:
        options.append({"name": "args", "type": 3, "value": args})
    data: dict[str, typing.Any] = {"id": str(facts.make_id()), "name": name, "type": 1, "options": options}
    if attachment is not None:
        options.append({"name": "file", "type": 11, "value": str(attachment.id)})
        data["resolved"] = {"attachments": {str(attachment.id): attachment.to_dict()}}
    payload: dict[str, typing.Any] = {
        "id": str(facts.make_id()), "application_id": str(state.application_id), "type": 2, "data": data,
        "channel_id": str(channel.id), "token": token, "version": 1, "locale": "en-US",
        "app_permissions": str(discord.Permissions.all().value), "entitlements": [],
        "attachment_size_limit": 10_485_760, "context": 0 if getattr(channel, "guild", None) else 1,
    }
    guild = getattr(channel, "guild", None)
    if guild is not None:
        member = guild.get_member(user.id)
        payload.update(guild_id=str(guild.id), guild_locale="en-US",
                       member={**facts.dict_from_member(member), "permissions": "0", "joined_at": None})
        payload["channel"] = {"id": str(channel.id), "type": channel.type.value, "guild_id": str(guild.id),
                              "name": channel.name, "position": 0, "permissions": "0"}
    else:
        payload["user"] = facts.dict_from_user(user)
        payload["channel"] = {"id": str(channel.id), "type": 1, "recipients": [facts.dict_from_user(user)]}
    state.parse_interaction_create(payload)
    return token


def stored_messages(channel_id: int) -> list[dict[str, typing.Any]]:
    """dpytest's server-side record of a channel: every message as last edited, in order."""
    return list(back._cur_config.messages.get(channel_id, []))


def drain_sent() -> list[discord.Message]:
    """Everything the bot posted since the last drain, in order (dpytest's sent queue)."""
    sent = []
    while not dpytest.sent_queue.empty():
        sent.append(dpytest.sent_queue.get_nowait())
    return sent


def join_guild(user: discord.abc.User, guild: discord.Guild, roles: typing.Sequence[discord.Role] = ()) -> discord.Member:
    """A member as GUILD_CREATE lists it. dpytest adds members through GUILD_MEMBER_ADD, which
    discord.py caches only with the privileged members intent, which kagentbot does not ask for."""
    state = back.get_state()
    data = facts.make_member_dict(guild, user, [role.id for role in roles])
    member = discord.Member(data=data, guild=guild, state=state)
    guild._add_member(member)
    return member


async def finish_interactions() -> None:
    """dpytest's run_all_events waits for event handlers; app commands run in their own tasks."""
    await dpytest.run_all_events()
    while pending := [t for t in asyncio.all_tasks() if t.get_name() == "CommandTree-invoker" and not t.done()]:
        await asyncio.gather(*pending)
