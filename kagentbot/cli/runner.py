"""`kagentbot run`: start every platform that has credentials, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys

from kagentbot.bot.app import Bot, default_router
from kagentbot.bot.services import Services
from kagentbot.chat.adapter import Adapter
from kagentbot.chat.commands import CommandRouter
from kagentbot.config.redact import redact_url
from kagentbot.config.settings import Settings
from kagentbot.ops import metrics
from kagentbot.ops.server import ops_endpoint

log = logging.getLogger(__name__)

# platform name → module with configured(settings) and create(settings, router) -> Adapter
PLATFORMS = {
    "slack": "kagentbot.adapters.slack_adapter",
    "telegram": "kagentbot.adapters.telegram_adapter",
    "discord": "kagentbot.adapters.discord_adapter",
}

NOTHING_CONFIGURED = (
    "kagentbot: no chat platform is configured, so there is nothing to run.\n"
    "Set the credentials of at least one platform, e.g.\n"
    "  KAGENTBOT_SLACK__BOT_TOKEN=xoxb-...  and  KAGENTBOT_SLACK__APP_TOKEN=xapp-...\n"
    "  KAGENTBOT_TELEGRAM__TOKEN=123456:ABC...\n"
    "  KAGENTBOT_DISCORD__TOKEN=...\n"
    "(see the README, section 'Connect a chat platform'), or talk to the bot in the terminal\n"
    "with `kagentbot chat`. `kagentbot doctor` checks the whole setup."
)


def configured_adapters(settings: Settings, router: CommandRouter) -> list[Adapter]:
    adapters = []
    for module_name in PLATFORMS.values():
        module = importlib.import_module(module_name)
        if module.configured(settings):
            adapters.append(module.create(settings, router))
    return adapters


async def run_bot(settings: Settings, stop: asyncio.Event | None = None) -> int:
    router = default_router()
    adapters = configured_adapters(settings, router)
    if not adapters:
        print(NOTHING_CONFIGURED, file=sys.stderr)
        return 2
    stop = stop or _stop_on_signals()
    failures: list[str] = []

    def fail(reason: str) -> None:  # an adapter that can no longer work ends the process
        failures.append(reason)
        stop.set()

    for adapter in adapters:
        adapter.on_fatal = fail
    if settings.ops.port and settings.ops.metrics:
        metrics.enable()  # before the services open, so that their LLM client is counted
    services = await Services.open(settings)
    services.memory.warm()
    bot = Bot(services, adapters, router)
    ops = ops_endpoint(settings, services, adapters)
    try:
        await ops.start()  # first: a supervisor sees the process alive while platforms connect
        await bot.start()
        ops.running()
        print(f"kagentbot is running on {', '.join(a.platform for a in adapters)} with "
              f"{settings.llm.model} at {redact_url(settings.llm.host)}. Ctrl-C stops it.", file=sys.stderr)
        await _warn_if_llm_missing(settings)
        await stop.wait()
    except RuntimeError as exc:  # adapters raise these for a rejected token or an unreachable API
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 1
    finally:
        ops.stopping()
        await bot.stop()
        await ops.stop()
        metrics.disable()
    for reason in failures:
        print(f"kagentbot: {reason}", file=sys.stderr)
    return 1 if failures else 0


async def _warn_if_llm_missing(settings: Settings) -> None:
    """The bot keeps running without its model (each question then gets a clear error, and the
    server may come up later), but whoever started it should hear about it now."""
    from kagentbot.cli.doctor import check_llm

    for finding in await check_llm(settings):
        if finding.level == "fail":
            print(f"kagentbot: warning: {finding.message}" + (f" ({finding.fix})" if finding.fix else ""), file=sys.stderr)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
