"""The KAgentSys loop: retrieve memory → plan one task → run its tool → … → conclude → remember.
An async generator of typed events; it never raises for the model's or a tool's faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, cast

from kagentbot.agent import prompts
from kagentbot.agent.events import (
    AgentEvent,
    AnswerDelta,
    AnswerDone,
    Failed,
    PlanRejected,
    StepPlanned,
    ToolFinished,
    ToolStarted,
)
from kagentbot.agent.context import ContextSizes, prompt_budget
from kagentbot.agent.llm import ANSWER_CUT, ChatReply, LLMClient, LLMError, sampling_options
from kagentbot.agent.parsing import Plan, PlanParseError, ThinkFilter, parse_plan, strip_thinking
from kagentbot.config.settings import Settings
from kagentbot.memory.types import Audience, MemoryView, Passage, Recall, TaskRecord, Turn
from kagentbot.persona.model import DEFAULT_PERSONA, Persona
from kagentbot.tools.links import TurnLinks
from kagentbot.tools.registry import KnowledgeSearcher, ToolContext, ToolRegistry

log = logging.getLogger(__name__)

# A server that ignores the output cap is cut off here, at this many characters per token of the
# cap: generous (English averages about 4, Chinese under 2), so a server that keeps its cap always
# stops first, and a runaway one still ends in a few messages rather than hundreds.
CHARS_PER_TOKEN_CEILING = 8
# What of a model's error a user is shown: its first line, this long at most (the rest is logged).
ERROR_SHOWN_CHARS = 300

# After an answer cut at llm.answer_max_tokens (by the server or here), so nobody takes it for complete.
CUT_NOTE = {
    "en": "\n\n… (cut off: the answer reached its length limit, llm.answer_max_tokens)",
    "zh": "\n\n……（回答已达长度上限 llm.answer_max_tokens，后文被截断）",
}


@dataclass(frozen=True)
class TurnRequest:
    question: str
    audience: Audience
    persona: Persona = DEFAULT_PERSONA
    now: datetime | None = None  # defaults to the current time; fixed in tests and schedules


@dataclass
class _Turn:
    """Mutable state of one turn, private to the loop."""

    request: TurnRequest
    language: str
    now: datetime
    model: str
    options: dict[str, Any]
    tools: ToolRegistry
    max_steps: int
    completed: list[TaskRecord] = field(default_factory=list)
    recall: Recall = field(default_factory=Recall)
    native_opening: tuple[str, prompts.PromptParts] | None = None  # native mode: system text, user message
    messages: list[dict[str, Any]] = field(default_factory=list)  # native mode: the calls and results since
    native_answer: str = ""  # native mode: the model answered instead of calling a tool
    cut: bool = False  # the answer was cut at its length limit: the note is shown, never stored
    sources: set[str] = field(default_factory=set)  # scopes of the memory that reached the model
    links: TurnLinks = field(default_factory=TurnLinks)  # what URL-taking tools may open
    context: int | None = None  # the model's context at the server, in tokens, where known
    context_read: bool = False


class Agent:
    def __init__(
        self,
        settings: Settings,
        llm: LLMClient,
        tools: ToolRegistry,
        memory: MemoryView | None = None,
        *,
        http: Any = None,  # aiohttp.ClientSession, or a callable that opens it when a tool needs it
        knowledge: Any = None,  # callable(audience) -> KnowledgeSearcher
        services: Any = None,
        contexts: ContextSizes | None = None,  # shared by every turn, so each model's is read once
    ) -> None:
        self.settings = settings
        self.llm = llm
        self.tools = tools
        self.memory = memory
        self._http = http
        self._knowledge = knowledge
        self._services = services
        self._contexts = contexts or ContextSizes()

    async def run(self, request: TurnRequest) -> AsyncIterator[AgentEvent]:
        started = time.perf_counter()
        deadline = self.settings.agent.turn_deadline
        try:
            async with contextlib.aclosing(self._run(request, started)) as events:
                async for event in _within(events, deadline):
                    yield event
        except _Overdue:
            error_id = _error_id()
            log.warning("turn stopped at agent.turn_deadline, %g s (error id %s) for %s",
                        deadline, error_id, request.audience.user_scope)
            yield Failed(f"That took longer than {deadline:g} s (agent.turn_deadline), so I stopped. Try a narrower "
                         "question, or ask the bot's operator to raise KAGENTBOT_AGENT__TURN_DEADLINE.", error_id, True)
        except LLMError as exc:
            error_id = _error_id()
            log.warning("model call failed (error id %s) for %s: %s", error_id, request.audience.user_scope, exc)
            yield Failed(shown_error(str(exc), error_id), error_id, exc.retryable)
        except Exception:
            error_id = _error_id()
            log.exception("turn failed (error id %s) for %s", error_id, request.audience.user_scope)
            yield Failed(f"Sorry, something went wrong on my side (error id {error_id}).", error_id)

    async def _run(self, request: TurnRequest, started: float) -> AsyncGenerator[AgentEvent, None]:
        turn = self._start(request)
        answer = ""
        for index in range(1, turn.max_steps + 1):
            await self._refresh_memory(turn)
            plan: Plan | PlanRejected | None = None
            async for step in self._plan(turn, index):
                if isinstance(step, AnswerDelta):  # native mode: the model answers as it plans
                    answer += step.text
                    yield step
                else:
                    plan = step.plan
            if isinstance(plan, PlanRejected):
                yield plan
                break
            if plan is None or plan.is_stop:
                break
            async for event in self._execute(turn, index, plan):
                yield event
        async for delta in self._conclude(turn):
            answer += delta
            yield AnswerDelta(delta)
        shown = answer
        if turn.cut:  # the note is the bot's, not the model's words: shown, not remembered
            shown += CUT_NOTE[turn.language]
            yield AnswerDelta(CUT_NOTE[turn.language])
        if self.memory is not None:
            self._remember(self.memory, request, answer, turn.completed, request.audience.store_scope(turn.sources))
        yield AnswerDone(shown, len(turn.completed), time.perf_counter() - started)

    def _remember(self, memory: MemoryView, request: TurnRequest, answer: str,
                  completed: Sequence[TaskRecord], scope: str) -> None:
        """Kept under `scope`, the most private scope of what went into the turn, so that what
        was drawn from someone's private memory never reaches a more public conversation."""
        # Written in the background (and read back from memory until then): the turn ends as
        # soon as its answer is out.
        memory.remember_soon(request.audience, request.question, answer, tuple(completed), scope=scope)

    def _start(self, request: TurnRequest) -> _Turn:
        persona = request.persona
        language = persona.language if persona.language != "auto" else prompts.detect_language(request.question)
        now = request.now or datetime.now(timezone.utc).astimezone()
        turn = _Turn(
            request=request, language=language, now=now,
            model=persona.model or self.settings.llm.model,
            options=sampling_options(self.settings.llm, persona.options),
            tools=self.tools.subset(persona.tools),
            max_steps=persona.max_steps or self.settings.agent.max_steps,
        )
        turn.links.note(request.question)
        self._contexts.start(self.llm, turn.model)  # while memory is read
        return turn

    async def _refresh_memory(self, turn: _Turn) -> None:
        """KAgentSys retrieves memory before every planning step, steered by the latest task."""
        if self.memory is None:
            return
        query = turn.request.question
        if turn.completed:
            query = f"{query} {turn.completed[-1].task_name}"
        # the conversation does not change within a turn: read it on the first step only
        turns = 0 if turn.completed else self.settings.agent.history_turns
        recall = await self.memory.recall(turn.request.audience, query, turns=turns, limit=self.settings.memory.top_k)
        if turn.completed:
            recall = replace(recall, conversation=turn.recall.conversation)
        turn.recall = recall
        turn.sources.update(_scopes_of(recall, turn.request.audience))
        turn.links.note(*(p.text for p in recall.knowledge), *(p.source for p in recall.knowledge))

    async def _plan_kagent(self, turn: _Turn, index: int) -> Plan | PlanRejected | None:
        specs = [t.function_spec() for t in turn.tools.tools()]
        memory = prompts.memory_text(turn.recall, turn.completed, turn.language, turn.request.audience)
        parts = prompts.planning_prompt(
            turn.request.persona, specs, turn.now, memory, turn.request.question, turn.max_steps, turn.language
        )
        options = {**turn.options, "num_predict": self.settings.llm.plan_max_tokens}  # a task is a few lines of JSON
        prompt = parts.render(await self._budget(turn, options["num_predict"], parts.memory))
        schema = prompts.plan_schema(specs) if self.settings.llm.constrained_planning else None
        reply = await self.llm.complete([{"role": "user", "content": prompt}], model=turn.model, options=options,
                                        schema=schema)
        try:
            plan = parse_plan(reply.content)
        except PlanParseError as exc:
            return PlanRejected(index, f"{exc}; concluding with what I have", reply.content[:500])
        return self._check(turn, index, plan)

    async def _plan(self, turn: _Turn, index: int) -> AsyncIterator[AnswerDelta | _Planned]:
        if self.settings.llm.mode != "native":
            yield _Planned(await self._plan_kagent(turn, index))
            return
        async for step in self._plan_native(turn, index):
            yield step

    async def _plan_native(self, turn: _Turn, index: int) -> AsyncIterator[AnswerDelta | _Planned]:
        """One native call, streamed: text the model writes instead of calling a tool reaches the
        user as it is generated; a tool call plans the next step as before. Text that came before
        a call was shown already and stays part of the answer."""
        specs = [t.function_spec() for t in turn.tools.tools()]
        if turn.native_opening is None:
            turn.native_opening = self._native_opening(turn)
        budget = await self._budget(turn, self._answer_tokens(turn), turn.native_opening[1].memory)
        messages = self._native_messages(turn, budget)
        got: list[ChatReply] = []
        stream = self.llm.stream_reply(messages, model=turn.model, options=turn.options, tools=specs or None)
        async with contextlib.aclosing(_texts(stream, got)) as texts:
            async for visible in self._capped(turn, texts):
                turn.native_answer += visible
                yield AnswerDelta(visible)
        turn.cut = turn.cut or (bool(got) and got[0].cut and not got[0].tool_calls)  # the server's cap
        if turn.cut or not got or not got[0].tool_calls:
            yield _Planned(None)  # the answer is out (or cut): nothing more to plan
            return
        reply = got[0]
        call = reply.tool_calls[0]  # one task at a time, as KAgentSys plans
        turn.messages.append({"role": "assistant", "content": reply.content or "",
                              "tool_calls": [{"function": {"name": call.name, "arguments": call.arguments}}]})
        task_name = strip_thinking(reply.content).strip() or _purpose(turn.tools.get(call.name)) or call.name
        if turn.native_answer.strip():  # a later answer starts on a line of its own
            turn.native_answer += "\n\n"
            yield AnswerDelta("\n\n")
        yield _Planned(self._check(turn, index, Plan(task_name[:200], call.name, call.arguments)))

    def _native_messages(self, turn: _Turn, budget: int) -> list[dict[str, Any]]:
        """The system text, the user message with its memory trimmed to what the prompt budget
        leaves (as kagent mode trims its prompt), then this turn's calls and results."""
        if turn.native_opening is None:
            turn.native_opening = self._native_opening(turn)
        system, user = turn.native_opening
        used = prompts.estimate_tokens(system) + sum(_message_tokens(m) for m in turn.messages)
        left = max(budget - used, 0)
        return [{"role": "system", "content": system}, {"role": "user", "content": user.render(left)}, *turn.messages]

    def _native_opening(self, turn: _Turn) -> tuple[str, prompts.PromptParts]:
        language = turn.language
        system = "\n\n".join([
            prompts.persona_block(turn.request.persona, language),
            prompts.describe_now(turn.now, language),
            prompts.CONCLUDING_STAGE[language].split("\n", 1)[1],
            "Call a tool when you lack a fact; answer directly once you know enough." if language == "en"
            else "缺少事实时调用工具；信息足够时直接回答。",
        ])
        question = turn.request.question
        if turn.recall == Recall():
            return system, prompts.PromptParts("", "", question, language)
        memory = prompts.memory_text(turn.recall, (), language, turn.request.audience)
        return system, prompts.PromptParts("", memory, f"\n\nGOAL: {question}", language)

    def _check(self, turn: _Turn, index: int, plan: Plan) -> Plan | PlanRejected | None:
        if plan.is_stop:
            return None
        if plan.tool not in turn.tools:
            return PlanRejected(index, f"the model asked for an unknown tool {plan.tool!r}; concluding with what I have")
        for done_index, done in enumerate(turn.completed, 1):
            if done.command == {"name": plan.tool, "args": plan.args}:
                return PlanRejected(index, f"step {index} would repeat step {done_index}; concluding with what I have")
        return plan

    async def _execute(self, turn: _Turn, index: int, plan: Plan) -> AsyncIterator[AgentEvent]:
        yield StepPlanned(index, plan.task_name, plan.tool, plan.args)
        yield ToolStarted(index, plan.tool, plan.args)
        agent = self.settings.agent
        result = await turn.tools.invoke(
            plan.tool, plan.args, self._tool_context(turn),
            timeout=agent.tool_timeout, max_chars=agent.tool_output_chars,
        )
        turn.completed.append(TaskRecord(plan.task_name, {"name": plan.tool, "args": plan.args}, result.text))
        if result.ok:  # a refusal quotes no address worth opening
            turn.links.note(result.text)
        if turn.messages:
            turn.messages.append({"role": "tool", "content": result.text, "tool_name": plan.tool})
        yield ToolFinished(index, plan.tool, result.ok, result.text, result.display, result.elapsed)

    def _tool_context(self, turn: _Turn) -> ToolContext:
        audience = turn.request.audience
        knowledge: KnowledgeSearcher | None = None
        if self._knowledge:
            knowledge = _Traced(self._knowledge(audience), turn.sources, audience.user_scope)
        return ToolContext(
            now=turn.now, language=turn.language, settings=self.settings,
            http=self._http() if callable(self._http) else self._http,
            knowledge=knowledge, user_scope=audience.user_scope, chat_scope=audience.chat_scope,
            services=self._services, links=turn.links,
        )

    async def _conclude(self, turn: _Turn) -> AsyncIterator[str]:
        if turn.native_answer.strip() and not turn.native_answer.endswith("\n\n"):
            return  # streamed already, written with every tool result in view
        request = turn.request
        if turn.completed or turn.recall.knowledge:
            memory = prompts.memory_text(turn.recall, turn.completed, turn.language, request.audience)
            parts = prompts.concluding_prompt(request.persona, turn.now, memory, request.question, turn.language)
        else:
            history = prompts.conversation_text(turn.recall, turn.language, request.audience)
            parts = prompts.direct_prompt(request.persona, turn.now, history, request.question, turn.language)
        budget = await self._budget(turn, self._answer_tokens(turn), parts.memory)
        messages = [{"role": "user", "content": parts.render(budget)}]
        stream = cast(AsyncGenerator[str, None], self.llm.stream(messages, model=turn.model, options=turn.options))
        async with contextlib.aclosing(stream) as deltas:  # the clients' streams are generators
            async for visible in self._capped(turn, deltas):
                yield visible

    async def _capped(self, turn: _Turn, deltas: AsyncIterator[str]) -> AsyncIterator[str]:
        """An answer's visible text: thinking hidden (reasoning models, qwen3 or deepseek-r1, think
        aloud first), cut at the answer's length limit, where reading stops (the slot is freed)."""
        thinking = ThinkFilter()
        left = self._answer_chars(turn)  # thinking counts, as it does toward the server's own cap
        async for delta in deltas:
            if delta is ANSWER_CUT:
                turn.cut = True
                continue
            if len(delta) > left:  # the server ignores its cap
                delta, turn.cut = delta[:left], True
            left -= len(delta)
            if visible := thinking.feed(delta):
                yield visible
            if turn.cut:
                break
        if rest := thinking.flush():
            yield rest

    def _answer_chars(self, turn: _Turn) -> int:
        """The most characters of answer taken from the server: the output cap's worth (a persona
        that lifts the cap, num_predict <= 0, still gets llm.answer_max_tokens' worth)."""
        return self._answer_tokens(turn) * CHARS_PER_TOKEN_CEILING

    def _answer_tokens(self, turn: _Turn) -> int:
        tokens = turn.options.get("num_predict")
        if not isinstance(tokens, (int, float)) or tokens <= 0:
            tokens = self.settings.llm.answer_max_tokens
        return int(tokens)

    async def _budget(self, turn: _Turn, output_tokens: int, memory: str) -> int:
        """This request's prompt budget: agent.prompt_budget_tokens, less where the server's
        context is known to be smaller (Ollama's is llm.num_ctx, as sent, at most the model's).
        With no memory in the prompt there is nothing to trim: no waiting for the context."""
        agent = self.settings.agent
        if not memory:
            return agent.prompt_budget_tokens
        if not turn.context_read:
            turn.context, turn.context_read = await self._contexts.context(turn.model), True
        context = turn.context
        num_ctx = turn.options.get("num_ctx")
        if self.settings.llm.backend == "ollama" and isinstance(num_ctx, int) and num_ctx > 0:
            context = min(context or num_ctx, num_ctx)
        return prompt_budget(agent.prompt_budget_tokens, context, output_tokens, agent.context_share)


@dataclass(frozen=True)
class _Planned:
    """What a planning step decided (None: nothing more to do)."""

    plan: Plan | PlanRejected | None


async def _texts(replies: AsyncIterator[str | ChatReply], got: list[ChatReply]) -> AsyncGenerator[str, None]:
    """A streamed reply's text pieces; its closing ChatReply (with any tool calls) goes to `got`.
    `replies` is closed however the reading ends."""
    async with contextlib.aclosing(cast(AsyncGenerator[str | ChatReply, None], replies)) as items:
        async for item in items:
            if isinstance(item, ChatReply):
                got.append(item)
            else:
                yield item


class _Traced:
    """The knowledge base as a turn's tools see it, noting the scope of every passage handed out:
    a tool's result is derived from them, and so is the turn's record."""

    def __init__(self, inner: KnowledgeSearcher, sources: set[str], unknown: str) -> None:
        self._inner = inner
        self._sources = sources
        self._unknown = unknown  # a passage that does not say its scope counts as the asker's own

    async def search_knowledge(self, query: str, limit: int) -> Sequence[Passage]:
        passages = await self._inner.search_knowledge(query, limit)
        self._sources.update(p.scope or self._unknown for p in passages)
        return passages


def _scopes_of(recall: Recall, audience: Audience) -> set[str]:
    """The scopes of what a recall puts into the prompt (unknown ones count as the asker's own)."""
    items: tuple[Passage | Turn | TaskRecord, ...] = (*recall.knowledge, *recall.conversation, *recall.tasks)
    return {item.scope or audience.user_scope for item in items}


def _error_id() -> str:
    return uuid.uuid4().hex[:8]


class _Overdue(Exception):
    """The turn ran past agent.turn_deadline."""


async def _within(events: AsyncIterator[AgentEvent], seconds: float) -> AsyncIterator[AgentEvent]:
    """`events`, each awaited before one shared deadline. Only the awaits are timed, never the
    consumer's work between events; on expiry the awaited step (a model call, a tool) is
    cancelled, which frees its LLM slot."""
    loop = asyncio.get_running_loop()
    when = loop.time() + seconds
    while True:
        try:
            async with asyncio.timeout_at(when):
                event = await anext(events)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            if loop.time() < when:  # some step's own timeout, not the turn's
                raise
            raise _Overdue() from exc
        yield event


def shown_error(text: str, error_id: str) -> str:
    """What a user sees of an error: its first line, at most ERROR_SHOWN_CHARS (a server's error
    body can run to kilobytes); the whole of it goes to the log under `error_id`."""
    first = (text.strip().splitlines() or [""])[0]
    if len(first) > ERROR_SHOWN_CHARS:
        first = first[: ERROR_SHOWN_CHARS - 1].rstrip() + "…"
    return f"{first} (error id {error_id})"


def _message_tokens(message: dict[str, Any]) -> int:
    calls = message.get("tool_calls")
    return prompts.estimate_tokens(message.get("content") or "") + (
        prompts.estimate_tokens(json.dumps(calls, ensure_ascii=False)) if calls else 0)


async def collect(events: AsyncIterator[AgentEvent]) -> list[AgentEvent]:
    """Every event of a turn, in order (for scripts and tests)."""
    return [event async for event in events]


def final_answer(events: Sequence[AgentEvent]) -> str | None:
    done = [e for e in events if isinstance(e, AnswerDone)]
    return done[-1].text if done else None


def _purpose(tool) -> str:
    """A task name for a native tool call that came without words: what the tool is for (its
    description's first clause), since the step line shows the call itself beside it."""
    if tool is None or not tool.description:
        return ""
    first = tool.description.strip().splitlines()[0]
    for stop in (", e.g.", ". ", "; "):
        first = first.split(stop)[0]
    return first.rstrip(".")[:100]
