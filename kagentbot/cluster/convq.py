"""Conversations shared by replicas: each conversation's waiting events in Redis, in platform
order, worked through by whichever replica holds its lease.

- An event is taken once: its platform id is set-if-absent with expiry (`cluster.dedupe_hours`)
  in the same script that stores it, so a redelivery to any replica is dropped, and nothing is
  marked seen that was not stored. The adapter acknowledges the platform only after that.
- `conversation:{key}` is a sorted set (score: the platform's order) of serialized events;
  `waiting` names the conversations with events in it; `lease:{key}` holds the name of the
  replica working through it (SET NX PX, renewed while it works, compared in a script before
  every post and edit of a turn; a replica that lost it stops posting).
- A replica takes a conversation when an event it stored finds no lease (in the same script
  that stores it), and every `cluster.poll_seconds` for any waiting conversation without a live
  lease (a dead replica's).
- The head event stays in the set until its turn is finished; `progress:{key}` records which
  messages the turn posted. A replica that picks up an interrupted turn runs it again, editing
  those messages in order instead of posting new ones."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields

from redis.exceptions import RedisError

from kagentbot.chat.adapter import Adapter, Destination, Receiver, SentMessage
from kagentbot.chat.commands import CommandRouter
from kagentbot.chat.intake import IntakeUnavailable, TurnDeferred, event_id
from kagentbot.chat.messages import Attachment, CommandHandle, IncomingMessage
from kagentbot.chat.render import DeliveryFailed, Outbox
from kagentbot.cluster.lag import ClusterLag
from kagentbot.cluster.redis import ClusterUnavailable, Keys, cancel_requested, connect, ping, replica_name
from kagentbot.config.settings import ClusterSettings

log = logging.getLogger(__name__)
Unreachable = (RedisError, OSError)
RECHECK_AFTER = 0.05  # seconds a turn waited to start after which the head is read again

# KEYS: seen, conversation, waiting, asked (the asker's questions waiting or under way, anywhere),
# lease. ARGV: dedupe?, replica, seconds, score, entry, conversation key, most waiting, most asked
# (-1: any), entry id, lease ms. 2: stored, and the conversation's lease taken for this replica
# (nobody held it); 1: stored; 0: taken already; -1: refused, the conversation has too many
# waiting; -2: refused, the asker has too many questions waiting or under way (the user is told
# either way)
_TAKE = """
if ARGV[1] == '1' and not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400)
local cap = tonumber(ARGV[8])
if cap >= 0 and redis.call('ZCARD', KEYS[4]) >= cap then return -2 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('ZADD', KEYS[4], now, ARGV[9])
redis.call('EXPIRE', KEYS[4], 86400)
if redis.call('SET', KEYS[5], ARGV[2], 'NX', 'PX', ARGV[10]) then return 2 end
return 1
"""
# KEYS: lease. ARGV: replica, milliseconds. 1: the lease is this replica's now (it was free, or
# this replica's already: taken when an event was stored here); 0: another replica holds it
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: lease, progress. ARGV: replica, entry id, fresh progress, seconds to keep it. What an
# interrupted run of this same entry posted (its progress), else a fresh record and '' (also when
# the lease is not ours: the turn's first post finds that out)
_REPLAY = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return '' end
local stored = redis.call('GET', KEYS[2])
if stored and cjson.decode(stored)['entry'] == ARGV[2] then return stored end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
return ''
"""
# KEYS: lease. ARGV: replica, milliseconds. Still ours: extended, 1; else 0.
_HOLD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS: lease, progress. ARGV: replica, progress, seconds to keep it
_RECORD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
# KEYS: lease, conversation, progress, asked. ARGV: replica, entry, entry id
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[3])
return 1
"""
# KEYS: lease, conversation, waiting. ARGV: replica, conversation key.
# -1: not ours any more; 0: events still waiting (keep working); 1: released, nothing waits
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""
# KEYS: waiting. ARGV: the lease keys' prefix. The waiting conversations no replica holds.
_UNHELD = """
local free = {}
for _, conversation in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. conversation) == 0 then table.insert(free, conversation) end
end
return free
"""
# KEYS: lease. ARGV: replica. Let go at shutdown, whatever still waits (another replica takes it).
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLost(DeliveryFailed):
    """Another replica works through this conversation now (or Redis cannot say it does not):
    this replica posts nothing more for the turn."""


@dataclass(frozen=True)
class Entry:
    """One waiting event as stored: `member` is its exact text in the sorted set."""

    member: str
    id: str
    platform: str  # the adapter it came through
    message: IncomingMessage


def _progress(entry_id: str, posted: list[SentMessage]) -> str:
    return json.dumps({"entry": entry_id, "sent": [[s.chat_id, s.message_id, s.thread_id] for s in posted]})


def encode(platform: str, message: IncomingMessage, entry_id: str = "") -> str:
    """Arrival time first: events with the same platform order (scheduled ones) sort by it."""
    body = {f.name: getattr(message, f.name) for f in fields(message) if f.name not in ("attachments", "command")}
    body["attachments"] = [[a.name, a.size, a.mime] for a in message.attachments]
    body["command"] = message.command.key if message.command else None
    return json.dumps({"at": f"{time.time_ns():020d}", "id": entry_id or uuid.uuid4().hex, "platform": platform, "message": body})


def decode(member: str) -> Entry:
    stored = json.loads(member)
    body = dict(stored["message"])
    body["attachments"] = tuple(Attachment(name, size, mime) for name, size, mime in body["attachments"])
    body["command"] = CommandHandle(body["command"]) if body["command"] else None
    return Entry(member, stored["id"], stored["platform"], IncomingMessage(**body))


def is_turn(message: IncomingMessage) -> bool:
    """What waits in a conversation's queue; commands and empty messages are handled at once."""
    return bool(message.text.strip()) and not CommandRouter.is_command(message.text)


class TurnGuard:
    """One turn's hold on its conversation: the lease checked before each post and edit, and the
    messages it posted recorded (or, for a turn picked up again, replayed as edits)."""

    def __init__(self, queue: ClusterQueue, conversation: str, entry: Entry, replay: list[SentMessage]) -> None:
        self.queue = queue
        self.conversation = conversation
        self.entry = entry
        self.replay = replay
        self.posted: list[SentMessage] = list(replay)
        self.lost = False
        self.deferred = False  # gave way to an earlier message: runs again after it
        self._chosen = asyncio.get_running_loop().time()  # when the entry was read as the head

    async def ready(self) -> None:
        """The turn is about to start, maybe after a long wait for a place (a busy cluster): if an
        earlier message of the conversation was stored meanwhile (a replica that received it ran
        late), it goes first. Nothing was posted yet, so the turn gives way unseen."""
        if self.replay or asyncio.get_running_loop().time() - self._chosen < RECHECK_AFTER:
            return
        try:
            head = await self.queue.head(self.conversation)
        except Unreachable:
            return  # the lease checks before each post say what Redis' absence means for the turn
        if head is not None and head.id != self.entry.id:
            self.deferred = True
            raise TurnDeferred(f"an earlier message of {self.conversation} arrived while this turn waited")

    async def check(self) -> None:
        if self.lost or not await self.queue.hold(self.conversation):
            self.lost = True
            raise LeaseLost(f"lost the lease of {self.conversation}: another replica answers there now")

    async def record(self, sent: SentMessage) -> None:
        self.posted.append(sent)
        if not await self.queue.record(self.conversation, self.entry.id, self.posted):
            self.lost = True
            raise LeaseLost(f"lost the lease of {self.conversation} while posting")

    def wrap(self, outbox: Outbox) -> Outbox:
        return GuardedOutbox(outbox, self)


class GuardedOutbox(Outbox):
    """An adapter's outbox as one turn of a shared conversation sees it."""

    def __init__(self, inner: Outbox, guard: TurnGuard) -> None:  # shares the inner one's pacing
        self.inner = inner
        self.adapter = inner.adapter
        self.guard = guard
        self._sends = 0

    async def send(self, where: Destination, text: str) -> SentMessage:
        await self.guard.check()
        index, self._sends = self._sends, self._sends + 1
        if index < len(self.guard.replay):  # posted by the replica that was cut off: edit it
            sent = self.guard.replay[index]
            await self.inner.edit(sent, text)
            return sent
        sent = await self.inner.send(where, text)
        await self.guard.record(sent)
        return sent

    async def edit(self, message: SentMessage, text: str) -> None:
        await self.guard.check()
        await self.inner.edit(message, text)

    def ready_to_edit(self, message: SentMessage) -> bool:
        return self.inner.ready_to_edit(message)


TurnRunner = Callable[[Adapter, IncomingMessage, TurnGuard], Awaitable[bool]]


@dataclass(frozen=True)
class BotParts:
    """What the queue uses of the bot."""

    run: TurnRunner  # a turn, posted through the guard's outbox
    here: Receiver  # a command or a message with no question: handled on the replica that took it
    full: Receiver  # a question refused: its conversation has `most_waiting` events waiting already
    key: Callable[[IncomingMessage], str]  # the conversation a message belongs to
    order: Callable[[IncomingMessage], float]  # where it stands in the platform's order
    most_waiting: int
    slow: Receiver  # a question refused: its asker has `most_asked` questions waiting or under way already
    most_asked: int


class ClusterQueue:
    """Lifecycle: `start()` → `stop()`. The bot's intake in cluster mode (`take`, which adapters
    await before acknowledging), and the workers that run turns through `run`."""

    def __init__(self, settings: ClusterSettings, adapters: Sequence[Adapter], bot: BotParts) -> None:
        self.settings = settings
        self.client = connect(settings)
        self.keys = Keys(settings.key_prefix)
        self.me = replica_name(settings)
        self.adapters = {a.platform: a for a in adapters}
        self.bot = bot
        self._workers: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()  # woken while their worker here was ending
        self._held: set[str] = set()  # conversations whose lease this replica took and has not let go
        self._poller: asyncio.Task | None = None
        self.lag = ClusterLag(self.client, self.keys, self.me)
        self.problem = ""  # why the last intake failed, while Redis stays unreachable
        # set when the bot stops: every loop here checks it, for a cancellation can reach them
        # as the client's own timeout error (a cancelled command), which they take for a Redis fault
        self._stopping = False

    @property
    def _lease_ms(self) -> int:
        return int(self.settings.lease_seconds * 1000)

    async def start(self) -> None:
        try:
            await ping(self.client)
        except ClusterUnavailable as exc:
            await self.client.aclose()
            raise RuntimeError(f"cluster mode: {exc} (KAGENTBOT_CLUSTER__REDIS_URL)") from None
        log.info("cluster: replica %s shares conversations through Redis at %s", self.me, self.where())

    def poll(self) -> None:
        """Begin picking up waiting conversations no replica holds (once the adapters can post)."""
        self._poller = asyncio.create_task(self._poll(), name="cluster: waiting conversations")
        self.lag.start()

    def workers(self) -> list[asyncio.Task]:
        return [t for t in self._workers.values() if not t.done()]

    def tasks(self) -> list[asyncio.Task]:
        """Everything this replica runs for the shared conversations (a crash cancels these)."""
        return [*(t for t in (self._poller, self.lag.task()) if t), *self.workers()]

    async def stop(self) -> None:
        """Cancel what still runs and let go of the leases held: another replica takes those
        conversations at once, and finishes an interrupted turn by editing what it posted."""
        self.stop_taking()
        running = self.tasks()
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=4 * self.settings.connect_timeout)
        for conversation in list(self._held):
            try:
                await self.client.eval(_DROP, 1, self.keys.lease(conversation), self.me)
            except Unreachable:
                break  # the leases run out by themselves
        await self.client.aclose()

    def where(self) -> str:
        """The Redis server, without any password in its URL."""
        kwargs = self.client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def health(self) -> str:
        """For /readyz: raises ClusterUnavailable with the reason while Redis is unreachable."""
        try:
            await ping(self.client)
        except ClusterUnavailable as exc:
            raise ClusterUnavailable(f"{exc}; platform events are not acknowledged until it is back") from None
        self.problem = ""
        return f"Redis at {self.where()} answers; replica {self.me} works {len(self.workers())} conversation(s)"

    # -- intake --------------------------------------------------------------------------------
    async def take(self, adapter: Adapter, message: IncomingMessage) -> bool:
        """Stored once across replicas before the platform is acknowledged (the Intake contract)."""
        turn = is_turn(message)
        try:
            taken = await (self._store(adapter, message) if turn else self._first_time(adapter, message))
        except Unreachable as exc:
            self.problem = f"Redis at {self.where()} is unreachable ({exc})"
            log.error("cluster: %s: %s event %s NOT acknowledged, the platform will deliver it again",
                      self.problem, adapter.platform, event_id(message) or "(scheduled)")
            raise IntakeUnavailable(self.problem) from exc
        if taken == 0:
            log.info("cluster: %s event %s was taken already (a redelivery)", adapter.platform, event_id(message))
        elif taken == -2:
            self.bot.slow(adapter, message)
        elif taken < 0:
            self.bot.full(adapter, message)
        elif turn:
            self.wake(self.bot.key(message), adapter.platform, held=taken == 2)
        else:
            self.bot.here(adapter, message)
        return taken != 0

    async def _store(self, adapter: Adapter, message: IncomingMessage) -> int:
        conversation, seen = self.bot.key(message), event_id(message)
        keys = (self.keys.seen(adapter.platform, seen or "-"), self.keys.conversation(conversation), self.keys("waiting"),
                self._asked(message), self.keys.lease(conversation))
        most_asked = -1 if message.schedule_id else self.bot.most_asked  # scheduled: bounded by the scheduler
        entry_id = uuid.uuid4().hex
        return int(await self.client.eval(_TAKE, 5, *keys, "1" if seen else "", self.me, self._dedupe_seconds,
                                          repr(self.bot.order(message)), encode(adapter.platform, message, entry_id),
                                          conversation, self.bot.most_waiting, most_asked, entry_id, self._lease_ms))

    def _asked(self, message: IncomingMessage) -> str:
        """The asker's questions waiting or under way on every replica (`limits.user_turns` +
        `limits.user_queued` at most, as in one process)."""
        return self.keys("asked", message.user_key)

    async def _first_time(self, adapter: Adapter, message: IncomingMessage) -> int:
        seen = event_id(message)
        if not seen:
            return 1
        return int(bool(await self.client.set(self.keys.seen(adapter.platform, seen), self.me, nx=True, ex=self._dedupe_seconds)))

    @property
    def _dedupe_seconds(self) -> int:
        return max(int(self.settings.dedupe_hours * 3600), 1)

    # -- workers -------------------------------------------------------------------------------
    def wake(self, conversation: str, platform: str = "", held: bool = False) -> None:
        """Work through `conversation` here if no replica holds its lease (`platform`: where the
        event that woke it came from, if known; `held`: its store took the lease for this replica)."""
        task = self._workers.get(conversation)
        if task is not None and not task.done():  # it may be letting go just now: it looks again
            self._again.add(conversation)
        else:
            task = self._workers[conversation] = asyncio.create_task(self._claim(conversation, platform, held),
                                                                     name=f"conversation {conversation}")
            task.add_done_callback(lambda done: self._forget(conversation, done))

    def _forget(self, conversation: str, task: asyncio.Task) -> None:
        if self._workers.get(conversation) is task:
            del self._workers[conversation]
            self._again.discard(conversation)

    def stop_taking(self) -> None:
        """No more conversations picked up here (the bot is stopping); the turns under way go on,
        and their conversations are let go after them."""
        self._stopping = True
        if self._poller is not None:
            self._poller.cancel()
        if (watching := self.lag.task()) is not None:
            watching.cancel()

    async def _poll(self) -> None:
        """Conversations with waiting events and no live lease: a dead replica's, or a wake-up lost."""
        down = False  # said once when Redis goes away, once when it is back
        while not self._stopping:
            try:
                for conversation in await self.client.eval(_UNHELD, 1, self.keys("waiting"), self.keys.lease("")):
                    self.wake(str(conversation))
                if down:
                    log.warning("cluster: Redis at %s answers again", self.where())
                down = False
            except Unreachable as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                if not down:
                    log.error("cluster: Redis at %s is unreachable (%s): no conversation is picked up, no event "
                              "acknowledged, until it is back", self.where(), exc)
                down = True
            await asyncio.sleep(self.settings.poll_seconds)

    async def _claim(self, conversation: str, platform: str, held: bool = False) -> None:
        if held:
            self._held.add(conversation)  # let go at shutdown even if the bot stops before it starts
        try:
            while not self._stopping and (held or await self._take_lease(conversation)):
                held = False
                self._again.discard(conversation)
                self._held.add(conversation)
                await self._work(conversation, platform)  # returns once it let go, lost the lease, or the bot stops
                platform = ""  # taken again: whatever now waits may have come from anywhere
                if not self._stopping:
                    self._held.discard(conversation)
                if conversation not in self._again:
                    return
        except Unreachable as exc:  # the lease runs out; the events wait in Redis for whoever is next
            log.warning("cluster: lost Redis at %s while working through %s: %s", self.where(), conversation, exc)

    async def _take_lease(self, conversation: str) -> bool:
        return bool(await self.client.eval(_CLAIM, 1, self.keys.lease(conversation), self.me, self._lease_ms))

    async def _work(self, conversation: str, platform: str) -> None:
        renewing = asyncio.create_task(self._renew(conversation), name=f"lease {conversation}")
        try:
            await self._reorder_wait(conversation, platform)
            while not self._stopping and ((entry := await self.head(conversation)) is not None
                                          or await self._more(conversation)):
                if entry is not None and not await self._turn(conversation, entry):
                    return
        finally:
            renewing.cancel()

    async def _reorder_wait(self, conversation: str, platform: str) -> None:
        """The first turn waits for an earlier event still on its way: the platform's reorder
        window, and where the conversation's events can reach other replicas (`scattered`), at
        least `cluster.reorder_seconds` plus the other replicas' worst recent event-loop lag
        (kagentbot.cluster.lag)."""
        if not platform:
            entry = await self.head(conversation)
            platform = entry.platform if entry else ""
        adapter = self.adapters.get(platform)
        if adapter is None:
            return
        window = adapter.capabilities.reorder_window
        if adapter.capabilities.scattered:
            window = max(window, self.settings.reorder_seconds) + self.lag.excess
        if window > 0:
            await asyncio.sleep(window)

    async def _more(self, conversation: str) -> bool:
        """Nothing at the head: let go of the lease unless an event arrived meanwhile."""
        released = await self.client.eval(_RELEASE, 3, self.keys.lease(conversation), self.keys.conversation(conversation),
                                          self.keys("waiting"), self.me, conversation)
        return released == 0

    async def head(self, conversation: str) -> Entry | None:
        """The conversation's first waiting event (the one under way, or next)."""
        head = await self.client.zrange(self.keys.conversation(conversation), 0, 0)
        return decode(str(head[0])) if head else None

    async def _turn(self, conversation: str, entry: Entry) -> bool:
        """Run the head event's turn; whether this replica still holds the conversation after it."""
        adapter = self.adapters.get(entry.platform)
        if adapter is None:
            log.error("cluster: no %s adapter on replica %s for %s; leaving it to another", entry.platform, self.me, conversation)
            await self.client.eval(_DROP, 1, self.keys.lease(conversation), self.me)
            return False
        guard = TurnGuard(self, conversation, entry, await self._replay(conversation, entry))
        if guard.replay:
            log.warning("cluster: finishing %s's interrupted turn, editing the %d message(s) it posted",
                        conversation, len(guard.replay))
        await self.bot.run(adapter, entry.message, guard)
        if guard.lost:
            return False
        if guard.deferred:
            return True  # the earlier message is at the head now; this one follows it
        return bool(await self.client.eval(_FINISH, 4, self.keys.lease(conversation), self.keys.conversation(conversation),
                                           self._progress(conversation), self._asked(entry.message), self.me,
                                           entry.member, entry.id))

    async def _replay(self, conversation: str, entry: Entry) -> list[SentMessage]:
        """What an interrupted run of this same turn posted ([] for a turn not started before,
        whose progress record starts empty)."""
        stored = await self.client.eval(_REPLAY, 2, self.keys.lease(conversation), self._progress(conversation),
                                        self.me, entry.id, _progress(entry.id, []), self._dedupe_seconds)
        return [SentMessage(*sent) for sent in json.loads(stored)["sent"]] if stored else []

    def _progress(self, conversation: str) -> str:
        return self.keys("progress", conversation)

    async def record(self, conversation: str, entry_id: str, posted: list[SentMessage]) -> bool:
        try:
            return bool(await self.client.eval(_RECORD, 2, self.keys.lease(conversation), self._progress(conversation),
                                               self.me, _progress(entry_id, posted), self._dedupe_seconds))
        except Unreachable:
            return False

    async def hold(self, conversation: str) -> bool:
        """Whether this replica still holds the conversation's lease (extended when it does)."""
        try:
            return bool(await self.client.eval(_HOLD, 1, self.keys.lease(conversation), self.me, self._lease_ms))
        except Unreachable as exc:
            log.warning("cluster: cannot check the lease of %s (%s): posting nothing more", conversation, exc)
            return False

    async def _renew(self, conversation: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            if not await self.hold(conversation):
                log.warning("cluster: replica %s lost the lease of %s", self.me, conversation)
                return
