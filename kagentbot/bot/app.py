"""The bot: adapters hand it messages; it routes commands, queues questions one turn at a time
per conversation (many conversations at once), runs the agent and renders the events."""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kagentbot.agent.loop import TurnRequest
from kagentbot.agent.slots import Claim, FairGate, current_claim
from kagentbot.bot.admission import Lanes, open_lanes
from kagentbot.bot.replicas import LeaderDuties, set_leading
from kagentbot.bot.services import Services
from kagentbot.bot.turn_watch import observe_turn
from kagentbot.chat.adapter import Adapter, ChatMoved, Destination, Undeliverable
from kagentbot.chat.commands import CommandContext, CommandRouter
from kagentbot.chat.intake import IntakeUnavailable, TurnDeferred
from kagentbot.chat.markup import convert, split_text
from kagentbot.chat.messages import IncomingMessage
from kagentbot.chat.render import DeliveryFailed, Outbox, TurnRenderer
from kagentbot.config.redact import Redactor, settings_secrets

if TYPE_CHECKING:
    from kagentbot.cluster.convq import ClusterQueue, TurnGuard

log = logging.getLogger(__name__)
MAX_QUEUED_PER_CONVERSATION = 20
SHUTDOWN_GRACE = 8.0  # seconds turns under way get to finish when the bot stops
REMEMBERED_SLOWED = 1024  # users told to slow down, kept to space out the next telling
# to the asker alone, when their private notes match a question asked in a shared chat
PRIVATE_LEFT_OUT = ("I didn't use your private notes here (this chat can't see them); ask me in a DM, "
                    "or allow them in this chat with /kb share on.")
PREPARING_PER_SLOT = 4  # turns getting ready at once per LLM slot, unless limits.preparing says otherwise
TYPING_EVERY = 4.5  # seconds between typing indicators (Telegram shows one for 5 s, Discord 10 s)


@dataclass
class _Conversation:
    # waiting turns as a heap of (platform order, arrival number, adapter, message)
    waiting: list[tuple[float, int, Adapter, IncomingMessage]] = field(default_factory=list)
    worker: asyncio.Task | None = None


class Bot:
    """Lifecycle: `start()` → `stop()`, or `async with Bot(...)`. `schedule=False` runs no
    scheduled questions (the terminal's one-off `ask` and `chat`)."""

    def __init__(self, services: Services, adapters: Sequence[Adapter], router: CommandRouter | None = None,
                 *, schedule: bool = True) -> None:
        self.services = services
        self.schedule = schedule
        self.adapters = list(adapters)
        self.router = router or default_router()
        redact = Redactor(settings_secrets(services.settings))
        self._outboxes = {id(a): Outbox(a, redact) for a in self.adapters}
        self._conversations: dict[str, _Conversation] = {}
        self._arrivals = 0  # breaks ties in the platform order: first come, first answered
        self._tasks: set[asyncio.Task] = set()
        self._running = False
        self._leader: LeaderDuties | None = None  # several replicas: who runs the one-per-bot work
        self._turn_lanes, self._command_lanes = open_lanes(services.settings)
        limits = services.settings.limits
        preparing = limits.preparing or PREPARING_PER_SLOT * services.settings.llm.max_connections
        # in this process even with replicas: it paces this replica's own CPU, not the shared model
        self._preparing = FairGate(preparing, scheduled_patience=limits.scheduled_patience)  # schedules delayed, never starved
        self._slowed: dict[str, float] = {}  # user → when they were last told to slow down
        self._admitting: dict[str, asyncio.Future] = {}  # conversation → its latest message still being admitted
        self.refused: Counter[str] = Counter()  # "turn" / "command" / "conversation" → messages refused past a cap
        # turns run to their end ("answered" / "unanswered"), commands ("command" / "command failed")
        self.finished: Counter[str] = Counter()
        self._cluster: ClusterQueue | None = None  # cluster mode: conversations queued in Redis

    async def start(self) -> None:
        self._running = True
        await self._share()
        shared = self.services.shared if self.schedule else None  # `ask` and `chat` never lead
        if shared is not None:  # replicas: the elected leader alone polls and syncs
            await set_leading(self.adapters, False)
        for adapter in self.adapters:
            adapter.on_chat_moved = self.chat_moved
            adapter.offer_commands(self.router.commands())
            await adapter.start(self.receive)
            log.info("started %s", adapter.platform)
        if self._cluster is not None:
            self._cluster.poll()
        if shared is not None:
            self._leader = LeaderDuties(self, shared)
            await self._leader.start()
        elif self.schedule:
            await self._start_scheduler()

    async def _share(self) -> None:
        """The one place cluster mode is chosen: platform events are deduped and stored in Redis
        before adapters acknowledge them, and each conversation's turns run on whichever replica
        holds its lease. Off, nothing of it (nor redis) is imported. The terminal's one-off `ask`
        and `chat` (schedule=False) stay in this process: no other replica has their console."""
        if not self.services.settings.cluster.enabled or not self.schedule:
            return
        from kagentbot.cluster.convq import BotParts, ClusterQueue

        limits = self.services.settings.limits
        parts = BotParts(self._shared_turn, self._receive_here, self._conversation_full, conversation_key, _platform_order,
                         MAX_QUEUED_PER_CONVERSATION, self._asker_full, limits.user_turns + limits.user_queued)
        self._cluster = ClusterQueue(self.services.settings.cluster, self.adapters, parts)
        await self._cluster.start()
        self.services.cluster_probe = self._cluster.health
        for adapter in self.adapters:
            adapter.intake = self._cluster

    async def _start_scheduler(self) -> None:
        from kagentbot.bot.schedule import Scheduler

        self.services.scheduler = Scheduler(self.services.settings, self._scheduled, self.services.memory)
        await self.services.scheduler.start()

    async def _scheduled(self, spec) -> None:
        """A scheduled question runs as its owner asking it in its chat, like a live message."""
        user_id = spec.owner.split(":", 1)[1]
        message = IncomingMessage(spec.platform, spec.chat_id, user_id, spec.question,
                                  thread_id=spec.thread_id, is_dm=spec.is_dm, schedule_id=spec.id)
        self.ask_as(spec.platform, message)

    def ask_as(self, platform: str, message: IncomingMessage) -> None:
        """Hand a message to the bot as if it arrived on `platform`'s adapter."""
        adapter = next((a for a in self.adapters if a.platform == platform), None)
        if adapter is None:
            raise LookupError(f"no {platform} adapter is running")
        self.receive(adapter, message)

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Take no new messages, give turns under way `grace` seconds to finish (an answer cut
        off mid-stream would stay half-written in the chat), then close everything."""
        for adapter in self.adapters:  # first, so what arrives from now on waits for the next start
            try:
                await adapter.stop_receiving()
            except Exception:  # stopping must go on: the rest still needs closing and flushing
                log.exception("%s: could not stop receiving", adapter.platform)
        await asyncio.sleep(0.1)  # what an adapter had already fetched still reaches `receive`
        self._running = False
        if self._leader is not None:
            await self._leader.stop()
            self._leader = None
        if self._cluster is not None:
            self._cluster.stop_taking()
        if self.services.scheduler is not None:
            self.services.scheduler.shutdown()
            self.services.scheduler = None
        tasks = self._work()
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for adapter in self.adapters:
            await adapter.stop()
        tasks = self._work()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._conversations.clear()
        if self._cluster is not None:
            await self._cluster.stop()
            self._cluster = None
        await asyncio.gather(self._turn_lanes.close(), self._command_lanes.close())
        await self.services.close()

    async def __aenter__(self) -> Bot:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- intake: never blocks the adapter ------------------------------------------------------
    def receive(self, adapter: Adapter, message: IncomingMessage) -> None:
        if not self._running:
            return
        if self._cluster is not None:  # from adapters that acknowledge by themselves, and scheduled questions
            self._spawn(self._take(adapter, message))
            return
        self._receive_here(adapter, message)

    async def _take(self, adapter: Adapter, message: IncomingMessage) -> None:
        assert self._cluster is not None
        try:
            await self._cluster.take(adapter, message)
        except IntakeUnavailable:
            pass  # logged by the intake: the platform delivers it again

    def _receive_here(self, adapter: Adapter, message: IncomingMessage) -> None:
        if CommandRouter.is_command(message.text):
            self._spawn(self._command(adapter, message))
            return
        if not message.text.strip():
            if message.attachments:  # a file with no words: say how to add it rather than stay silent
                names = ", ".join(a.name for a in message.attachments)
                self._spawn(self._say(adapter, message, f"To add {names} to your knowledge base, send it again with "
                                                        "the caption /kb add.", private=True))
            return
        key = conversation_key(message)
        before, taken = self._admitting.get(key), asyncio.get_running_loop().create_future()
        self._admitting[key] = taken
        self._spawn(self._guarded(adapter, message, self._admit(adapter, message, key, before, taken)))

    async def _admit(self, adapter: Adapter, message: IncomingMessage, key: str, before: asyncio.Future | None,
                     taken: asyncio.Future) -> None:
        """A question into its conversation's line once the asker's lane has room for it, after
        the message that came before it in the conversation (lanes shared by replicas answer
        with a delay that may differ from one message to the next)."""
        try:
            if self._local_conversation_full(adapter, message, key):
                return
            admitted = await self._admitted(self._turn_lanes, adapter, message, "turn")
            if before is not None:
                await before
            if admitted:
                await self._join(adapter, message, key)
        finally:
            taken.set_result(None)
            if self._admitting.get(key) is taken:
                del self._admitting[key]

    async def _join(self, adapter: Adapter, message: IncomingMessage, key: str) -> None:
        if self._local_conversation_full(adapter, message, key):  # filled while lanes shared by replicas answered
            await self._turn_lanes.withdraw(message.user_key)
            return
        conversation = self._conversations.setdefault(key, _Conversation())
        self._arrivals += 1
        heapq.heappush(conversation.waiting, (_platform_order(message), self._arrivals, adapter, message))
        if conversation.worker is None or conversation.worker.done():
            conversation.worker = asyncio.create_task(self._drain(key, conversation), name=f"conversation {key}")

    def _local_conversation_full(self, adapter: Adapter, message: IncomingMessage, key: str) -> bool:
        conversation = self._conversations.get(key)
        if conversation is None or len(conversation.waiting) < MAX_QUEUED_PER_CONVERSATION:
            return False
        self._conversation_full(adapter, message)
        return True

    def _conversation_full(self, adapter: Adapter, message: IncomingMessage) -> None:
        self.refused["conversation"] += 1
        self._spawn(self._say(adapter, message, "I'm still working through earlier questions here; please ask again in a moment."))

    async def _admitted(self, lanes: Lanes, adapter: Adapter, message: IncomingMessage, what: str) -> bool:
        """Room in the user's lane for this message; past the cap, a "slow down" reply (once per
        `limits.slow_down_every`, so a flood does not become a flood of replies)."""
        if await lanes.admit(message.user_key, always=bool(message.schedule_id)):
            return True
        self._refuse(adapter, message, what, await lanes.outstanding(message.user_key))
        return False

    def _asker_full(self, adapter: Adapter, message: IncomingMessage) -> None:
        """Replicas: the asker's questions waiting or under way on every replica reach the cap."""
        limits = self.services.settings.limits
        self._refuse(adapter, message, "turn", limits.user_turns + limits.user_queued)

    def _refuse(self, adapter: Adapter, message: IncomingMessage, what: str, outstanding: int) -> None:
        self.refused[what] += 1
        log.info("refused a %s from %s: %d waiting or under way", what, message.user_key, outstanding)
        now, every = time.monotonic(), self.services.settings.limits.slow_down_every
        if now - self._slowed.get(message.user_key, -math.inf) >= every:
            if len(self._slowed) >= REMEMBERED_SLOWED:  # forget who was told long enough ago
                self._slowed = {user: told for user, told in self._slowed.items() if now - told < every}
            self._slowed[message.user_key] = now
            self._spawn(self._say(adapter, message, slow_down_text(outstanding, what), private=True))

    def _pause_schedule(self, job_id: str, reason: str) -> None:
        """A scheduled question whose chat refuses it for good (the bot was removed or blocked)
        would run the model on every tick for nobody: pause it until its owner resumes it."""
        scheduler = self.services.scheduler
        if scheduler is None:
            return
        try:
            scheduler.set_paused(job_id, "", True, True)
        except Exception:
            log.exception("could not pause scheduled question %s", job_id)
            return
        log.warning("paused scheduled question %s: %s (resume it with /schedule resume %s)", job_id, reason, job_id)

    def chat_moved(self, adapter: Adapter, old_id: str, new_id: str) -> None:
        """The platform gave a chat a new id: what is kept under the old one follows it."""
        if self._running:
            self._spawn(self._move_chat(adapter.platform, old_id, new_id))

    async def _move_chat(self, platform: str, old_id: str, new_id: str) -> None:
        try:
            await self.services.move_chat(platform, old_id, new_id)
        except Exception:
            log.exception("moving %s chat %s to %s failed: its memory, persona or schedules still use the old id",
                          platform, old_id, new_id)

    def _work(self) -> list[asyncio.Task]:
        """Every turn and command under way: the spawned tasks and the conversation workers."""
        shared = self._cluster.workers() if self._cluster is not None else []
        return [*self._tasks, *(c.worker for c in self._conversations.values() if c.worker), *shared]

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str, conversation: _Conversation) -> None:
        """One turn at a time for this conversation, in the order the platform gives the
        messages (where events can overtake each other, as Slack's do, the first turn waits the
        adapter's reorder window for any earlier message still on its way); the worker ends when
        nothing is waiting."""
        window = conversation.waiting[0][2].capabilities.reorder_window
        if window > 0:
            await asyncio.sleep(window)
        while conversation.waiting:
            _, _, adapter, message = heapq.heappop(conversation.waiting)
            answered = await self._guarded(adapter, message, self._turn(adapter, message))
            self.finished["answered" if answered else "unanswered"] += 1
        if self._conversations.get(key) is conversation and not conversation.waiting:
            del self._conversations[key]

    async def idle(self) -> None:
        """Wait until every queued turn and command has finished (tests, benchmarks, shutdown)."""
        while self._tasks or any(c.worker and not c.worker.done() for c in self._conversations.values()) or (
                self._cluster is not None and self._cluster.workers()):
            pending = self._work()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- work ----------------------------------------------------------------------------------
    async def _turn(self, adapter: Adapter, message: IncomingMessage) -> bool:
        async with self._turn_lanes.running(message.user_key):
            return await self.answer(adapter, message)

    async def _shared_turn(self, adapter: Adapter, message: IncomingMessage, guard: TurnGuard) -> bool:
        """A turn of a conversation shared by replicas: posted only while this one holds it."""
        outbox = guard.wrap(self._outboxes[id(adapter)])
        answered = await self._guarded(adapter, message, self._counted_turn(adapter, message, outbox, guard.ready))
        if not guard.deferred:
            self.finished["answered" if answered else "unanswered"] += 1
        return answered

    async def _counted_turn(self, adapter: Adapter, message: IncomingMessage, outbox: Outbox,
                            ready: Callable[[], Awaitable[None]]) -> bool:
        """A shared conversation's turn holds one of its asker's running places, counted across
        replicas like any turn (it was queued in Redis, so it is admitted here, never refused)."""
        await self._turn_lanes.admit(message.user_key, always=True)
        async with self._turn_lanes.running(message.user_key):
            return await self.answer(adapter, message, outbox, ready)

    async def answer(self, adapter: Adapter, message: IncomingMessage, outbox: Outbox | None = None,
                     ready: Callable[[], Awaitable[None]] | None = None) -> bool:
        """`ready`: awaited once the turn has its place to prepare, before it does anything a user
        sees; it may raise TurnDeferred (replicas: an earlier message arrived meanwhile)."""
        where = await adapter.destination(message)
        started = asyncio.Event()  # set when the turn's first model call gets a slot
        claim = claim_for(message, started)
        self._spawn(self._queue_notice(adapter, where, claim.turn, started))
        try:
            await self._prepare_in_turn(claim)
            if ready is not None:
                await ready()
            return await self._run_turn(adapter, message, where, claim, outbox or self._outboxes[id(adapter)])
        finally:
            started.set()  # a turn that ends before any call leaves no notice behind, nor its place

    async def _prepare_in_turn(self, claim: Claim) -> None:
        """Wait for one of the places where turns get ready for their first model call (persona,
        memory recall, prompt), taken fairly by user; the place is left when that call gets its
        slot. A burst of hundreds of turns would otherwise prepare all at once, in step, and
        the model would wait idle until nearly every one of them was ready."""
        place = replace(claim, started=None)  # the turn starts with its first model call, not here
        await self._preparing.acquire(place)
        self._spawn(self._leave_when_started(place, claim.started))

    async def _leave_when_started(self, place: Claim, started: asyncio.Event | None) -> None:
        try:
            if started is not None:
                await started.wait()
        finally:
            await asyncio.shield(self._preparing.release(place))

    async def _run_turn(self, adapter: Adapter, message: IncomingMessage, where: Destination, claim: Claim,
                        outbox: Outbox) -> bool:
        persona = await self.services.persona_for(message)
        audience = await self.services.audience_for(message)
        request = TurnRequest(message.text, audience, persona)
        render = self.services.settings.render
        renderer = TurnRenderer(outbox, where, render.verbosity, render.broadcast_answer)
        typing = asyncio.create_task(_keep_typing(adapter, where)) if adapter.capabilities.typing else None
        token = current_claim.set(claim)  # the LLM calls of this turn ask for slots as this user
        try:
            answered = await observe_turn(adapter.platform, self.services.agent().run(request), renderer.render)
        finally:
            current_claim.reset(token)
            if typing is not None:
                typing.cancel()
        if answered and await self.services.private_left_out(audience, message.text):
            await self._say(adapter, message, PRIVATE_LEFT_OUT, private=True)
        return answered

    async def _queue_notice(self, adapter: Adapter, where: Destination, turn: str, started: asyncio.Event) -> None:
        """A turn waiting long for an LLM slot shows where it stands ("queued — 3 ahead of
        you"), kept up to date by edits where the platform has them, and withdrawn when its
        first call gets a slot."""
        limits = self.services.settings.limits
        if await _set_within(started, limits.queue_notice_after):
            return
        outbox, sent, shown = self._outboxes[id(adapter)], None, None
        try:
            while not started.is_set():
                ahead = await self._ahead_of(turn)
                if ahead is not None and ahead != shown and (sent is None or adapter.capabilities.edits):
                    text = queued_text(ahead)
                    if sent is None:
                        sent = await outbox.send(where, text)
                    else:
                        await outbox.edit(sent, text)
                    shown = ahead
                await _set_within(started, limits.queue_notice_every)
            if sent is not None:
                await self._withdraw_notice(adapter, outbox, sent)
        except DeliveryFailed:
            log.info("%s: could not show or withdraw a queue notice in %s", adapter.platform, where.chat_id)

    async def _ahead_of(self, turn: str) -> int | None:
        """About how many model calls will get a slot before this turn's first: counted at the
        LLM slots, or, while the turn still waits to prepare, every call waiting there and the
        turns before it in the line to prepare."""
        ahead = await self.services.slots.position(turn)
        if ahead is None and (preparing := await self._preparing.position(turn)) is not None:
            ahead = preparing + self.services.slots.queue_length()
        return ahead

    @staticmethod
    async def _withdraw_notice(adapter: Adapter, outbox: Outbox, sent) -> None:
        """Removed where the platform lets the bot delete its messages, else replaced."""
        if adapter.capabilities.deletes:
            try:
                await adapter.delete(sent)
                return
            except Exception as exc:  # a notice left standing is no failure of the turn
                log.info("%s: could not delete a queue notice (%s)", adapter.platform, exc)
        if adapter.capabilities.edits:
            await outbox.edit(sent, STARTED_TEXT)

    async def _command(self, adapter: Adapter, message: IncomingMessage) -> None:
        if not await self._guarded(adapter, message, self._admitted(self._command_lanes, adapter, message, "command")):
            return

        async def run() -> None:
            async with self._command_lanes.running(message.user_key):
                admin = adapter.capabilities.operator or self.services.settings.is_admin(message.user_key)
                context = CommandContext(message, self.services, admin)
                reply = await self.router.dispatch(context)
                await self._say(adapter, message, reply.text, private=reply.private)

        done = await self._guarded(adapter, message, run())
        self.finished["command" if done else "command failed"] += 1

    async def _guarded(self, adapter: Adapter, message: IncomingMessage, work) -> bool:
        """Our faults become a short apology with an error id, never a stack trace in chat.
        Whether the work went through (for a turn: whether it was answered)."""
        try:
            return await work is not False
        except asyncio.CancelledError:
            raise
        except TurnDeferred:
            return False  # nothing was shown; the turn runs again after the earlier message
        except DeliveryFailed as exc:
            log.exception("could not deliver to %s chat %s", message.platform, message.chat_id)
            if message.schedule_id and isinstance(exc.__cause__, Undeliverable) and not isinstance(exc.__cause__, ChatMoved):
                self._pause_schedule(message.schedule_id, str(exc))
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("handling a message failed (error id %s)", error_id)
            await self._say(adapter, message, f"Sorry, something went wrong on my side (error id {error_id}).")
        return False

    async def _say(self, adapter: Adapter, message: IncomingMessage, text: str, private: bool = False) -> None:
        """A reply to the message itself (commands, notices): converted and split for the platform;
        private replies are shown to the asker alone where the platform can."""
        where = Destination(message.chat_id, message.thread_id, message.message_id,
                            private_to=message.user_id if private and not message.is_dm else "",
                            command=message.command)
        caps = adapter.capabilities
        try:
            for piece in split_text(text, int(caps.max_length * 0.85)):
                await self._outboxes[id(adapter)].send(where, convert(piece, caps.markup))
        except DeliveryFailed as exc:
            pointer = adapter.private_pointer
            if where.private_to and pointer and isinstance(exc.__cause__, Undeliverable):
                # the platform's private channel to this user is closed: the chat gets one
                # pointer (not one per piece), never the reply itself
                await self._say(adapter, message, pointer)
                return
            log.exception("could not tell %s chat %s: %s", message.platform, message.chat_id, text)


STARTED_TEXT = "▶️ Working on it now."


def queued_text(ahead: int) -> str:
    if ahead == 0:
        return "⏳ Queued — you're next."
    return f"⏳ Queued — {ahead} ahead of you."


def slow_down_text(outstanding: int, what: str) -> str:
    things = "questions" if what == "turn" else "commands"
    return (f"Slow down, please: you have {outstanding} {things} waiting or under way. I'm not taking more "
            f"{things} from you until some are done; send this one again then.")


def claim_for(message: IncomingMessage, started: asyncio.Event) -> Claim:
    """On whose behalf this turn's model calls run, for the fair sharing of LLM slots."""
    return Claim(message.user_key, f"{message.platform}:{message.chat_id}",
                 "scheduled" if message.schedule_id else "interactive", uuid.uuid4().hex, started)


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _platform_order(message: IncomingMessage) -> float:
    """Where messages of one conversation stand in the platform's own order: Slack's ts, and
    Telegram's and Discord's ids, grow with time. Messages without one (scheduled questions)
    go after those already waiting, in arrival order."""
    try:
        return float(message.message_id)
    except ValueError:
        return math.inf


def conversation_key(message: IncomingMessage) -> str:
    """Turns with the same key run one at a time, in order. A DM is one conversation; in a
    channel each mention opens its own thread (Slack, Discord), so the thread is the conversation."""
    thread = message.thread_id or ("" if message.is_dm else message.message_id)
    return f"{message.platform}:{message.audience.conversation_key}:{thread}"


def default_router() -> CommandRouter:
    """Every chat command the features provide."""
    from kagentbot.bot.kb_commands import kb_command
    from kagentbot.bot.persona_commands import persona_command
    from kagentbot.bot.schedule_commands import schedule_command

    router = CommandRouter()
    router.add(kb_command())
    router.add(persona_command())
    router.add(schedule_command())
    return router


async def _keep_typing(adapter: Adapter, where: Destination) -> None:
    """"The bot is typing…" for as long as a turn runs: the first step only appears after the
    model's first reply, which a cold model can take many seconds to give."""
    while True:
        try:
            await adapter.typing(where)
        except Exception as exc:  # an indicator is not worth a failure, or a second try
            log.debug("%s: no typing indicator (%s)", adapter.platform, exc)
            return
        await asyncio.sleep(TYPING_EVERY)
