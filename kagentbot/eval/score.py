"""KAgentBench's metric, from its definition. Per case, each template's reply is scored against
every golden answer and the best one counts; a case's score is the mean over its templates, an
ability's the mean over its cases, and the overall score weighs the abilities as published."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kagentbot.eval.bench import PROFILE_KEY, BenchItem
from kagentbot.eval.plans import PlanGuess, parse_for_template
from kagentbot.eval.rouge import rouge_l

ABILITIES = ("plan", "tooluse", "reflection", "conclusion", "profile")
WEIGHTS = {"plan": 0.25, "tooluse": 0.35, "reflection": 0.1, "conclusion": 0.2, "profile": 0.1}
REFLECTION_THOUGHT, REFLECTION_ARGS = 0.3, 0.7


@dataclass(frozen=True)
class CaseScore:
    id: str
    type: str
    scores: dict[str, float]  # ability → mean over templates
    by_template: dict[str, dict[str, float]] = field(default_factory=dict)
    unparsed: tuple[str, ...] = ()  # templates whose reply held no plan


@dataclass(frozen=True)
class ScoreTable:
    abilities: dict[str, float]  # ability → mean over cases (0..1); absent when no case has it
    counts: dict[str, int]
    overall: float
    cases: tuple[CaseScore, ...]
    missing: tuple[str, ...]  # ids with no prediction (scored 0)
    by_template: dict[str, dict[str, float]] = field(default_factory=dict)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _same_tool(golden: Mapping[str, Any], guess: PlanGuess) -> bool:
    return str(golden.get("tool_name") or "").strip() == guess.tool.strip()


def plan_score(golden: Sequence[Mapping[str, Any]], guess: PlanGuess | None) -> float:
    """max over golden answers of ROUGE-L(thought) × EM(tool name); answers naming None skipped."""
    usable = [g for g in golden if g.get("thought") is not None and g.get("tool_name") is not None]
    if guess is None or not usable:
        return 0.0
    return max(rouge_l(guess.thought, _text(g["thought"])) * _same_tool(g, guess) for g in usable)


def args_score(golden_args: Any, predicted: Mapping[str, Any]) -> float:
    """Mean ROUGE-L over the golden argument values (a key the reply lacks scores 0); 1 when both
    sides have no arguments, 0 when only one side has none."""
    golden_args = _as_args(golden_args)
    if not golden_args:
        return 1.0 if not predicted else 0.0
    per_key = [rouge_l(_text(predicted[k]), _text(v)) if k in predicted else 0.0 for k, v in golden_args.items()]
    return sum(per_key) / len(per_key)


def _as_args(value: Any) -> Mapping[str, Any]:
    """Golden arguments as an object; some data files carry them JSON-encoded."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, Mapping) else {}


def tooluse_score(golden: Sequence[Mapping[str, Any]], guess: PlanGuess | None) -> float:
    usable = [g for g in golden if g.get("tool_name") is not None]
    if guess is None or not usable:
        return 0.0
    return max(args_score(g.get("tool_args"), guess.args) * _same_tool(g, guess) for g in usable)


def _repeats(golden: Mapping[str, Any], last_task: Mapping[str, Any]) -> bool:
    return bool(last_task) and golden.get("tool_name") == last_task.get("tool_name") \
        and _as_args(golden.get("tool_args")) == _as_args(last_task.get("tool_args"))


def reflection_score(golden: Sequence[Mapping[str, Any]], guess: PlanGuess | None, last_task: Mapping[str, Any]) -> float:
    """max of 0.3·EM·ROUGE-L(thought) + 0.7·EM·args; a golden answer that repeats the last task counts 0."""
    usable = [g for g in golden if g.get("thought") is not None and g.get("tool_name") is not None]
    if guess is None or not usable:
        return 0.0
    best = 0.0
    for g in usable:
        if _repeats(g, last_task) or not _same_tool(g, guess):
            continue
        thought = rouge_l(guess.thought, _text(g["thought"]))
        best = max(best, REFLECTION_THOUGHT * thought + REFLECTION_ARGS * args_score(g.get("tool_args"), guess.args))
    return best


def _golden_texts(golden: Sequence[Any]) -> list[str]:
    texts = []
    for g in golden:
        texts.append(_text(g.get("golden_result")) if isinstance(g, Mapping) else _text(g))
    return texts


def text_score(golden: Sequence[Any], reply: str) -> float:
    """Conclusion and profile: the best ROUGE-L over the golden results."""
    return max((rouge_l(reply, g) for g in _golden_texts(golden)), default=0.0)


def _replies(item: BenchItem, predicted: Any, templates: Sequence[str] = ()) -> dict[str, str]:
    """template → reply, for the case's templates (those of them in `templates`, if given); a
    template without a reply gets the empty reply (scored 0)."""
    if item.type == "profile":
        reply = predicted if isinstance(predicted, str) else (predicted or {}).get(PROFILE_KEY, "")
        return {PROFILE_KEY: _text(reply)}
    predicted = predicted if isinstance(predicted, Mapping) else {}
    return {name: _text(predicted.get(name, "")) for name in item.templates if not templates or name in templates}


def score_case(item: BenchItem, predicted: Any, templates: Sequence[str] = ()) -> CaseScore:
    per: dict[str, dict[str, float]] = {}
    unparsed = []
    for template, reply in _replies(item, predicted, templates).items():
        if item.type in ("conclusion", "profile"):
            per[template] = {item.type: text_score(item.golden, reply)}
            continue
        guess = parse_for_template(template, reply)
        if guess is None:
            unparsed.append(template)
        if item.type == "plantooluse":
            per[template] = {"plan": plan_score(item.golden, guess), "tooluse": tooluse_score(item.golden, guess)}
        else:
            per[template] = {"reflection": reflection_score(item.golden, guess, item.last_task)}
    abilities = {a for scores in per.values() for a in scores}
    means = {a: sum(s[a] for s in per.values()) / len(per) for a in abilities}  # select() keeps only cases with a template
    return CaseScore(item.id, item.type, means, per, tuple(unparsed))


def score_all(items: Sequence[BenchItem], predictions: Mapping[str, Any], templates: Sequence[str] = ()) -> ScoreTable:
    """`items` as `bench.select` chose them; `templates` (if given) limits each case's templates."""
    cases = tuple(score_case(item, predictions.get(item.id), templates) for item in items)
    sums: dict[str, list[float]] = {}
    per_template: dict[str, dict[str, list[float]]] = {}
    for case in cases:
        for ability, value in case.scores.items():
            sums.setdefault(ability, []).append(value)
        for template, scores in case.by_template.items():
            for ability, value in scores.items():
                per_template.setdefault(template, {}).setdefault(ability, []).append(value)
    abilities = {a: sum(v) / len(v) for a, v in sums.items()}
    overall = sum(WEIGHTS[a] * abilities.get(a, 0.0) for a in ABILITIES)
    missing = tuple(item.id for item in items if item.id not in predictions)
    by_template = {t: {a: sum(v) / len(v) for a, v in s.items()} for t, s in per_template.items()}
    return ScoreTable(abilities, {a: len(v) for a, v in sums.items()}, overall, cases, missing, by_template)
