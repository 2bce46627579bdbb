"""The one place where the bot picks, at start, between the single-process pieces (files in the
data directory, the scheduler always running) and the shared ones of `cluster.enabled` (Redis,
the scheduler and the platforms' one-per-bot duties run by the elected leader alone). Nothing
here imports Redis unless the cluster setting is on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kagentbot.bot.schedule import ScheduleBook, Scheduler
    from kagentbot.bot.sharing import ShareBook
    from kagentbot.chat.adapter import Adapter
    from kagentbot.cluster.shared import SharedState
    from kagentbot.config.settings import Settings
    from kagentbot.persona.store import PersonaFiles

log = logging.getLogger(__name__)


class SharedStateUnavailable(RuntimeError):
    """`cluster.enabled`, and the shared Redis does not answer at start: nothing starts."""


async def open_shared(settings: Settings) -> SharedState | None:
    """The shared Redis when `cluster.enabled`, else None (one process, files)."""
    if not settings.cluster.enabled:
        return None
    from kagentbot.cluster.redis import ClusterUnavailable
    from kagentbot.cluster.shared import open_shared as open_redis

    try:
        return await open_redis(settings.cluster)
    except ClusterUnavailable as exc:
        raise SharedStateUnavailable(f"cluster.enabled is on, but {str(exc).rstrip('.')}. Check KAGENTBOT_CLUSTER__REDIS_URL "
                                     "and that Redis runs.") from exc


def persona_files(shared: SharedState | None) -> PersonaFiles | None:
    """None: the persona store's own files."""
    if shared is None:
        return None
    from kagentbot.persona.store import PersonaFiles

    return PersonaFiles(shared.folder("personas"), shared.document("persona-selections"), shared.journal("persona-audit"))


def share_book(settings: Settings, shared: SharedState | None) -> ShareBook:
    from kagentbot.bot.sharing import ShareBook

    if shared is None:
        return ShareBook(settings.data_dir)
    return ShareBook(settings.data_dir, shared.document("sharing"), shared.journal("sharing-audit"))


def schedule_book(settings: Settings, shared: SharedState | None) -> ScheduleBook:
    from kagentbot.bot.schedule import JobFile, ScheduleBook, job_file_path

    if shared is None:
        return ScheduleBook(settings)
    return ScheduleBook(settings, JobFile(job_file_path(settings), shared.document("schedules")))


class LeaderDuties:
    """What only one replica does, handed to whichever holds the leader lock: the scheduler
    (scheduled questions and memory upkeep) and each adapter's one-per-bot work (Telegram
    polling, Discord command sync). Every replica keeps a scheduler object for /schedule, which
    changes the shared book; only the leader's times anything, and follows the book's changes
    every `cluster.follow_seconds`."""

    def __init__(self, bot: Any, shared: SharedState) -> None:
        self.bot, self.shared = bot, shared
        self.leadership = shared.leadership(self._lead, self._follow)

    async def start(self) -> None:
        self.bot.services.scheduler = self._scheduler()
        await self.leadership.start()

    async def stop(self) -> None:
        await self.leadership.stop()
        self.bot.services.scheduler = None

    def _scheduler(self) -> Scheduler:
        from kagentbot.bot.schedule import Scheduler

        services = self.bot.services
        return Scheduler(services.settings, self.bot._scheduled, services.memory,
                         book=schedule_book(services.settings, self.shared), claim=self.shared.claim_fire,
                         reload_seconds=services.settings.cluster.follow_seconds)

    async def _lead(self) -> None:
        scheduler = self.bot.services.scheduler
        if scheduler is not None and not scheduler.running:
            await scheduler.start()
        await set_leading(self.bot.adapters, True)

    async def _follow(self) -> None:
        scheduler = self.bot.services.scheduler
        if scheduler is not None:
            scheduler.shutdown()
        await set_leading(self.bot.adapters, False)


async def set_leading(adapters: Sequence[Adapter], leading: bool) -> None:
    """Tell each adapter whether to do its one-per-bot work (most have none: BaseAdapter's
    `set_leading` does nothing). One adapter's failure does not keep the others from being told."""
    for adapter in adapters:
        try:
            await adapter.set_leading(leading)
        except Exception:
            log.exception("%s: could not %s its leader duties", adapter.platform, "take up" if leading else "hand back")
