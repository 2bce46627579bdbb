"""The discord.py side of the Discord adapter: the gateway client, its slash commands, and the
conversion of Discord messages into IncomingMessage. Imported only once Discord is configured,
because importing discord.py costs about a third of a second."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from kagentbot.chat.commands import FileTooLarge
from kagentbot.chat.messages import Attachment, CommandHandle, IncomingMessage

if TYPE_CHECKING:
    from kagentbot.config.settings import DiscordSettings

log = logging.getLogger(__name__)

# Ordinary user messages; joins, pins and "started a thread" notices are not questions.
ANSWERED_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})
THREAD_NAME_LIMIT = 100  # Discord's limit on channel and thread names

MessageHandler = Callable[[discord.Message], None]
CommandHandler = Callable[[discord.Interaction, str, str, "discord.Attachment | None"], Awaitable[None]]


def gateway_intents() -> discord.Intents:
    """Only what the bot reads. Message Content is privileged: it must also be switched on for
    the application in the developer portal, or guild messages arrive with empty text."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = True
    return intents


class GatewayClient(discord.Client):
    """Hands every message to `on_message_in` and every slash command to `on_command`; the
    adapter decides what they mean. The command tree is built at login (`setup_hook`), when the
    application id is known, and synced to Discord then."""

    def __init__(self, commands: Sequence[tuple[str, str]], on_message_in: MessageHandler, on_command: CommandHandler,
                 **sharding: Any) -> None:
        # Answers quote documents and web pages: never let their text ping @everyone, roles or users
        super().__init__(intents=gateway_intents(), allowed_mentions=discord.AllowedMentions.none(), **sharding)
        self._command_specs = tuple(commands)
        self._on_message_in = on_message_in
        self._on_command = on_command
        self.tree: app_commands.CommandTree | None = None
        self.synced: list[str] = []
        self.sync_commands = True  # with several replicas, the leader alone syncs

    async def setup_hook(self) -> None:
        self.tree = app_commands.CommandTree(self)
        for name, summary in self._command_specs:
            self.tree.add_command(self._slash_command(name, summary))
        if self.sync_commands:
            await self.sync_tree()

    async def sync_tree(self) -> None:
        """Register the slash commands with Discord (once logged in: the tree exists)."""
        if self.tree is None:
            return
        synced = await self.tree.sync()
        self.synced = [command.name for command in synced]
        log.info("discord: synced slash commands %s", ", ".join(f"/{n}" for n in self.synced))

    async def on_ready(self) -> None:
        log.info("discord: connected as %s (%s)", self.user, self.user.id if self.user else "?")

    async def on_message(self, message: discord.Message) -> None:
        self._on_message_in(message)

    def _slash_command(self, name: str, summary: str) -> app_commands.Command:
        description = (summary or name)[:100]  # Discord's limit on command descriptions
        callback: Callable[..., Awaitable[None]]
        if name == "kb":
            async def with_file(interaction: discord.Interaction, args: str = "", file: discord.Attachment | None = None) -> None:
                await self._on_command(interaction, name, args, file)

            callback = with_file
        else:
            async def text_only(interaction: discord.Interaction, args: str = "") -> None:
                await self._on_command(interaction, name, args, None)

            callback = text_only
        hints = {"args": _ARG_HINTS.get(name, f"arguments for /{name}")}
        if name == "kb":
            hints["file"] = "a document to add with /kb add"
        callback = app_commands.describe(**hints)(callback)
        return app_commands.Command(name=name, description=description, callback=callback)


class ShardedGatewayClient(GatewayClient, discord.AutoShardedClient):
    """The same client running several of the bot's shards (`discord.shard_ids` of
    `discord.shard_count`), one gateway connection each: replicas split the guilds between them.
    Discord sends every DM to shard 0, so the replica running shard 0 gets the DMs."""


def gateway_client(settings: DiscordSettings, commands: Sequence[tuple[str, str]], on_message_in: MessageHandler,
                   on_command: CommandHandler) -> GatewayClient:
    """One unsharded connection (as a single bot runs), or this replica's shards when
    `discord.shard_count` is set."""
    count = settings.shard_count
    if count is None:
        return GatewayClient(commands, on_message_in, on_command)
    shard_ids = list(settings.shard_ids) or list(range(count))  # none named: every shard in this process
    log.info("discord: running shard(s) %s of %d%s", ", ".join(map(str, shard_ids)), count,
             " (shard 0: direct messages arrive here)" if 0 in shard_ids else "")
    if len(shard_ids) == 1:  # one connection, as discord.Client makes it
        return GatewayClient(commands, on_message_in, on_command, shard_id=shard_ids[0], shard_count=count)
    return ShardedGatewayClient(commands, on_message_in, on_command, shard_ids=shard_ids, shard_count=count)


_ARG_HINTS = {
    "kb": "add URL or text | list | search QUERY | remove ID | share on|off",
    "persona": "list | use NAME | set NAME",
    "schedule": "what to run and when, or list",
    "help": "optional; shows every command",
}


# -- normalising Discord messages --------------------------------------------------------------
def mentions_bot(message: discord.Message, bot: discord.ClientUser) -> bool:
    """A user mention, or the bot's managed role, which Discord's autocomplete sometimes picks."""
    if any(user.id == bot.id for user in message.mentions):
        return True
    own_role = message.guild.self_role if message.guild is not None else None
    return own_role is not None and own_role in message.role_mentions


def strip_mention(text: str, bot_id: int, role_id: int | None = None) -> str:
    pattern = rf"<@!?{bot_id}>" + (rf"|<@&{role_id}>" if role_id else "")
    return re.sub(pattern, " ", text).strip()


def thread_name(question: str) -> str:
    """The first line of the question, shortened to Discord's 100 characters."""
    line = next((part.strip() for part in question.splitlines() if part.strip()), "") or "Question"
    return line if len(line) <= THREAD_NAME_LIMIT else line[: THREAD_NAME_LIMIT - 1].rstrip() + "…"


def attachment_of(item: discord.Attachment, max_bytes: int) -> Attachment:
    """Downloaded only when a command asks for it, and never past the upload limit."""

    async def fetch() -> bytes:
        _refuse_large(item.filename, item.size, max_bytes)
        data = await item.read()
        _refuse_large(item.filename, len(data), max_bytes)  # the size Discord reported may be 0
        return data

    return Attachment(item.filename, item.size, item.content_type or "", fetch)


def _refuse_large(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise FileTooLarge(
            f"{name} is {_size(size)}, over the {_size(max_bytes)} limit for uploads (setting "
            "memory.max_upload_mb). Split the document or share a link to it instead."
        )


def _size(count: int) -> str:
    return f"{count / 1_048_576:.1f} MB" if count >= 1_048_576 else f"{count / 1024:.1f} KB"


def chat_of(channel: discord.abc.Snowflake) -> tuple[str, str]:
    """(chat id, thread id) of a channel. A public thread continues its channel's conversation;
    a private thread has members of its own, so it is a chat of its own and never shares memory
    with its parent."""
    if not isinstance(channel, discord.Thread):
        return str(channel.id), ""
    if channel.type == discord.ChannelType.private_thread:
        return str(channel.id), str(channel.id)
    return str(channel.parent_id), str(channel.id)


def to_incoming(message: discord.Message, bot: discord.ClientUser, max_bytes: int) -> IncomingMessage:
    chat_id, thread_id = chat_of(message.channel)
    own_role = message.guild.self_role if message.guild is not None else None
    return IncomingMessage(
        platform="discord",
        chat_id=chat_id,
        user_id=str(message.author.id),
        text=strip_mention(message.content, bot.id, own_role.id if own_role else None),
        message_id=str(message.id),
        thread_id=thread_id,
        user_name=message.author.display_name,
        attachments=tuple(attachment_of(item, max_bytes) for item in message.attachments),
        is_dm=message.guild is None,
        mentions_bot=mentions_bot(message, bot),
    )


def command_message(interaction: discord.Interaction, text: str, handle: CommandHandle,
                    file: discord.Attachment | None, max_bytes: int) -> IncomingMessage:
    """A slash command as the text command the router knows: `/kb add` with the file attached."""
    channel = interaction.channel
    chat_id, thread_id = chat_of(channel) if channel is not None else (str(interaction.channel_id), "")
    return IncomingMessage(
        platform="discord",
        chat_id=chat_id,
        user_id=str(interaction.user.id),
        text=text,
        command=handle,
        thread_id=thread_id,
        user_name=interaction.user.display_name,
        attachments=(attachment_of(file, max_bytes),) if file is not None else (),
        is_dm=interaction.guild_id is None,
        mentions_bot=True,
    )
