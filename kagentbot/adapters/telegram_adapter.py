"""Telegram through python-telegram-bot: long polling by default, a webhook as an option.

Groups: the bot answers when @mentioned (or text-mentioned), when replied to, and to commands
meant for it; private chats: always. Steps and the answer go out as replies to the user's
message (inside the forum topic where there is one), in Telegram's HTML parse mode.

python-telegram-bot is imported inside the methods that need it: `configured()` and the CLI
must not pay for it at start."""

from __future__ import annotations

import logging
import re
import secrets
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kagentbot.chat.adapter import (
    BaseAdapter,
    Capabilities,
    ChatMoved,
    Destination,
    RateLimited,
    Receiver,
    SentMessage,
    Undeliverable,
)
from kagentbot.chat.commands import FileTooLarge
from kagentbot.chat.intake import IntakeUnavailable
from kagentbot.chat.messages import Attachment, IncomingMessage
from kagentbot.chat.recent import Recent
from kagentbot.config.secret import is_set, secret_text
from kagentbot.config.settings import Settings

if TYPE_CHECKING:
    from telegram import Message, Update
    from telegram.ext import Application, ContextTypes, Updater

    from kagentbot.adapters.telegram_stored import StoredFirstPolling, StoredFirstWebhook
    from kagentbot.chat.commands import Command, CommandRouter

log = logging.getLogger(__name__)

MAX_LENGTH = 4096  # characters of text after entity parsing
BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile through the public Bot API
SEEN_UPDATES = 2048  # update ids remembered to drop redeliveries
REMEMBERED_TEXTS = 1024  # sent texts remembered to skip identical edits
_ADDRESSED_COMMAND = re.compile(r"^/([A-Za-z0-9_]+)@([A-Za-z0-9_]+)")
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token


def configured(settings: Settings) -> bool:
    return is_set(settings.telegram.token)


def create(settings: Settings, router: "CommandRouter") -> TelegramAdapter:
    return TelegramAdapter(settings, commands=router.commands())


def webhook_secret(settings: Settings) -> str:
    """The webhook's secret token: the configured one, else a fresh random one (each start
    registers it anew with setWebhook). Either way only Telegram can post updates: PTB answers
    403 to a request without the matching X-Telegram-Bot-Api-Secret-Token header."""
    configured_secret = settings.telegram.webhook_secret
    if configured_secret is not None and configured_secret.get_secret_value():
        return configured_secret.get_secret_value()
    return secrets.token_urlsafe(32)  # 43 characters of A-Z, a-z, 0-9, _ and -


def _updater(app: Application) -> Updater:
    """python-telegram-bot's updater (built with ApplicationBuilder's, so never None here)."""
    if app.updater is None:
        raise RuntimeError("the Telegram application has no updater")
    return app.updater


def file_base_url(settings: Settings) -> str:
    """Downloads live beside the API: https://api.telegram.org/bot → .../file/bot."""
    if settings.telegram.base_file_url:
        return settings.telegram.base_file_url
    head, sep, tail = settings.telegram.base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else settings.telegram.base_url + "/file/bot"


class TelegramAdapter(BaseAdapter):
    """Lifecycle as python-telegram-bot's Application: `start(receive)` initialises it, registers
    the command menu and starts polling (or the webhook server); `stop()` undoes all of it."""

    platform = "telegram"

    def __init__(self, settings: Settings, commands: Sequence[Command] | None = None) -> None:
        self.settings = settings
        self.capabilities = Capabilities(
            threads=True,
            edits=True,
            max_length=MAX_LENGTH,
            send_interval=settings.telegram.send_interval,
            edit_interval=settings.telegram.edit_interval,
            markup="telegram",
            typing=True,
            deletes=True,
            # with replicas, a webhook behind a load balancer reaches any of them; polling is the
            # leader's alone, in Telegram's order
            scattered=settings.telegram.mode == "webhook",
        )
        self._commands = list(commands) if commands is not None else None
        self._offered: list[Command] = []  # the Bot's commands, when none were given here
        self._receive: Receiver | None = None
        self._app: Application | None = None
        self._webhook: StoredFirstWebhook | None = None  # replicas: acknowledges only what was stored
        self._poller: StoredFirstPolling | None = None  # replicas (the leader): confirms only what was stored
        self._seen: Recent[int, None] = Recent(SEEN_UPDATES)
        self._last_text: Recent[tuple[str, str], str] = Recent(REMEMBERED_TEXTS)  # recent sends, to skip identical edits
        self._known_commands: set[str] = set()  # our command names, known after start
        self.username = ""  # the bot's @username, known after start
        self.bot_id = 0
        self.leading = True  # whether this process polls (with several replicas, the leader alone: `set_leading`)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, receive: Receiver) -> None:
        self._check_settings()
        self._receive = receive
        self._app = app = self._build()
        try:
            await self._connect(app)
            commands = self._command_list()
            self._known_commands = {c.name.lower() for c in commands}
            await self._register_commands(commands)
            await self._start_updates(app)
            await app.start()
        except BaseException:
            await self.stop()  # leave no client or server half open
            raise
        log.info("telegram: @%s receiving updates by %s", self.username, self.settings.telegram.mode)

    async def stop_receiving(self) -> None:
        """Stop polling (or the webhook server): updates not fetched yet stay with Telegram."""
        await self._stop_webhook()
        await self._stop_updates(self._app)

    async def stop(self) -> None:
        app, self._app = self._app, None
        self._receive = None
        await self._stop_webhook()
        await self._stop_updates(app)
        if app is None:
            return
        if app.running:
            await app.stop()
        await app.shutdown()
        await app.bot.shutdown()  # closes the HTTP clients even when initialize() failed half way

    async def connected(self) -> bool:
        """For /readyz: the application runs and fetches updates (polling or the webhook server),
        or leaves polling to the leader replica."""
        app = self._app
        if app is None or not app.running:
            return False
        if self._webhook is not None:
            return True
        return self.polling() or not self._polls()

    def polling(self) -> bool:
        """Whether this process is fetching updates with getUpdates now."""
        if self._poller is not None:
            return self._poller.running
        app = self._app
        return app is not None and app.updater is not None and app.updater.running

    def _polls(self) -> bool:
        return self.settings.telegram.mode == "polling" and self.leading

    async def set_leading(self, leading: bool) -> None:
        """With several replicas only one may poll (Telegram refuses a second getUpdates at the
        same time): the bot says whether this one is the leader, before start and whenever that
        changes. Telegram keeps the offset of the updates already taken, so a new leader goes on
        from there. A webhook receives on every replica: nothing changes."""
        self.leading = leading
        app = self._app
        if app is None or not app.running or self.settings.telegram.mode != "polling" or leading == self.polling():
            return
        if leading:
            await self._start_polling(app)
            log.info("telegram: polling (this replica leads)")
        else:
            await self._stop_updates(app)
            log.info("telegram: polling handed to the leader replica")

    def _stores_first(self) -> bool:
        """Replicas: Telegram's update is confirmed (webhook answered 200, or polled past) only
        once it is stored."""
        return self.intake is not None

    async def _start_polling(self, app: Application) -> None:
        if not self._stores_first():
            await _updater(app).start_polling(allowed_updates=["message"])
            return
        from kagentbot.adapters.telegram_stored import StoredFirstPolling

        # no in-process dedupe on this path either: the intake drops what it stored already
        self._poller = StoredFirstPolling(app.bot, self._hand_over)
        await self._poller.start()

    async def _stop_updates(self, app: Application | None) -> None:
        """Stop fetching updates: our polling loop, or python-telegram-bot's updater (polling,
        or its webhook server)."""
        poller, self._poller = self._poller, None
        if poller is not None:
            await poller.stop()
        elif app is not None and app.updater is not None and app.updater.running:
            await app.updater.stop()

    async def _start_stored_first(self, app: Application) -> None:
        from kagentbot.adapters.telegram_stored import StoredFirstWebhook

        # no in-process dedupe on this path: the intake drops redeliveries, only once one was stored
        self._webhook = StoredFirstWebhook(self.settings.telegram, app.bot, webhook_secret(self.settings), self._hand_over)
        await self._webhook.start()

    async def _stop_webhook(self) -> None:
        webhook, self._webhook = self._webhook, None
        if webhook is not None:
            await webhook.stop()

    def _check_settings(self) -> None:
        tg = self.settings.telegram
        if not configured(self.settings):
            raise RuntimeError("Telegram is not configured: set KAGENTBOT_TELEGRAM__TOKEN (from @BotFather)")
        if tg.mode == "webhook" and not tg.webhook_url.startswith("https://"):
            raise RuntimeError("KAGENTBOT_TELEGRAM__MODE=webhook needs KAGENTBOT_TELEGRAM__WEBHOOK_URL, a public https:// URL")
        if tg.mode == "webhook" and tg.webhook_secret and not _WEBHOOK_SECRET.match(tg.webhook_secret.get_secret_value()):
            raise RuntimeError("KAGENTBOT_TELEGRAM__WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if tg.mode == "webhook" and self.settings.cluster.enabled and not is_set(tg.webhook_secret):
            # Each replica registers the webhook at start; with a random secret each, the last one
            # to start would make Telegram's posts to every other replica fail the secret check.
            raise RuntimeError("with several replicas (cluster.enabled) every one registers the same Telegram webhook: "
                               "set KAGENTBOT_TELEGRAM__WEBHOOK_SECRET to one secret shared by all of them")

    async def _connect(self, app: Application) -> None:
        from telegram.error import InvalidToken, NetworkError

        try:
            await app.initialize()  # getMe
        except InvalidToken:
            # PTB's message quotes the token; ours must not
            raise RuntimeError("Telegram rejected the bot token: check KAGENTBOT_TELEGRAM__TOKEN") from None
        except NetworkError as exc:
            raise RuntimeError(f"cannot reach the Telegram Bot API at {self.settings.telegram.base_url}: {exc}") from exc
        self.username, self.bot_id = app.bot.username or "", app.bot.id

    def _build(self) -> Application:
        from telegram import Update
        from telegram.ext import ApplicationBuilder, MessageHandler, TypeHandler, filters

        tg = self.settings.telegram
        builder = (
            ApplicationBuilder()
            .token(secret_text(tg.token))
            .base_url(tg.base_url)
            .base_file_url(file_base_url(self.settings))
            .local_mode(tg.local_mode)
            .job_queue(None)
        )
        if self._stores_first():
            builder = builder.updater(None)
        app = builder.build()
        app.add_handler(TypeHandler(Update, self._drop_redelivered), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        app.add_error_handler(self._on_error)
        return app

    async def _start_updates(self, app: Application) -> None:
        tg = self.settings.telegram
        if tg.mode == "polling":
            if self.leading:
                await self._start_polling(app)
            return
        if self._stores_first():
            await self._start_stored_first(app)
            return
        await _updater(app).start_webhook(
            listen=tg.listen,
            port=tg.port,
            url_path=urlsplit(tg.webhook_url).path.lstrip("/"),
            webhook_url=tg.webhook_url,
            secret_token=webhook_secret(self.settings),
            allowed_updates=["message"],
        )

    # -- command menu --------------------------------------------------------------------------
    def offer_commands(self, commands: Sequence[Command]) -> None:
        self._offered = list(commands)

    def _command_list(self) -> list[Command]:
        """Given at construction, else those the Bot offered."""
        return self._commands if self._commands is not None else self._offered

    async def _register_commands(self, commands: Sequence[Command]) -> None:
        from telegram import BotCommand

        menu = [BotCommand(c.name, _describe(c.summary)) for c in commands if _COMMAND_NAME.match(c.name)]
        skipped = [c.name for c in commands if not _COMMAND_NAME.match(c.name)]
        if skipped:
            log.warning("telegram: command names %s are not valid bot commands; left out of the menu", skipped)
        if menu:
            await self._require_app().bot.set_my_commands(menu)

    # -- intake --------------------------------------------------------------------------------
    async def _drop_redelivered(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Telegram redelivers webhook updates it thinks were not received; handle each once."""
        from telegram.ext import ApplicationHandlerStop

        if update.update_id in self._seen:
            raise ApplicationHandlerStop
        self._seen[update.update_id] = None

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._hand_over(update)

    async def _hand_over(self, update: Update) -> None:
        message = update.message
        if message is not None and message.migrate_from_chat_id:  # a group upgraded to a supergroup
            if await self._really_moved(message):
                self._chat_moved(message.migrate_from_chat_id, message.chat.id)
            return
        incoming = self.normalise(message) if message is not None else None
        if incoming is None or self._receive is None:
            return
        if self.intake is None:
            self._receive(self, incoming)  # never blocks: the Bot queues the work
            return
        try:  # replicas: taken once across them (python-telegram-bot has acknowledged the update)
            await self.intake.take(self, incoming)
        except IntakeUnavailable:
            self._seen.pop(update.update_id, None)
            raise

    async def _really_moved(self, message: Message) -> bool:
        """Moving a group's memory, persona and schedules is only done on Telegram's word: the
        old group must answer "upgraded to a supergroup" with this new id. (A real upgrade is
        also seen when a send to the old id fails that way, so a check that fails loses nothing.)"""
        from telegram.error import ChatMigrated, TelegramError

        old, new = message.migrate_from_chat_id, message.chat.id
        try:
            await self._require_app().bot.get_chat(old)
        except ChatMigrated as exc:
            if exc.new_chat_id == new:
                return True
        except TelegramError as exc:
            log.warning("telegram: could not confirm that group %s moved to %s (%s); left as it is", old, new, exc)
            return False
        log.warning("telegram: ignored a claim that group %s moved to %s: Telegram does not confirm it", old, new)
        return False

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: handling update failed", exc_info=context.error)

    def normalise(self, message: Message) -> IncomingMessage | None:
        """The platform message as kagentbot's IncomingMessage, or None when it is not for us."""
        user = message.from_user
        if user is None or user.is_bot:
            return None  # channel posts, other bots, our own echoes
        is_dm = message.chat.type == "private"
        text, mentioned = self._without_mentions(message)
        command = _normalise_command(text, self.username)
        if command is None:
            return None  # a command addressed to another bot
        replied = self._replies_to_bot(message)
        if not (is_dm or mentioned or replied or _starts_with_command(message)):
            return None  # group chatter not meant for the bot
        name = command[1:].split(maxsplit=1)[0].lower() if command.startswith("/") and len(command) > 1 else ""
        if name == "start":  # what a client sends when someone first opens the bot
            command, name = "/help", "help"
        addressed = _ADDRESSED_COMMAND.match(text) is not None
        if name and not (is_dm or mentioned or replied or addressed) and name not in self._known_commands:
            return None  # `/warn @spammer` is for another bot in the group, not an unknown command of ours
        return IncomingMessage(
            platform=self.platform,
            chat_id=str(message.chat.id),
            user_id=str(user.id),
            text=command,
            message_id=str(message.message_id),
            thread_id=str(message.message_thread_id) if message.is_topic_message else "",
            user_name=user.full_name or user.username or "",
            attachments=self._attachments(message),
            is_dm=is_dm,
            mentions_bot=is_dm or mentioned or replied,
        )

    def _chat_moved(self, old_id: int | str, new_id: int | str) -> None:
        """Tell the Bot that a group's things now belong under its supergroup's id."""
        if self.on_chat_moved is not None:
            self.on_chat_moved(self, str(old_id), str(new_id))

    def _without_mentions(self, message: Message) -> tuple[str, bool]:
        text = message.text or message.caption or ""
        entities = message.entities or message.caption_entities or ()
        ours = [e for e in entities if self._is_our_mention(e, text)]
        for entity in sorted(ours, key=lambda e: e.offset, reverse=True):
            text = _cut_utf16(text, entity.offset, entity.length)
        if ours:  # "@bot, what is..." → "what is..."; the rest (a pasted code's indents) stays as it was
            text = text.strip().lstrip(",:").lstrip()
        return text.strip(), bool(ours)

    def _is_our_mention(self, entity: Any, text: str) -> bool:
        if entity.type == "text_mention":
            return entity.user is not None and entity.user.id == self.bot_id
        if entity.type == "mention" and self.username:
            return _utf16_slice(text, entity.offset, entity.length).lower() == f"@{self.username.lower()}"
        return False

    def _replies_to_bot(self, message: Message) -> bool:
        parent = message.reply_to_message
        if parent is None or parent.forum_topic_created is not None:
            return False  # in forum topics every message "replies" to the topic's first message
        return parent.from_user is not None and parent.from_user.id == self.bot_id

    def _attachments(self, message: Message) -> tuple[Attachment, ...]:
        document = message.document
        if document is None:
            return ()
        name = document.file_name or document.file_unique_id
        size = document.file_size or 0
        return (Attachment(name, size, document.mime_type or "", self._fetcher(document.file_id, name, size)),)

    # -- downloads -----------------------------------------------------------------------------
    def download_limit(self) -> tuple[int, str]:
        """Bytes allowed, and which setting or platform rule sets that figure."""
        ours = int(self.settings.memory.max_upload_mb * 1024 * 1024)
        if self.settings.telegram.local_mode or ours < BOT_API_DOWNLOAD_LIMIT:
            return ours, "KAGENTBOT_MEMORY__MAX_UPLOAD_MB"
        return BOT_API_DOWNLOAD_LIMIT, "the Bot API's 20 MB download limit (a local Bot API server lifts it)"

    def _fetcher(self, file_id: str, name: str, declared: int):
        async def fetch() -> bytes:
            self._check_size(name, declared)
            file = await self._require_app().bot.get_file(file_id)
            self._check_size(name, file.file_size or 0)
            data = bytes(await file.download_as_bytearray())
            self._check_size(name, len(data))
            return data

        return fetch

    def _check_size(self, name: str, size: int) -> None:
        limit, rule = self.download_limit()
        if size > limit:
            raise FileTooLarge(f"{name} is {size / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB ({rule}).")

    # -- output --------------------------------------------------------------------------------
    async def destination(self, message: IncomingMessage) -> Destination:
        return Destination(message.chat_id, message.thread_id, message.message_id)

    async def send(self, where: Destination, text: str) -> SentMessage:
        if where.private_to and where.private_to != where.chat_id:
            return await self._send_privately(where, text)
        from telegram import LinkPreviewOptions, ReplyParameters

        options: dict[str, Any] = {"link_preview_options": LinkPreviewOptions(is_disabled=True)}
        if where.reply_to:
            options["reply_parameters"] = ReplyParameters(int(where.reply_to), allow_sending_without_reply=True)
        if where.thread_id:
            options["message_thread_id"] = int(where.thread_id)
        bot = self._require_app().bot
        sent = await self._call(lambda mode: bot.send_message(where.chat_id, text, parse_mode=mode, **options), where.chat_id)
        result = SentMessage(where.chat_id, str(sent.message_id), where.thread_id)
        self._remember(result, text)
        return result

    async def typing(self, where: Destination) -> None:
        from telegram.constants import ChatAction

        options = {"message_thread_id": int(where.thread_id)} if where.thread_id else {}
        await self._require_app().bot.send_chat_action(where.chat_id, ChatAction.TYPING, **options)

    async def _send_privately(self, where: Destination, text: str) -> SentMessage:
        """Telegram has no message that only one member of a group sees: a reply meant for one
        user goes to their chat with the bot. A bot may not start that chat: until the user has
        opened it this is Undeliverable, and the Bot posts `private_pointer` instead."""
        return await self.send(Destination(where.private_to), text)

    @property
    def private_pointer(self) -> str:
        """What the group sees in place of a private reply that could not reach its user."""
        return f"I have a private reply for you: open a chat with @{self.username}, press Start, and send the command there."

    async def edit(self, message: SentMessage, text: str) -> None:
        key = (message.chat_id, message.message_id)
        if self._last_text.get(key) == text:
            return  # Telegram refuses identical edits
        bot = self._require_app().bot
        try:
            await self._call(lambda mode: bot.edit_message_text(text, message.chat_id, int(message.message_id), parse_mode=mode),
                             message.chat_id)
        except Undeliverable as exc:
            if "not modified" not in str(exc).lower():
                raise
        self._remember(message, text)

    async def delete(self, message: SentMessage) -> None:
        """Take back one of the bot's own messages (a queue notice once its turn has started)."""
        bot = self._require_app().bot
        await self._call(lambda mode: bot.delete_message(message.chat_id, int(message.message_id)), message.chat_id)
        self._last_text.pop((message.chat_id, message.message_id), None)

    def _remember(self, message: SentMessage, text: str) -> None:
        self._last_text[(message.chat_id, message.message_id)] = text

    async def _call(self, request, chat_id: str):
        """Send as HTML; text that is not valid HTML (a command's plain reply with `<name>`)
        goes again as plain text rather than being lost. 429s become RateLimited."""
        from telegram.constants import ParseMode
        from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter

        try:
            try:
                return await request(ParseMode.HTML)
            except BadRequest as exc:
                if "can't parse entities" not in str(exc).lower():
                    raise
                log.info("telegram: text is not valid HTML (%s); sending it as plain text", exc)
                return await request(None)
        except RetryAfter as exc:
            raise RateLimited(_seconds(exc)) from exc
        except ChatMigrated as exc:  # seen before the upgrade's own service message: move things now
            self._chat_moved(chat_id, exc.new_chat_id)
            raise ChatMoved(f"the group is a supergroup now, with the id {exc.new_chat_id}") from exc
        except (BadRequest, Forbidden) as exc:  # chat not found, bot blocked or removed...
            raise Undeliverable(f"Telegram refused it: {exc}") from exc

    def _require_app(self) -> Application:
        if self._app is None:
            raise RuntimeError("the Telegram adapter is not started")
        return self._app


def _normalise_command(text: str, username: str) -> str | None:
    """`/kb@OurBot add` → `/kb add`; None for `/kb@SomeOtherBot`."""
    match = _ADDRESSED_COMMAND.match(text)
    if match is None:
        return text
    if username and match.group(2).lower() != username.lower():
        return None
    return f"/{match.group(1)}{text[match.end():]}"


def _starts_with_command(message: Message) -> bool:
    """Telegram marks real commands with a bot_command entity; "/etc/hosts is down" has none."""
    entities = message.entities or message.caption_entities or ()
    return any(e.type == "bot_command" and e.offset == 0 for e in entities)


def _describe(summary: str) -> str:
    """Bot command descriptions must be 1-256 characters."""
    summary = summary.strip() or "command"
    return summary if len(summary) <= 256 else summary[:255] + "…"


def _utf16_slice(text: str, offset: int, length: int) -> str:
    """Entity offsets count UTF-16 code units, not Python characters."""
    encoded = text.encode("utf-16-le")
    return encoded[offset * 2 : (offset + length) * 2].decode("utf-16-le")


def _cut_utf16(text: str, offset: int, length: int) -> str:
    encoded = text.encode("utf-16-le")
    return (encoded[: offset * 2] + encoded[(offset + length) * 2 :]).decode("utf-16-le")


def _seconds(exc: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns while moving retry_after to timedelta
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
