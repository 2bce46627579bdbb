"""How a platform event reaches the bot when several replicas share the work: taken once across
replicas (redeliveries dropped) and stored before the adapter acknowledges it to the platform.
One process needs none of it: adapters then hand messages to the bot's `receive` as always."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kagentbot.chat.adapter import Adapter
    from kagentbot.chat.messages import IncomingMessage


class IntakeUnavailable(Exception):
    """The event could not be stored (the shared store is down): the adapter must not acknowledge
    it, so that the platform delivers it again."""


class TurnDeferred(Exception):
    """Replicas: while this turn waited to start, an earlier message of its conversation arrived;
    the turn gives way, unseen (nothing was posted yet), and runs again right after it."""


class Intake(Protocol):
    async def take(self, adapter: Adapter, message: IncomingMessage) -> bool:
        """Stored (or, for a command, handled) once across replicas: True; False when another
        delivery of the same event was taken already. Raises IntakeUnavailable."""


def event_id(message: IncomingMessage) -> str:
    """The platform's own id of the event a message came in, the same on every redelivery: the
    message's id in its chat (Slack channel+ts, Telegram and Discord message ids), or a command's
    handle (Slack trigger_id, Discord interaction id). "" for what no platform sent (scheduled)."""
    if message.command is not None:
        return f"command:{message.command.key}"
    if message.message_id:
        return f"{message.chat_id}:{message.message_id}"
    return ""
