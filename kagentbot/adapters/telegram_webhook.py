"""Telegram's webhook when replicas share the work: python-telegram-bot's own server answers 200
as soon as an update is queued, before anything is stored. This one answers only once the
adapter has taken the update (stored it, or found it taken already); when it could not, it
answers 500, and Telegram delivers the update again."""

from __future__ import annotations

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
        try:
            await self.take(update)
        except IntakeUnavailable:
            return web.Response(status=500, text="not stored; deliver it again")
        except Exception:  # our fault: a retry of the same update would fail the same way
            log.exception("telegram: handling update %s failed", update.update_id if update else "?")
        return web.Response()
