"""Telegram's updates when replicas share the work, confirmed to Telegram only once stored.

python-telegram-bot's webhook server answers 200 as soon as an update is queued, and its updater
confirms a batch of polled updates with the next getUpdates before they are handled: either way
an update is gone from Telegram before it is stored. Here:
- `StoredFirstWebhook` answers 200 only once the adapter has taken the update (stored it, or
  found it taken already); when it could not, it answers 500, and Telegram delivers it again;
- `StoredFirstPolling` (the leader's) asks getUpdates for the updates after the last one stored;
  one that could not be stored is asked for again, and so is every later one."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kagentbot.chat.intake import IntakeUnavailable
from kagentbot.config.settings import TelegramSettings

if TYPE_CHECKING:
    from telegram import Bot, Update

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
POLL_SECONDS = 10  # getUpdates' long poll
RETRY_SECONDS = 1.0


class StoredFirstWebhook:
    """Lifecycle: `start()` (serve, then setWebhook) → `stop()`."""

    def __init__(self, settings: TelegramSettings, bot: Bot, secret: str, take: Callable[[Update], Awaitable[None]]) -> None:
        self.settings = settings
        self.bot = bot
        self.secret = secret
        self.take = take
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.add_routes([web.post("/" + urlsplit(self.settings.webhook_url).path.lstrip("/"), self._post)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.settings.listen, self.settings.port).start()
        except OSError as exc:
            await self.stop()
            raise RuntimeError(f"cannot listen on {self.settings.listen}:{self.settings.port} for the Telegram webhook "
                               f"({exc.strerror}): set KAGENTBOT_TELEGRAM__PORT to a free port") from None
        await self.bot.set_webhook(self.settings.webhook_url, secret_token=self.secret, allowed_updates=["message"])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def _post(self, request: Any) -> Any:
        from aiohttp import web
        from telegram import Update

        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), self.secret):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.bot)
        except (ValueError, TypeError, KeyError):  # not JSON, or not an update: retrying cannot help
            return web.Response(status=400, text="not a Telegram update")
        if not await stored(self.take, update):
            return web.Response(status=500, text="not stored; deliver it again")
        return web.Response()


class StoredFirstPolling:
    """Lifecycle: `start()` (deleteWebhook, then poll in a task) → `stop()`.

    Telegram confirms updates by the offset of the next getUpdates: the offset here moves past an
    update only once `take` has stored it (or found it taken). A new leader starts without an
    offset, so Telegram sends again what the last one took but never confirmed; the intake's
    dedupe drops those it had stored."""

    def __init__(self, bot: Bot, take: Callable[[Update], Awaitable[None]], *, wait: int = POLL_SECONDS,
                 retry: float = RETRY_SECONDS) -> None:
        self.bot = bot
        self.take = take
        self.wait = wait  # getUpdates' long-poll timeout
        self.retry = retry  # pause after a failed call or an update not stored
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bot.delete_webhook()  # getUpdates is refused while a webhook is set
        self._task = asyncio.create_task(self._poll(), name="telegram polling")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _poll(self) -> None:
        from telegram.error import TelegramError

        offset: int | None = None
        while True:
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=self.wait, allowed_updates=["message"],
                                                     read_timeout=self.wait + 10)
            except TelegramError as exc:
                log.warning("telegram: getUpdates failed (%s); asking again in %.0f s", exc, self.retry)
                await asyncio.sleep(self.retry)
                continue
            for update in updates:
                if not await stored(self.take, update):
                    log.error("telegram: update %s not stored (shared state unreachable): left with Telegram for now",
                              update.update_id)
                    await asyncio.sleep(self.retry)
                    break
                offset = update.update_id + 1


async def stored(take: Callable[[Update], Awaitable[None]], update: Update) -> bool:
    """Hand the update to `take`; False when it could not be stored (Telegram must keep it and
    deliver it again). An update our own code fails on counts as taken: delivering it again would
    fail the same way."""
    try:
        await take(update)
    except IntakeUnavailable:
        return False
    except Exception:
        log.exception("telegram: handling update %s failed", update.update_id if update else "?")
    return True
