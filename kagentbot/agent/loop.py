"""The KAgentSys loop: retrieve memory → plan one task → run its tool → … → conclude → remember.
An async generator of typed events; it never raises for the model's or a tool's faults."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

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
from kagentbot.agent.llm import ANSWER_CUT, LLMClient, LLMError, sampling_options
from kagentbot.agent.parsing import Plan, PlanParseError, ThinkFilter, parse_plan, strip_thinking
from kagentbot.config.settings import Settings
from kagentbot.memory.types import Audience, MemoryView, Recall, TaskRecord
from kagentbot.persona.model import DEFAULT_PERSONA, Persona
from kagentbot.tools.registry import KnowledgeSearcher, ToolContext, ToolRegistry

log = logging.getLogger(__name__)

# After an answer the server stopped at llm.answer_max_tokens, so nobody takes it for complete.
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
    messages: list[dict[str, Any]] = field(default_factory=list)  # native mode only
    native_answer: str = ""  # native mode: the model answered instead of calling a tool
    cut: bool = False  # the answer reached the output cap: the user is told, the memory is not


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
    ) -> None:
        self.settings = settings
        self.llm = llm
        self.tools = tools
        self.memory = memory
        self._http = http
        self._knowledge = knowledge
        self._services = services

    async def run(self, request: TurnRequest) -> AsyncIterator[AgentEvent]:
        started = time.perf_counter()
        try:
            async for event in self._run(request, started):
                yield event
        except LLMError as exc:
            yield Failed(str(exc), _error_id(), exc.retryable)
        except Exception:
            error_id = _error_id()
            log.exception("turn failed (error id %s) for %s", error_id, request.audience.user_scope)
            yield Failed(f"Sorry, something went wrong on my side (error id {error_id}).", error_id)

    async def _run(self, request: TurnRequest, started: float) -> AsyncIterator[AgentEvent]:
        turn = self._start(request)
        planner = self._plan_native if self.settings.llm.mode == "native" else self._plan_kagent
        for index in range(1, turn.max_steps + 1):
            await self._refresh_memory(turn)
            plan = await planner(turn, index)
            if isinstance(plan, PlanRejected):
                yield plan
                break
            if plan is None or plan.is_stop:
                break
            async for event in self._execute(turn, index, plan):
                yield event
        answer = ""
        async for delta in self._conclude(turn):
            answer += delta
            yield AnswerDelta(delta)
        if self.memory is not None:  # the bot's own "(cut off …)" note is not the model's words
            said = answer.removesuffix(CUT_NOTE[turn.language]) if turn.cut else answer
            await self._remember(request, said, turn.completed)
        yield AnswerDone(answer, len(turn.completed), time.perf_counter() - started)

    async def _remember(self, request: TurnRequest, answer: str, completed: Sequence[TaskRecord]) -> None:
        # A store that can write in the background (and waits for it before the next read of
        # these scopes) lets the turn end as soon as its answer is out.
        soon = getattr(self.memory, "remember_soon", None)
        if soon is not None:
            soon(request.audience, request.question, answer, tuple(completed))
        else:
            await self.memory.remember(request.audience, request.question, answer, completed)

    def _start(self, request: TurnRequest) -> _Turn:
        persona = request.persona
        language = persona.language if persona.language != "auto" else prompts.detect_language(request.question)
        now = request.now or datetime.now(timezone.utc).astimezone()
        return _Turn(
            request=request, language=language, now=now,
            model=persona.model or self.settings.llm.model,
            options=sampling_options(self.settings.llm, persona.options),
            tools=self.tools.subset(persona.tools),
            max_steps=persona.max_steps or self.settings.agent.max_steps,
        )

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

    async def _plan_kagent(self, turn: _Turn, index: int) -> Plan | PlanRejected | None:
        specs = [t.function_spec() for t in turn.tools.tools()]
        memory = prompts.memory_text(turn.recall, turn.completed, turn.language)
        parts = prompts.planning_prompt(
            turn.request.persona, specs, turn.now, memory, turn.request.question, turn.max_steps, turn.language
        )
        prompt = parts.render(self.settings.agent.prompt_budget_tokens)
        options = {**turn.options, "num_predict": self.settings.llm.plan_max_tokens}  # a task is a few lines of JSON
        schema = prompts.plan_schema(specs) if self.settings.llm.constrained_planning else None
        reply = await self.llm.complete([{"role": "user", "content": prompt}], model=turn.model, options=options,
                                        schema=schema)
        try:
            plan = parse_plan(reply.content)
        except PlanParseError as exc:
            return PlanRejected(index, f"{exc}; concluding with what I have", reply.content[:500])
        return self._check(turn, index, plan)

    async def _plan_native(self, turn: _Turn, index: int) -> Plan | PlanRejected | None:
        if not turn.messages:
            turn.messages = self._native_opening(turn)
        specs = [t.function_spec() for t in turn.tools.tools()]
        reply = await self.llm.complete(turn.messages, model=turn.model, options=turn.options, tools=specs or None)
        if not reply.tool_calls:
            turn.native_answer, turn.cut = strip_thinking(reply.content), reply.cut
            return None
        call = reply.tool_calls[0]  # one task at a time, as KAgentSys plans
        turn.messages.append({"role": "assistant", "content": reply.content or "",
                              "tool_calls": [{"function": {"name": call.name, "arguments": call.arguments}}]})
        task_name = reply.content.strip() or _purpose(turn.tools.get(call.name)) or call.name
        return self._check(turn, index, Plan(task_name[:200], call.name, call.arguments))

    def _native_opening(self, turn: _Turn) -> list[dict[str, Any]]:
        language = turn.language
        system = "\n\n".join([
            prompts.persona_block(turn.request.persona, language),
            prompts.describe_now(turn.now, language),
            prompts.CONCLUDING_STAGE[language].split("\n", 1)[1],
            "Call a tool when you lack a fact; answer directly once you know enough." if language == "en"
            else "缺少事实时调用工具；信息足够时直接回答。",
        ])
        memory = prompts.memory_text(turn.recall, (), language)
        user = f"{memory}\n\nGOAL: {turn.request.question}" if turn.recall != Recall() else turn.request.question
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

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
        if turn.messages:
            turn.messages.append({"role": "tool", "content": result.text, "tool_name": plan.tool})
        yield ToolFinished(index, plan.tool, result.ok, result.text, result.display, result.elapsed)

    def _tool_context(self, turn: _Turn) -> ToolContext:
        audience = turn.request.audience
        knowledge: KnowledgeSearcher | None = self._knowledge(audience) if self._knowledge else None
        return ToolContext(
            now=turn.now, language=turn.language, settings=self.settings,
            http=self._http() if callable(self._http) else self._http,
            knowledge=knowledge, user_scope=audience.user_scope, chat_scope=audience.chat_scope,
            services=self._services,
        )

    async def _conclude(self, turn: _Turn) -> AsyncIterator[str]:
        if turn.native_answer.strip():
            yield turn.native_answer  # already written with every tool result in view
            if turn.cut:
                yield CUT_NOTE[turn.language]
            return
        request, budget = turn.request, self.settings.agent.prompt_budget_tokens
        if turn.completed or turn.recall.knowledge:
            memory = prompts.memory_text(turn.recall, turn.completed, turn.language)
            parts = prompts.concluding_prompt(request.persona, turn.now, memory, request.question, turn.language)
        else:
            history = prompts.conversation_text(turn.recall, turn.language)
            parts = prompts.direct_prompt(request.persona, turn.now, history, request.question, turn.language)
        messages = [{"role": "user", "content": parts.render(budget)}]
        thinking = ThinkFilter()  # reasoning models (qwen3, deepseek-r1) think aloud before answering
        cut = False
        async for delta in self.llm.stream(messages, model=turn.model, options=turn.options):
            if delta is ANSWER_CUT:
                cut = True
            elif visible := thinking.feed(delta):
                yield visible
        if rest := thinking.flush():
            yield rest
        if cut:
            turn.cut = True
            yield CUT_NOTE[turn.language]


def _error_id() -> str:
    return uuid.uuid4().hex[:8]


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
