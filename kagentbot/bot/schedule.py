"""Scheduled questions and upkeep: readable `<when>` phrases or cron, a JSON job file in the data
directory, and an APScheduler 3 AsyncIOScheduler running in the bot's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kagentbot.config.files import Document, FileDocument
from kagentbot.ops import metrics

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings
    from kagentbot.memory.contracts import Memory

log = logging.getLogger(__name__)

ACCEPTED = (
    "Accepted forms: a cron expression in quotes (\"30 8 * * 1-5\"), "
    "\"every day at 08:30\", \"every weekday at 9:00\", \"every monday at 10:00\", "
    "\"every 30 minutes\", \"every 2 hours\", \"at 2026-12-24 18:00\"."
)
# How far any search for a cron line's next time looks. APScheduler searches up to the year 9999
# for a line that can never fire (30 February), which takes the better part of a second; nothing
# real waits a century (29 February on a Monday recurs within 40 years).
HORIZON = timedelta(days=366 * 100)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = r"(\d{1,2}):(\d{2})"
_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("day", re.compile(rf"every day at {_TIME}", re.I)),
    ("weekday", re.compile(rf"every weekday at {_TIME}", re.I)),
    ("dow", re.compile(rf"every ({'|'.join(DAYS)}) at {_TIME}", re.I)),
    ("minutes", re.compile(r"every (\d+) minutes?", re.I)),
    ("hours", re.compile(r"every (\d+) hours?", re.I)),
    ("at", re.compile(rf"at (\d{{4}}-\d{{2}}-\d{{2}}) {_TIME}", re.I)),
)


class ScheduleError(ValueError):
    """Bad input or a refused request; the message says what to do."""


@dataclass(frozen=True)
class JobSpec:
    id: str
    owner: str  # user key, "slack:U1"
    platform: str
    chat_id: str
    thread_id: str
    is_dm: bool
    question: str
    when: str
    timezone: str
    paused: bool = False
    created: str = ""  # ISO time
    last_run: str = ""  # ISO time of the last firing ("" never)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin.") from exc


def parse_when(when: str, tz: str, start: datetime | None = None) -> Any:
    """The APScheduler trigger for `when` in zone `tz` (intervals count from `start`, default now).
    Raises ScheduleError listing the accepted forms. Every search for a cron trigger's next time
    ends at HORIZON past `start`."""
    trigger = _parse(when, zone(tz), start)
    if is_cron(trigger):
        trigger.end_date = (start or datetime.now(timezone.utc)).astimezone(trigger.timezone) + HORIZON
    return trigger


def is_cron(trigger: Any) -> bool:
    from apscheduler.triggers.cron import CronTrigger

    return isinstance(trigger, CronTrigger)


def _parse(when: str, tzinfo: ZoneInfo, start: datetime | None) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    text = " ".join(when.split())
    for kind, pattern in _PHRASES:
        match = pattern.fullmatch(text)
        if not match:
            continue
        g = match.groups()
        try:
            if kind == "day":
                return CronTrigger(hour=int(g[0]), minute=int(g[1]), timezone=tzinfo)
            if kind == "weekday":
                return CronTrigger(day_of_week="mon-fri", hour=int(g[0]), minute=int(g[1]), timezone=tzinfo)
            if kind == "dow":
                return CronTrigger(day_of_week=g[0].lower()[:3], hour=int(g[1]), minute=int(g[2]), timezone=tzinfo)
            if kind in ("minutes", "hours"):
                if int(g[0]) < 1:
                    raise ValueError("interval must be positive")
                return IntervalTrigger(**{kind: int(g[0])}, start_date=start, timezone=tzinfo)
            at = datetime.strptime(f"{g[0]} {g[1]}:{g[2]}", "%Y-%m-%d %H:%M").replace(tzinfo=tzinfo)
            return DateTrigger(run_date=at, timezone=tzinfo)
        except ValueError as exc:
            raise ScheduleError(f"{when!r} is not a valid time ({exc}). {ACCEPTED}") from exc
    if len(text.split(" ")) == 5:
        try:
            return CronTrigger.from_crontab(cron_weekdays(text), timezone=tzinfo)
        except ValueError as exc:
            raise ScheduleError(f"{when!r} is not a valid cron expression ({exc}). {ACCEPTED}") from exc
    raise ScheduleError(f"I don't understand the time {when!r}. {ACCEPTED}")


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_weekdays(expression: str) -> str:
    """Cron numbers weekdays from Sunday=0 (or 7); APScheduler 3 from Monday=0. Names mean the
    same to both, so numeric weekdays become names."""
    fields = expression.split(" ")

    def name(number: str) -> str:
        return _CRON_DAYS[int(number)] if number.isdigit() and int(number) < 8 else number

    def part(item: str) -> str:
        span, _, step = item.partition("/")
        low, dash, high = span.partition("-")
        if dash and low == "0" and high.isdigit() and int(high) >= 1:
            # "0-5" would become the backwards range sun-fri: split off Sunday.
            return "sun," + part(f"1-{high}" + (f"/{step}" if step else ""))
        converted = name(low) + (f"-{name(high)}" if dash else "")
        return converted + (f"/{step}" if step else "")

    fields[4] = ",".join(part(item) for item in fields[4].split(","))
    return " ".join(fields)


def split_when(text: str) -> tuple[str, str]:
    """Split `<when> <question>`: a quoted cron expression, or the longest phrase at the start."""
    text = text.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0:
            raise ScheduleError(f"The quoted time has no closing quote. {ACCEPTED}")
        return text[1:end].strip(), text[end + 1 :].strip()
    best = ""
    for _, pattern in _PHRASES:
        match = pattern.match(text)
        if match and len(match.group(0)) > len(best) and (len(text) == match.end() or text[match.end()].isspace()):
            best = match.group(0)
    if not best:
        raise ScheduleError(f"Start with when to ask. {ACCEPTED}")
    return best, text[len(best) :].strip()


def next_runs(trigger: Any, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`."""
    runs: list[datetime] = []
    previous = None
    now = after + timedelta(microseconds=1)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        runs.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return runs


def check_interval(trigger: Any, min_minutes: int, now: datetime) -> None:
    """Refuse triggers that would fire more often than every `min_minutes`."""
    runs = next_runs(trigger, now, 50)
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    if gaps and min(gaps) < timedelta(minutes=min_minutes):
        raise ScheduleError(f"That fires more often than every {min_minutes} minutes, the allowed minimum.")


# ----- persistence ---------------------------------------------------------------------------------


class JobFile:
    """Job definitions and per-user time zones in one JSON file, replaced atomically on each
    write. The CLI and a running bot both change it: every change re-reads the file under an
    exclusive lock first (`changing`), so neither loses the other's jobs. `document`: where the
    JSON is kept when not in the file at `path` (shared by several replicas)."""

    def __init__(self, path: Path, document: Document | None = None) -> None:
        self.path = path
        self.document = document or FileDocument(path, path.with_name(".schedules.lock"))
        self.jobs: dict[str, JobSpec] = {}
        self.timezones: dict[str, str] = {}
        self._seen: object = None  # the document's stamp when last read or written
        self._outside = False  # another process changed the file since the last refresh
        self.load()

    def load(self) -> None:
        text = self.document.read()
        if text is None:
            return
        data = json.loads(text)
        self.jobs = {j["id"]: JobSpec(**j) for j in data.get("jobs", [])}
        self.timezones = dict(data.get("timezones", {}))
        self._seen = self._stamp()

    def refresh(self) -> bool:
        """Re-read the file if another process changed it; True when one did since the last
        refresh (also when a change of ours was what read it in)."""
        if self._stamp() != self._seen:
            self.load()
            self._outside = True
        outside, self._outside = self._outside, False
        return outside

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Read the latest file, let the caller change `jobs` / `timezones`, write it back."""
        with self.document.holding():
            if self._stamp() != self._seen:
                self._outside = True
            self.load()
            yield
            self.save()

    def save(self) -> None:
        data = {"jobs": [asdict(j) for j in self.jobs.values()], "timezones": self.timezones}
        self.document.write(json.dumps(data, indent=1))
        self._seen = self._stamp()

    def _stamp(self) -> object:
        return self.document.stamp()


def job_file_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "schedules.json"


# ----- the schedule book: rules shared by chat and CLI -------------------------------------------


class ScheduleBook:
    """Adds, lists and changes jobs under the limits and ownership rules; knows nothing of timing."""

    def __init__(self, settings: Settings, file: JobFile | None = None) -> None:
        self.settings = settings
        self.file = file or JobFile(job_file_path(settings))

    def timezone_for(self, owner: str) -> str:
        return self.file.timezones.get(owner, self.settings.scheduler.timezone)

    def set_timezone(self, owner: str, name: str) -> str:
        zone(name)
        with self.file.changing():
            self.file.timezones[owner] = name
        return name

    def add(self, owner: str, platform: str, chat_id: str, when: str, question: str, *,
            thread_id: str = "", is_dm: bool = False, now: datetime | None = None) -> JobSpec:
        if not question.strip():
            raise ScheduleError("Add the question to ask after the time.")
        limits = self.settings.scheduler
        if len(self.owned_by(owner)) >= limits.max_jobs_per_user:
            raise ScheduleError(f"You already have {limits.max_jobs_per_user} scheduled questions, the limit; remove one first.")
        tz = self.timezone_for(owner)
        now = now or datetime.now(timezone.utc)
        trigger = parse_when(when, tz, now)
        upcoming = next_runs(trigger, now, 1)
        if not upcoming and is_cron(trigger):
            raise ScheduleError(f"{when!r} never fires: no such date comes (like 30 February or 31 April). "
                                f"Check the day and month. {ACCEPTED}")
        if not upcoming or upcoming[0] <= now:
            raise ScheduleError("That time is in the past.")
        check_interval(trigger, limits.min_interval_minutes, now)
        spec = JobSpec(uuid.uuid4().hex[:8], owner, platform, chat_id, thread_id, is_dm, question.strip(),
                       when, tz, created=now.isoformat())
        with self.file.changing():
            if len(self.owned_by(owner)) >= limits.max_jobs_per_user:  # counted again on the latest file
                raise ScheduleError(f"You already have {limits.max_jobs_per_user} scheduled questions, the limit; remove one first.")
            self.file.jobs[spec.id] = spec
        return spec

    def owned_by(self, owner: str) -> list[JobSpec]:
        return [j for j in self.file.jobs.values() if j.owner == owner]

    def visible(self, owner: str, is_admin: bool) -> list[JobSpec]:
        return list(self.file.jobs.values()) if is_admin else self.owned_by(owner)

    def get(self, job_id: str, owner: str, is_admin: bool) -> JobSpec:
        spec = self.file.jobs.get(job_id)
        # Someone else's job reads as missing: ids of others' jobs are not theirs to learn.
        if spec is None or (spec.owner != owner and not is_admin):
            raise ScheduleError(f"No scheduled question {job_id} of yours.")
        return spec

    def remove(self, job_id: str, owner: str, is_admin: bool) -> JobSpec:
        with self.file.changing():
            spec = self.get(job_id, owner, is_admin)
            del self.file.jobs[job_id]
        return spec

    def set_paused(self, job_id: str, owner: str, is_admin: bool, paused: bool) -> JobSpec:
        with self.file.changing():
            spec = replace(self.get(job_id, owner, is_admin), paused=paused)
            self.file.jobs[job_id] = spec
        return spec

    def move_chat(self, platform: str, old_chat: str, new_chat: str) -> int:
        """Jobs that post in a chat follow it to its new id; returns how many moved."""
        with self.file.changing():
            moving = [j for j in self.file.jobs.values() if j.platform == platform and j.chat_id == old_chat]
            for spec in moving:
                self.file.jobs[spec.id] = replace(spec, chat_id=new_chat)
        return len(moving)

    def mark_run(self, job_id: str, at: datetime) -> None:
        with self.file.changing():
            spec = self.file.jobs.get(job_id)
            if spec is not None:
                self.file.jobs[job_id] = replace(spec, last_run=at.isoformat())

    def next_run(self, spec: JobSpec, now: datetime | None = None) -> datetime | None:
        if spec.paused:
            return None
        now = now or datetime.now(timezone.utc)
        runs = next_runs(trigger_of(spec), now, 1)
        return runs[0] if runs else None

    def missed(self, now: datetime) -> list[JobSpec]:
        """Jobs whose time passed while the bot was down, within the grace period: each once."""
        return [spec for spec, _ in self.missed_runs(now)]

    def missed_runs(self, now: datetime) -> list[tuple[JobSpec, datetime]]:
        """`missed`, each with the time it was due (the first missed time within the grace)."""
        grace = timedelta(seconds=self.settings.scheduler.misfire_grace_seconds)
        due = []
        for spec in self.file.jobs.values():
            if spec.paused:
                continue
            since = datetime.fromisoformat(spec.last_run or spec.created)
            # Coalesce: however many times were missed, one run, and only if one fell within the grace.
            runs = next_runs(trigger_of(spec), max(since, now - grace - timedelta(microseconds=1)), 1)
            if runs and runs[0] <= now:
                due.append((spec, runs[0]))
        return due


def trigger_of(spec: JobSpec) -> Any:
    return parse_when(spec.when, spec.timezone, datetime.fromisoformat(spec.created) if spec.created else None)


def describe(spec: JobSpec, next_run: datetime | None) -> str:
    when = next_run.astimezone(zone(spec.timezone)).strftime("%Y-%m-%d %H:%M %Z") if next_run else "—"
    state = " (paused)" if spec.paused else ""
    return f"{spec.id} · {spec.when} · {spec.timezone} · next {when}{state} · {spec.owner} in {spec.chat_id}: {spec.question}"


# ----- the running scheduler ----------------------------------------------------------------------

Fire = Callable[[JobSpec], Awaitable[None]]
# (job id, the time it was due) → whether this process may run that fire: False when another
# process already took it (several replicas, or a leader handing over)
Claim = Callable[[str, datetime], Awaitable[bool]]
# the time APScheduler meant a job to run at, seen by the job it runs
UPKEEP_AT = (3, 17)  # local time (scheduler.timezone) of the nightly memory upkeep
_SCHEDULED_AT: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("scheduled_at", default=None)


def _executor() -> Any:
    """APScheduler's asyncio executor, telling each job the time it was scheduled for (a late
    or missed fire runs later than that, and is still the same fire)."""
    from apscheduler.executors.asyncio import AsyncIOExecutor

    class ScheduledTimeExecutor(AsyncIOExecutor):
        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            token = _SCHEDULED_AT.set(run_times[-1])  # the job's task copies the context now
            try:
                super()._do_submit_job(job, run_times)
            finally:
                _SCHEDULED_AT.reset(token)

    return ScheduledTimeExecutor()


class Scheduler:
    """Owned by the Bot: loads the job file at start, runs missed jobs once, then fires on time.
    `book`: where the jobs are kept (default the job file); `claim`: asked before each fire;
    `reload_seconds`: how often changes made elsewhere are picked up (default the setting).
    Before `start` (and after `shutdown`) it changes the book but times nothing."""

    def __init__(self, settings: Settings, fire: Fire, memory: Memory | None = None, *, book: ScheduleBook | None = None,
                 claim: Claim | None = None, reload_seconds: float | None = None) -> None:
        self.settings = settings
        self.book = book or ScheduleBook(settings)
        self._fire = fire
        self._memory = memory
        self._claim = claim
        self._reload_seconds = reload_seconds or settings.scheduler.reload_seconds
        self._aps: Any = None

    @property
    def running(self) -> bool:
        return self._aps is not None

    async def start(self, now: datetime | None = None) -> list[JobSpec]:
        """Start timing; returns the missed jobs it ran once."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.book.file.refresh()  # changed elsewhere since this object was made
        self._aps = AsyncIOScheduler(timezone=zone(self.settings.scheduler.timezone), executors={"default": _executor()})
        self._aps.start()
        for spec in self.book.file.jobs.values():
            self._plan(spec)
        now = now or datetime.now(timezone.utc)
        self._plan_upkeep(now)
        self._aps.add_job(self.sync, "interval", seconds=self._reload_seconds, id="reload",
                          coalesce=True, max_instances=1)
        missed = self.book.missed_runs(now)
        for spec, due in missed:
            await self.run_job(spec.id, due)
        return [spec for spec, _ in missed]

    def shutdown(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None

    def _plan(self, spec: JobSpec) -> None:
        if self._aps is None:
            return
        if self._aps.get_job(spec.id):
            self._aps.remove_job(spec.id)
        if spec.paused:
            return
        self._aps.add_job(self.run_job, trigger_of(spec), args=[spec.id], id=spec.id,
                          coalesce=True, max_instances=1,
                          misfire_grace_time=self.settings.scheduler.misfire_grace_seconds)

    def _plan_upkeep(self, now: datetime) -> None:
        """Nightly at UPKEEP_AT. With replicas (a claim given), each night's upkeep is claimed
        once, and a scheduler that starts (a new leader) runs last night's if nobody claimed it:
        a leader handover at that minute neither runs it twice nor skips it."""
        if self._memory is None:
            return
        from apscheduler.triggers.cron import CronTrigger

        hour, minute = UPKEEP_AT
        self._aps.add_job(self._claimed_upkeep, CronTrigger(hour=hour, minute=minute, timezone=zone(self.settings.scheduler.timezone)),
                          id="upkeep", coalesce=True, max_instances=1,
                          misfire_grace_time=self.settings.scheduler.misfire_grace_seconds)
        if self._claim is not None:
            self._aps.add_job(self._claimed_upkeep, args=[self._last_upkeep(now)], id="upkeep-catch-up")

    def _last_upkeep(self, now: datetime) -> datetime:
        """When the nightly upkeep was last due, at or before `now`."""
        local = now.astimezone(zone(self.settings.scheduler.timezone))
        hour, minute = UPKEEP_AT
        due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return due if due <= local else due - timedelta(days=1)

    async def _claimed_upkeep(self, due: datetime | None = None) -> None:
        due = due or _SCHEDULED_AT.get() or datetime.now(timezone.utc)
        if self._claim is not None and not await self._claim("upkeep", due):
            return  # run by another replica, or by the leader before this one
        await self.upkeep()

    def sync(self) -> bool:
        """Follow changes another process (`kagentbot schedule ...`) made to the job file; True
        when there were any. Runs every scheduler.reload_seconds and before each job."""
        if not self.book.file.refresh():
            return False
        self._replan()
        return True

    def _replan(self) -> None:
        if self._aps is None:
            return
        planned = {job.id for job in self._aps.get_jobs()} - {"upkeep", "upkeep-catch-up", "reload"}
        for job_id in planned - self.book.file.jobs.keys():
            self._aps.remove_job(job_id)
        for spec in self.book.file.jobs.values():
            self._plan(spec)

    async def run_job(self, job_id: str, due: datetime | None = None) -> None:
        self.sync()  # removed or paused from the CLI a moment ago: don't run it
        spec = self.book.file.jobs.get(job_id)
        if spec is None or spec.paused:
            return
        due = due or _SCHEDULED_AT.get() or datetime.now(timezone.utc)
        if self._claim is not None and not await self._claim(job_id, due):
            log.info("scheduled question %s due at %s was already run elsewhere", job_id, due.isoformat())
            return
        self.book.mark_run(job_id, datetime.now(timezone.utc))
        log.info("running scheduled question %s for %s", job_id, spec.owner)
        try:
            await self._fire(spec)
        except Exception:
            metrics.scheduled_run("failed")
            log.exception("scheduled question %s failed", job_id)
        else:
            metrics.scheduled_run("started")

    async def upkeep(self) -> dict[str, Any]:
        if self._memory is None:
            return {}  # no store to keep up (upkeep is then never planned)
        return await run_upkeep(self._memory, self.settings)

    # chat-facing changes keep the timing in step with the file (which they re-read: the CLI's
    # changes made since come along)
    def add(self, *args: Any, **kw: Any) -> JobSpec:
        spec = self.book.add(*args, **kw)
        self._replan()
        return spec

    async def add_off_loop(self, *args: Any, **kw: Any) -> JobSpec:
        """`add` for chat commands: parsing (a search through the calendar) and the wait for the
        job file's lock run in a worker thread, so the bot keeps answering everyone meanwhile."""
        spec = await asyncio.to_thread(self.book.add, *args, **kw)
        self._replan()
        return spec

    def remove(self, job_id: str, owner: str, is_admin: bool) -> JobSpec:
        spec = self.book.remove(job_id, owner, is_admin)
        self._replan()
        return spec

    def set_paused(self, job_id: str, owner: str, is_admin: bool, paused: bool) -> JobSpec:
        spec = self.book.set_paused(job_id, owner, is_admin, paused)
        self._replan()
        return spec

    def move_chat(self, platform: str, old_chat: str, new_chat: str) -> int:
        moved = self.book.move_chat(platform, old_chat, new_chat)
        self._replan()
        return moved


async def run_upkeep(memory: Memory, settings: Settings) -> dict[str, Any]:
    """Compaction and index upkeep, then retention pruning; logs and returns what it did."""
    report: dict[str, Any] = dict(await memory.optimize())
    report["conversation_pruned"] = await memory.prune_conversation(settings.memory.conversation_retention_days)
    report["tasks_pruned"] = await memory.prune_tasks(settings.memory.task_retention_days)
    log.info("memory upkeep: %s", report)
    return report
