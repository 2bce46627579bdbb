"""Slack through slack-bolt (async): Socket Mode by default, the HTTP Events API as an option.

Channels: the bot answers `app_mention` events; DMs: every `message.im`. Steps and the answer go
into the thread of the user's message (`thread_ts`), the answer optionally broadcast to the
channel. Slash commands (`/kb`, `/persona`, `/schedule`, `/help`) are acknowledged at once and
answered through their `response_url`, visible to the one who typed them. A file shared in a DM
with `kb add` (or with no text at all) is added to the sender's knowledge base.

slack-bolt is imported inside the methods that need it: `configured()` and the CLI must not pay
for it at start."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kagentbot.chat.adapter import (
    BaseAdapter,
    Capabilities,
    Destination,
    RateLimited,
    Receiver,
    SentMessage,
    Undeliverable,
)
from kagentbot.chat.commands import FileTooLarge
from kagentbot.chat.intake import IntakeUnavailable
from kagentbot.chat.messages import Attachment, AttachmentError, CommandHandle, IncomingMessage
from kagentbot.chat.recent import Recent
from kagentbot.config.secret import is_set, secret_text
from kagentbot.config.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from kagentbot.chat.commands import CommandRouter

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# Web API errors worth a retry (Slack's own trouble); any other `ok: false` is final.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"})
MAX_LENGTH = 4000  # Slack's advice for one message's text (the hard cut is 40,000)
SEEN_EVENTS = 4096  # (channel, ts) pairs remembered to handle retried or doubled events once
RESPONSE_URL_LIFETIME = 30 * 60  # seconds a slash command's response_url accepts replies
RESPONSE_URL_USES = 5  # replies it accepts in that time
REMEMBERED_COMMANDS = 512
REORDER_WINDOW = 0.03  # seconds
_ACCEPTED_SUBTYPES = {None, "file_share", "thread_broadcast"}  # the rest are edits, joins, bots...
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_KB_ADD = re.compile(r"^/?kb\s+add\b", re.I)


def configured(settings: Settings) -> bool:
    return is_set(settings.slack.bot_token)


def create(settings: Settings, router: CommandRouter) -> SlackAdapter:
    return SlackAdapter(settings)


class SlackAdapter(BaseAdapter):
    """`start(receive)` checks the tokens (auth.test, apps.connections.open), then opens the
    Socket Mode connection or the HTTP events server; `stop()` closes all of it."""

    platform = "slack"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.capabilities = Capabilities(
            threads=True,
            edits=True,
            max_length=MAX_LENGTH,
            send_interval=settings.slack.send_interval,
            edit_interval=settings.slack.edit_interval,
            markup="slack",
            deletes=True,
            # Socket Mode envelopes and HTTP events are handled concurrently, so a follow-up sent
            # right after a question can reach the bot first; the Bot restores Slack's ts order.
            reorder_window=REORDER_WINDOW,
            scattered=True,  # with replicas, Slack sends each envelope to any of their connections
        )
        self._receive: Receiver | None = None
        self._client: AsyncWebClient | None = None
        self._app: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._server: web.AppRunner | None = None
        self._seen: Recent[tuple[str, str], None] = Recent(SEEN_EVENTS)
        self._commands: Recent[str, _CommandReplies] = Recent(REMEMBERED_COMMANDS)  # synthetic message id → where its replies go
        self.bot_user_id = ""

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, receive: Receiver) -> None:
        self._check_settings()
        self._receive = receive
        try:
            await self._connect()
            self._app = app = self._build_app()
            if self.settings.slack.mode == "socket":
                await self._start_socket_mode(app)
            else:
                await self._start_http(app)
        except BaseException:
            await self.stop()  # leave no socket, server or HTTP session half open
            raise
        log.info("slack: <@%s> receiving events by %s", self.bot_user_id, self.settings.slack.mode)

    async def stop_receiving(self) -> None:
        """Close the Socket Mode connection or the events server: Slack retries the events it
        could not hand over, so they reach the next start."""
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close_async()
        server, self._server = self._server, None
        if server is not None:
            await server.cleanup()

    async def stop(self) -> None:
        self._receive = None
        await self.stop_receiving()
        client, self._client = self._client, None
        if client is not None and client.session is not None and not client.session.closed:
            await client.session.close()
        self._app = None

    async def connected(self) -> bool:
        """For /readyz: the Socket Mode WebSocket is open (and answers pings), or the events
        server listens."""
        if self.settings.slack.mode == "http":
            return self._server is not None
        return self._socket is not None and await self._socket.client.is_connected()

    def _check_settings(self) -> None:
        slack = self.settings.slack
        if not configured(self.settings):
            raise RuntimeError("Slack is not configured: set KAGENTBOT_SLACK__BOT_TOKEN (xoxb-...)")
        if slack.mode == "socket" and not secret_text(slack.app_token):
            raise RuntimeError("Slack Socket Mode needs an app-level token: set KAGENTBOT_SLACK__APP_TOKEN (xapp-..., "
                               "scope connections:write), or use KAGENTBOT_SLACK__MODE=http")
        if slack.mode == "http" and not secret_text(slack.signing_secret):
            raise RuntimeError("Slack HTTP mode needs the app's signing secret: set KAGENTBOT_SLACK__SIGNING_SECRET")

    async def _connect(self) -> None:
        """auth.test with the bot token: who we are, and a clear error for a wrong token."""
        import aiohttp
        from slack_sdk.errors import SlackApiError
        from slack_sdk.web.async_client import AsyncWebClient

        # our own session, so that stop() can close it (the SDK opens one per call otherwise)
        self._client = client = AsyncWebClient(token=secret_text(self.settings.slack.bot_token),
                                               base_url=self.settings.slack.api_url,
                                               session=aiohttp.ClientSession(), timeout=30)
        try:
            identity = await client.auth_test()
        except SlackApiError as exc:
            raise RuntimeError(f"Slack rejected the bot token ({exc.response.get('error')}): "
                               "check KAGENTBOT_SLACK__BOT_TOKEN") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise RuntimeError(f"cannot reach the Slack Web API at {self.settings.slack.api_url}: {exc}") from exc
        self.bot_user_id = identity.get("user_id", "")

    def _build_app(self) -> AsyncApp:
        from slack_bolt.async_app import AsyncApp

        app = AsyncApp(
            client=self._client,
            signing_secret=secret_text(self.settings.slack.signing_secret) or "unused in socket mode",
            request_verification_enabled=self.settings.slack.mode == "http",  # Socket Mode has no signatures
            logger=logging.getLogger("kagentbot.slack.bolt"),
            # replicas: Slack is acknowledged only once `_deliver` has stored the event (a failure
            # answers 500, or no Socket Mode ack, and Slack delivers it again)
            process_before_response=self.intake is not None,
        )
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.command(re.compile(r"^/"))(self._on_command)
        app.error(self._on_error)
        return app

    async def _start_socket_mode(self, app: AsyncApp) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
        from slack_sdk.errors import SlackApiError

        app_token = secret_text(self.settings.slack.app_token)
        client = self._require_client()
        self._socket = AsyncSocketModeHandler(app, app_token, web_client=client)
        try:
            # the SDK retries a failing connection forever; ask for the first URL here, so that a
            # wrong app token is an error at start rather than a silent loop
            opened = await client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            raise RuntimeError(f"Slack rejected the app-level token ({exc.response.get('error')}): "
                               "check KAGENTBOT_SLACK__APP_TOKEN (xapp-..., scope connections:write)") from None
        self._socket.client.wss_uri = opened["url"]
        try:
            # the SDK also retries a WebSocket that cannot be opened forever, with the same URL
            await asyncio.wait_for(self._socket.connect_async(), self.settings.slack.connect_timeout)
        except asyncio.TimeoutError:
            host = urlsplit(opened["url"]).hostname
            raise RuntimeError(f"cannot open the Socket Mode WebSocket to {host} within "
                               f"{self.settings.slack.connect_timeout:g} s: a firewall or proxy may block "
                               "WebSockets (KAGENTBOT_SLACK__CONNECT_TIMEOUT; or use KAGENTBOT_SLACK__MODE=http)") from None

    async def _start_http(self, app: AsyncApp) -> None:
        from aiohttp import web
        from slack_bolt.app.async_server import AsyncSlackAppServer

        slack = self.settings.slack
        server = AsyncSlackAppServer(port=slack.port, path=EVENTS_PATH, app=app, host=slack.listen)
        self._server = web.AppRunner(server.web_app, access_log=None)
        await self._server.setup()
        site = web.TCPSite(self._server, slack.listen, slack.port)
        try:
            await site.start()
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {slack.listen}:{slack.port} for Slack events ({exc.strerror}): "
                               "set KAGENTBOT_SLACK__PORT to a free port") from None

    # -- intake: bolt acknowledges; we only normalise and hand over -----------------------------
    async def _on_mention(self, event: dict[str, Any]) -> None:
        if event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D"):
            return  # the DM's message event brings it
        await self._deliver(self.normalise(event, is_dm=False))

    async def _on_message(self, event: dict[str, Any]) -> None:
        if event.get("channel_type") != "im":
            return  # channel history (if subscribed) is not for us; mentions come as app_mention
        await self._deliver(self.normalise(event, is_dm=True))

    async def _on_command(self, ack, command: dict[str, Any]) -> None:
        await ack()  # within Slack's 3 seconds, before any work
        key = str(command.get("trigger_id") or time.monotonic_ns())
        self._commands[key] = _CommandReplies(command.get("response_url", ""), time.monotonic() + RESPONSE_URL_LIFETIME,
                                              command.get("user_id", ""))
        channel = command.get("channel_id", "")
        incoming = IncomingMessage(
            platform=self.platform,
            chat_id=channel,
            user_id=command.get("user_id", ""),
            text=f"{command.get('command', '/help')} {_plain_text(command.get('text', ''))}".strip(),
            command=CommandHandle(key),
            user_name=command.get("user_name", ""),
            is_dm=channel.startswith("D") or command.get("channel_name") == "directmessage",
            mentions_bot=True,
        )
        await self._deliver(incoming)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("slack: handling an event failed: %s", error, exc_info=error)

    async def _deliver(self, incoming: IncomingMessage | None) -> None:
        if incoming is None or self._receive is None:
            return
        if self.intake is None:
            self._receive(self, incoming)  # never blocks: the Bot queues the work
            return
        try:
            await self.intake.take(self, incoming)
        except IntakeUnavailable:
            self._seen.pop((incoming.chat_id, incoming.message_id), None)  # Slack's next try must get through
            raise

    def normalise(self, event: dict[str, Any], is_dm: bool) -> IncomingMessage | None:
        """A Slack message event as kagentbot's IncomingMessage, or None when it is not for us."""
        if event.get("subtype") not in _ACCEPTED_SUBTYPES or event.get("hidden"):
            return None
        user = event.get("user", "")
        if not user or event.get("bot_id") or user == self.bot_user_id:
            return None  # other bots, our own messages
        if not self._first_time(event.get("channel", ""), event.get("ts", "")):
            return None  # a retried delivery, or the same message as both app_mention and message
        text = self._without_our_mention(event.get("text", ""))
        attachments = self._attachments(event) if is_dm else ()
        if attachments and (not text or _KB_ADD.match(text)):
            text = "/kb add" + (_KB_ADD.sub("", text, count=1) if text else "")  # Slack keeps "/..." for its own commands
        profile = event.get("user_profile") or {}
        return IncomingMessage(
            platform=self.platform,
            chat_id=event.get("channel", ""),
            user_id=user,
            text=text,
            message_id=event.get("ts", ""),
            thread_id=event.get("thread_ts", ""),
            user_name=profile.get("display_name") or profile.get("real_name") or "",
            attachments=attachments,
            is_dm=is_dm,
            mentions_bot=True,
        )

    def _first_time(self, channel: str, ts: str) -> bool:
        key = (channel, ts)
        if key in self._seen:
            return False
        self._seen[key] = None
        return True

    def _without_our_mention(self, text: str) -> str:
        if self.bot_user_id:
            text = re.sub(rf"<@{re.escape(self.bot_user_id)}(\|[^>]*)?>", " ", text)
        text = re.sub(r"[ \t]{2,}", " ", text).strip().lstrip(",:").strip()
        return _plain_text(text)

    # -- files ---------------------------------------------------------------------------------
    def _attachments(self, event: dict[str, Any]) -> tuple[Attachment, ...]:
        found = []
        for file in event.get("files") or ():
            url = file.get("url_private_download") or file.get("url_private")
            if not url or file.get("mode") == "tombstone":
                continue
            name = file.get("name") or file.get("title") or file.get("id", "file")
            size = int(file.get("size") or 0)
            found.append(Attachment(name, size, file.get("mimetype", ""), self._fetcher(url, name, size)))
        return tuple(found)

    def download_limit(self) -> int:
        return int(self.settings.memory.max_upload_mb * 1024 * 1024)

    def _fetcher(self, url: str, name: str, declared: int):
        async def fetch() -> bytes:
            self._check_size(name, declared)
            self._check_file_host(url)
            return await self._download(url, name)

        return fetch

    def _check_size(self, name: str, size: int) -> None:
        limit = self.download_limit()
        if size > limit:
            raise FileTooLarge(f"{name} is {size / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB "
                               "(KAGENTBOT_MEMORY__MAX_UPLOAD_MB).")

    def _check_file_host(self, url: str) -> None:
        """The bot token goes only to the Slack deployment we talk to, whatever an event says."""
        host, api_host = urlsplit(url).hostname or "", urlsplit(self.settings.slack.api_url).hostname or ""
        if not (host == api_host or host.endswith("." + _registered_domain(api_host))):
            raise AttachmentError(f"a shared file at {host} is not hosted by Slack; not downloading it.")

    async def _download(self, url: str, name: str) -> bytes:
        import aiohttp

        headers = {"Authorization": f"Bearer {secret_text(self.settings.slack.bot_token)}"}
        session = self._require_client().session
        if session is None:  # _connect gives the client a session of its own
            raise RuntimeError("the Slack adapter is not started")
        try:
            # aiohttp drops the Authorization header when a redirect leaves the host
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as response:
                if response.status != 200:
                    raise AttachmentError(f"Slack refused the download of {name} (HTTP {response.status}); "
                                          "the app needs the files:read scope.")
                if response.content_type == "text/html":
                    raise AttachmentError(f"Slack answered the download of {name} with a login page; "
                                          "the app needs the files:read scope.")
                data = bytearray()
                async for block in response.content.iter_chunked(65536):
                    data += block
                    self._check_size(name, len(data))
                return bytes(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise AttachmentError(f"could not download {name} from Slack: {exc}") from exc

    # -- output --------------------------------------------------------------------------------
    async def destination(self, message: IncomingMessage) -> Destination:
        """The thread of the user's message: the thread it is in, or a new one under it."""
        return Destination(message.chat_id, message.thread_id or message.message_id, message.message_id,
                           command=message.command)

    async def send(self, where: Destination, text: str) -> SentMessage:
        if where.command is not None:
            return await self._respond(where.command, where.chat_id, text)
        thread = where.thread_id or where.reply_to  # on Slack, replying to a message is threading under it
        if where.private_to:
            return await self._ephemeral(where.chat_id, where.private_to, thread, text)
        options: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if thread:
            options["thread_ts"] = thread
            options["reply_broadcast"] = where.broadcast or None
        sent = await self._call(lambda c: c.chat_postMessage(channel=where.chat_id, text=text, **options))
        return SentMessage(sent.get("channel", where.chat_id), sent["ts"], thread)

    async def edit(self, message: SentMessage, text: str) -> None:
        await self._call(lambda c: c.chat_update(channel=message.chat_id, ts=message.message_id, text=text))

    async def delete(self, message: SentMessage) -> None:
        """Take back one of the bot's own messages (a queue notice once its turn has started)."""
        await self._call(lambda c: c.chat_delete(channel=message.chat_id, ts=message.message_id))

    async def _ephemeral(self, channel: str, user: str, thread: str, text: str) -> SentMessage:
        options = {"thread_ts": thread} if thread else {}
        sent = await self._call(lambda c: c.chat_postEphemeral(channel=channel, user=user, text=text, **options))
        return SentMessage(channel, sent.get("message_ts", ""), thread)

    async def _respond(self, command: CommandHandle, chat_id: str, text: str) -> SentMessage:
        """A slash command's reply, through its response_url: only the user who typed it sees it,
        and it works in channels the bot has not joined. Past the URL's five replies or thirty
        minutes, the rest goes as an ephemeral message (which needs the bot in the channel)."""
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        replies = self._commands.get(command.key)
        if replies is None or not replies.usable():
            if replies is None or not replies.user:
                raise Undeliverable("the slash command's response_url has expired")
            return await self._ephemeral(chat_id, replies.user, "", text)
        webhook = AsyncWebhookClient(replies.url, session=self._require_client().session, timeout=30)
        response = await webhook.send(text=text, response_type="ephemeral", replace_original=False)
        if response.status_code == 429:
            raise RateLimited(float(response.headers.get("Retry-After", "1")))
        if response.status_code != 200:
            problem = f"Slack refused the command reply: HTTP {response.status_code} {response.body}"
            raise (RuntimeError if response.status_code >= 500 else Undeliverable)(problem)
        replies.used += 1
        return SentMessage(chat_id, "", "")

    async def _call(self, request):
        """One Web API call; 429s become RateLimited so the outbox waits and retries, and errors
        that a retry cannot fix (channel_not_found, not_in_channel, invalid_auth...) Undeliverable."""
        from slack_sdk.errors import SlackApiError

        try:
            return await request(self._require_client())
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                raise RateLimited(float(exc.response.headers.get("Retry-After", "1"))) from exc
            error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
            if exc.response.status_code < 500 and error not in TRANSIENT_ERRORS:
                raise Undeliverable(f"Slack refused it: {error or exc.response.status_code}") from exc
            raise

    def _require_client(self) -> AsyncWebClient:
        if self._client is None:
            raise RuntimeError("the Slack adapter is not started")
        return self._client


@dataclass
class _CommandReplies:
    url: str
    deadline: float  # time.monotonic() after which the URL takes no more replies
    user: str
    used: int = 0

    def usable(self) -> bool:
        return bool(self.url) and self.used < RESPONSE_URL_USES and time.monotonic() <= self.deadline


def _plain_text(text: str) -> str:
    """Slack wraps links in <...> and escapes &, < and >; the agent and /kb add want plain text.
    Mentions (<@U1>) stay as they are: /persona reads them."""
    return html.unescape(_LINK.sub(_unwrap_link, text))


def _unwrap_link(match: re.Match) -> str:
    url, label = match.group(1), match.group(2)
    shown = url.removeprefix("mailto:")
    return shown if not label or label == shown else f"{label} ({shown})"


def _registered_domain(host: str) -> str:
    """slack.com for slack.com / files.slack.com; the host itself for an IP address."""
    if not host or host.replace(".", "").isdigit() or ":" in host:
        return host
    return ".".join(host.split(".")[-2:])

