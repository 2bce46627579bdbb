"""Discord (discord.py 2.x): answers mentions in guild channels and every DM. The steps and the
answer go into a thread started on the user's message, or replies where threads are not
allowed (DMs, existing threads, missing permission). Slash commands /kb, /persona, /schedule
and /help are synced at login, deferred at once and answered with a follow-up.

discord.py is imported lazily (inside the constructor and methods) so that importing this
module to ask `configured(settings)` stays cheap at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kagentbot.chat.adapter import (
    BaseAdapter,
    Capabilities,
    Destination,
    RateLimited,
    Receiver,
    SentMessage,
    Undeliverable,
)
from kagentbot.chat.intake import IntakeUnavailable
from kagentbot.chat.messages import CommandHandle, IncomingMessage
from kagentbot.chat.recent import Recent
from kagentbot.config.secret import is_set, secret_text
from kagentbot.config.settings import Settings

if TYPE_CHECKING:
    import discord

    from kagentbot.adapters.discord_client import GatewayClient
    from kagentbot.chat.commands import CommandRouter

log = logging.getLogger(__name__)
MAX_LENGTH = 2000  # characters per Discord message
NOT_TAKEN = "I can't take commands just now (my shared store is unreachable); please try again in a moment."
DEFAULT_COMMANDS: tuple[tuple[str, str], ...] = (
    ("kb", "add, list, search or remove documents in the knowledge base"),
    ("persona", "show, list or choose the bot's persona"),
    ("schedule", "run a question on a schedule"),
    ("help", "show what the bot can do"),
)

def configured(settings: Settings) -> bool:
    return is_set(settings.discord.token)


def create(settings: Settings, router: CommandRouter) -> DiscordAdapter:
    """What `kagentbot run` starts: every router command becomes a slash command."""
    return DiscordAdapter(settings, commands=[(c.name, c.summary) for c in router.commands()])


class DiscordAdapter(BaseAdapter):
    platform = "discord"

    def __init__(self, settings: Settings, commands: Sequence[tuple[str, str]] | None = None) -> None:
        """`commands`: (name, summary) of the chat commands to register as slash commands,
        e.g. `[(c.name, c.summary) for c in bot.router.commands()]`."""
        from kagentbot.adapters.discord_client import GatewayClient, gateway_client

        self.settings = settings
        self.capabilities = Capabilities(
            threads=True, edits=True, max_length=MAX_LENGTH, markup="discord",
            send_interval=settings.discord.send_interval, edit_interval=settings.discord.edit_interval,
            typing=True, deletes=True,
        )
        self.client: GatewayClient = gateway_client(settings.discord, commands or DEFAULT_COMMANDS, self._on_message,
                                                    self._on_command)
        if settings.cluster.enabled and settings.discord.shard_count is None:
            log.warning("discord: every replica receives every Discord event; set discord.shard_count and "
                        "discord.shard_ids to split them (docs/scaling.md)")
        self._max_bytes = int(settings.memory.max_upload_mb * 1_048_576)
        self._receive: Receiver | None = None
        self._gateway: asyncio.Task | None = None
        self.on_fatal: Callable[[str], None] | None = None  # set by the runner: the adapter can no longer work
        self._seen: Recent[int, None] = Recent(4096)
        self._channels: Recent[int, Any] = Recent(2048)  # channels and threads we answer in
        self._sent: Recent[str, Any] = Recent(4096)  # our messages, for edits
        self._interactions: Recent[str, Any] = Recent(1024)  # synthetic id → deferred interaction
        self._followups: Recent[str, Any] = Recent(1024)  # follow-up message id → interaction

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, receive: Receiver) -> None:
        """Log in (which syncs the slash commands), then keep the gateway connection in a task.
        A rejected token or an unreachable Discord fails here, as a RuntimeError that says what to do."""
        if not configured(self.settings):
            raise RuntimeError("Discord is not configured: set KAGENTBOT_DISCORD__TOKEN (see docs/discord.md)")
        try:
            await self._log_in()
        except BaseException:
            await self.client.close()  # no half-open HTTP session left behind
            raise
        self._receive = receive
        self._gateway = asyncio.create_task(self.client.connect(reconnect=True), name="discord gateway")
        self._gateway.add_done_callback(self._gateway_ended)

    async def _log_in(self) -> None:
        import aiohttp
        import discord

        try:
            await self.client.login(secret_text(self.settings.discord.token))
        except discord.LoginFailure:
            raise RuntimeError("Discord rejected the bot token: check KAGENTBOT_DISCORD__TOKEN "
                               "(Bot → Reset Token in the developer portal)") from None
        except discord.HTTPException as exc:  # e.g. syncing the slash commands was refused
            raise RuntimeError(f"Discord refused the start-up requests: {exc.status} {exc.text}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise RuntimeError(f"cannot reach Discord's API: {exc}") from exc

    def _gateway_ended(self, task: asyncio.Task) -> None:
        """discord.py reconnects by itself; this runs only when it gave up (a refused intent, a
        token revoked while running). A process that stays up answering nothing would fool a
        supervisor, so the runner is told and exits with an error."""
        reason = _gateway_end(task)
        if reason:
            log.error("discord: %s", reason)
            if self.on_fatal is not None:
                self.on_fatal(f"discord: {reason}")

    async def set_leading(self, leading: bool) -> None:
        """With several replicas, the leader alone syncs the slash commands (each sync counts
        against one shared rate limit): at login when it leads already, else when it takes over."""
        self.client.sync_commands = leading
        if leading and self.client.tree is not None:
            await self.client.sync_tree()

    async def connected(self) -> bool:
        """For /readyz: the gateway session is up (discord.py reconnects by itself meanwhile)."""
        return self._gateway is not None and self.client.is_ready() and not self.client.is_closed()

    async def stop_receiving(self) -> None:
        """Messages are ignored from now on, and a slash command is told to try again rather than
        deferred and never answered."""
        self._receive = None

    async def stop(self) -> None:
        self._receive = None
        await self.client.close()
        if self._gateway is not None:
            self._gateway.cancel()
            await asyncio.gather(self._gateway, return_exceptions=True)
            self._gateway = None

    # -- intake: never awaits the agent -------------------------------------------------------
    def _on_message(self, message: discord.Message) -> None:
        from kagentbot.adapters.discord_client import ANSWERED_TYPES, to_incoming

        bot = self.client.user
        if self._receive is None or bot is None or message.author.bot or message.type not in ANSWERED_TYPES:
            return
        if message.id in self._seen:  # the gateway replays events after a resume
            return
        self._seen[message.id] = None
        incoming = to_incoming(message, bot, self._max_bytes)
        if not (incoming.is_dm or incoming.mentions_bot or self._our_thread(message.channel, bot)):
            return
        self._channels[message.channel.id] = message.channel
        self._receive(self, incoming)

    @staticmethod
    def _our_thread(channel: Any, bot: discord.ClientUser) -> bool:
        """A thread the bot opened for a question: what is said there is a follow-up for it."""
        import discord

        return isinstance(channel, discord.Thread) and channel.owner_id == bot.id

    async def _on_command(self, interaction: discord.Interaction, name: str, args: str, file: discord.Attachment | None) -> None:
        """Defer within Discord's 3 seconds; the reply comes later as a follow-up (`send`)."""
        from kagentbot.adapters.discord_client import command_message

        receive = self._receive
        if receive is None:
            await interaction.response.send_message("I am starting or restarting; please try again in a moment.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=self.settings.discord.ephemeral_commands, thinking=True)
        handle = CommandHandle(str(interaction.id))
        self._interactions[handle.key] = interaction
        text = f"/{name} {args.strip()}".rstrip()
        message = command_message(interaction, text, handle, file, self._max_bytes)
        if self.intake is None:
            receive(self, message)
            return
        try:  # replicas: taken once across them; the deferred reply says so when it cannot be
            await self.intake.take(self, message)
        except IntakeUnavailable:
            self._interactions.pop(handle.key, None)
            await interaction.followup.send(NOT_TAKEN, ephemeral=True)

    # -- output --------------------------------------------------------------------------------
    async def destination(self, message: IncomingMessage) -> Destination:
        if message.command is not None or message.is_dm or message.thread_id:
            return Destination(message.chat_id, message.thread_id, message.message_id, command=message.command)
        if not message.message_id:  # a scheduled question: no message to open a thread on
            return Destination(message.chat_id)
        thread = await self._open_thread(message)
        if thread is None:
            return Destination(message.chat_id, "", message.message_id)
        self._channels[thread.id] = thread
        return Destination(message.chat_id, str(thread.id), message.message_id)

    async def _open_thread(self, message: IncomingMessage) -> discord.Thread | None:
        """A thread on the user's message; None where that is not allowed (reply instead)."""
        import discord

        from kagentbot.adapters.discord_client import thread_name

        channel = await self._channel(int(message.chat_id))
        if not isinstance(channel, discord.TextChannel):
            return None  # voice-channel chat, forum posts and the like take replies
        existing = channel.guild.get_thread(int(message.message_id))  # a message's thread shares its id
        if existing is not None:
            return existing
        try:
            return await channel.get_partial_message(int(message.message_id)).create_thread(
                name=thread_name(message.text), auto_archive_duration=self.settings.discord.thread_archive_minutes,
            )
        except discord.HTTPException as exc:  # Forbidden included: no Create Public Threads permission
            log.info("discord: no thread in #%s (%s %s); replying instead", channel, exc.status, exc.text)
            return None

    async def send(self, where: Destination, text: str) -> SentMessage:
        import discord

        if where.private_to and where.command is None:
            return await self._send_privately(where, text)
        try:
            if where.command is not None:
                return await self._follow_up(where.command, where, text)
            channel = await self._channel(int(where.thread_id or where.chat_id))
            quiet = discord.AllowedMentions.none()  # model text never pings @everyone, roles or users
            if where.thread_id or not where.reply_to:
                sent = await channel.send(text, allowed_mentions=quiet)
            else:
                reference = discord.MessageReference(
                    message_id=int(where.reply_to), channel_id=channel.id, fail_if_not_exists=False)
                sent = await channel.send(text, reference=reference, allowed_mentions=quiet)
        except discord.HTTPException as exc:
            raise _refusal(exc) or exc
        self._sent[str(sent.id)] = sent
        return SentMessage(where.chat_id, str(sent.id), where.thread_id)

    async def typing(self, where: Destination) -> None:
        if where.command is not None:
            return  # a slash command shows "thinking…" already
        channel = await self._channel(int(where.thread_id or where.chat_id))
        await channel.typing()  # awaited, not entered: one indicator, which lasts about 10 s

    async def _send_privately(self, where: Destination, text: str) -> SentMessage:
        """A reply meant for one person, to a command typed after a mention in a channel: sent
        to them directly. If they take no direct messages from server members this is
        Undeliverable, and the Bot posts `private_pointer` instead."""
        import discord

        try:
            dm = await self._dm_channel(int(where.private_to))
        except discord.HTTPException as exc:
            raise _refusal(exc) or exc
        return await self.send(Destination(str(dm.id)), text)

    # what the channel sees in place of a private reply that could not reach its user
    private_pointer = "I have a private reply for you, but you do not accept direct messages: allow them, or use the slash command."

    async def _dm_channel(self, user_id: int) -> Any:
        user = self.client.get_user(user_id) or await self.client.fetch_user(user_id)
        channel = user.dm_channel or await user.create_dm()
        self._channels[channel.id] = channel
        return channel

    async def _follow_up(self, command: CommandHandle, where: Destination, text: str) -> SentMessage:
        import discord

        interaction = self._interactions.get(command.key)
        if interaction is None:  # forgotten long after Discord's 15-minute follow-up window
            raise Undeliverable(f"interaction {command.key} can no longer be answered")
        sent = await interaction.followup.send(text, ephemeral=self.settings.discord.ephemeral_commands, wait=True,
                                               allowed_mentions=discord.AllowedMentions.none())
        self._followups[str(sent.id)] = interaction
        return SentMessage(where.chat_id, str(sent.id), where.thread_id)

    async def edit(self, message: SentMessage, text: str) -> None:
        import discord

        try:
            interaction = self._followups.get(message.message_id)
            if interaction is not None:
                await interaction.followup.edit_message(int(message.message_id), content=text,
                                                        allowed_mentions=discord.AllowedMentions.none())
                return
            target = self._sent.get(message.message_id)
            if target is None:  # fell out of the cache: edit by id
                channel = await self._channel(int(message.thread_id or message.chat_id))
                target = channel.get_partial_message(int(message.message_id))
            self._sent[message.message_id] = await target.edit(content=text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            raise _refusal(exc) or exc

    async def delete(self, message: SentMessage) -> None:
        """Take back one of the bot's own messages (a queue notice once its turn has started)."""
        import discord

        target = self._sent.pop(message.message_id, None)
        if target is None:  # fell out of the cache: delete by id
            channel = await self._channel(int(message.thread_id or message.chat_id))
            target = channel.get_partial_message(int(message.message_id))
        try:
            await target.delete()
        except discord.HTTPException as exc:
            raise _refusal(exc) or exc

    async def _channel(self, channel_id: int) -> Any:
        """The channel or thread object: seen on a message, in discord.py's cache, or fetched."""
        import discord

        channel = self._channels.get(channel_id) or self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.NotFound:  # a user's id, as `kagentbot schedule add --user discord:ID` stores it
                channel = await self._dm_channel(channel_id)
        self._channels[channel_id] = channel
        return channel


def _refusal(exc: discord.HTTPException) -> RateLimited | Undeliverable | None:
    """discord.py waits out rate limits itself; a 429 that still reaches us goes to the Outbox.
    Other 4xx (Forbidden, NotFound, a bad request) are final; 5xx are worth a retry (None)."""
    if exc.status < 500 and exc.status != 429:
        return Undeliverable(f"Discord refused it: {exc.status} {exc.text}")
    if exc.status != 429:
        return None
    headers = getattr(exc.response, "headers", None) or {}
    try:
        return RateLimited(float(headers.get("Retry-After", 1.0)))
    except ValueError:
        return RateLimited(1.0)


def _gateway_end(task: asyncio.Task) -> str:
    """Why the gateway connection ended for good, or "" when it was stopped on purpose."""
    import discord

    if task.cancelled() or task.exception() is None:
        return ""
    error = task.exception()
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return ("Discord refused the Message Content intent. Switch on \"Message Content Intent\" under Bot → "
                "Privileged Gateway Intents in the developer portal (see docs/discord.md), then restart.")
    log.error("discord: the gateway connection ended", exc_info=error)
    return f"the Discord gateway connection ended: {error}"
