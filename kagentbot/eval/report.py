"""Reports: what model and settings were used, then the table (×100, two decimals, as the paper
prints it), on the terminal, as JSON and as Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kagentbot.config.settings import Settings
from kagentbot.eval.score import ABILITIES, ScoreTable

LABELS = {"plan": "Planning", "tooluse": "Tool-use", "reflection": "Reflection", "conclusion": "Concluding",
          "profile": "Profile", "overall": "Overall"}


def run_header(settings: Settings, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model and every setting that changes a score."""
    llm, e = settings.llm, settings.eval
    header = {"model": llm.model, "backend": llm.backend, "host": llm.host, "mode": llm.mode,
              "temperature": e.temperature, "top_p": e.top_p, "top_k": e.top_k, "num_ctx": llm.num_ctx,
              "max_input_tokens": e.max_input_tokens, "max_output_tokens": e.max_output_tokens,
              "concurrency": e.concurrency}
    return {**header, **(extra or {})}


def _settings_file(predictions: Path) -> Path:
    return predictions.with_name(predictions.name + ".settings.json")


def save_run_settings(predictions: Path, header: dict[str, Any]) -> None:
    """Beside PRED.jsonl (whose lines keep KAgentBench's format), so `score` reports the run's settings."""
    predictions.parent.mkdir(parents=True, exist_ok=True)
    _settings_file(predictions).write_text(json.dumps(header, ensure_ascii=False, indent=1), "utf-8")


def saved_run_settings(predictions: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(_settings_file(predictions).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def header_lines(header: dict[str, Any]) -> list[str]:
    return [f"{key}: {value}" for key, value in header.items()]


def pct(value: float) -> str:
    return f"{value * 100:.2f}"


def table_rows(table: ScoreTable) -> list[tuple[str, str, str]]:
    """(ability, score ×100, cases) for each ability, then Overall."""
    rows = [(LABELS[a], pct(table.abilities[a]) if a in table.abilities else "–", str(table.counts.get(a, 0)))
            for a in ABILITIES]
    rows.append((LABELS["overall"], pct(table.overall), str(len(table.cases))))
    return rows


def markdown(table: ScoreTable, header: dict[str, Any]) -> str:
    lines = ["# KAgentBench-format evaluation", "", *(f"- {line}" for line in header_lines(header)), ""]
    lines += ["| Ability | Score | Cases |", "|---|---:|---:|"]
    lines += [f"| {a} | {s} | {n} |" for a, s, n in table_rows(table)]
    if table.by_template:
        lines += ["", "| Template | " + " | ".join(LABELS[a] for a in ABILITIES) + " |",
                  "|---|" + "---:|" * len(ABILITIES)]
        for template, scores in sorted(table.by_template.items()):
            cells = [pct(scores[a]) if a in scores else "–" for a in ABILITIES]
            lines.append(f"| {template} | " + " | ".join(cells) + " |")
    if table.missing:
        lines += ["", f"Cases without a prediction (scored 0): {', '.join(table.missing)}"]
    return "\n".join(lines) + "\n"


def as_json(table: ScoreTable, header: dict[str, Any]) -> dict[str, Any]:
    return {
        "settings": header,
        "scores": {a: round(table.abilities[a] * 100, 2) for a in ABILITIES if a in table.abilities}
        | {"overall": round(table.overall * 100, 2)},
        "counts": table.counts,
        "by_template": {t: {a: round(v * 100, 2) for a, v in s.items()} for t, s in table.by_template.items()},
        "missing": list(table.missing),
        "cases": [asdict(case) for case in table.cases],
    }


def write_reports(table: ScoreTable, header: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    """STEM.json and STEM.md; returns their paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(as_json(table, header), ensure_ascii=False, indent=1), "utf-8")
    md_path.write_text(markdown(table, header), "utf-8")
    return json_path, md_path


def print_table(console: Any, table: ScoreTable, header: dict[str, Any]) -> None:
    from rich.table import Table

    for line in header_lines(header):
        console.print(line, markup=False, highlight=False)
    shown = Table("Ability", "Score", "Cases")
    for row in table_rows(table):
        shown.add_row(*row)
    console.print(shown)
    if table.missing:
        console.print(f"{len(table.missing)} case(s) had no prediction and scored 0", markup=False)


def e2e_header(settings: Settings) -> dict[str, Any]:
    """End to end the bot runs as configured: its own sampling, steps and embedder."""
    llm = settings.llm
    return {"model": llm.model, "backend": llm.backend, "host": llm.host, "mode": llm.mode,
            "temperature": llm.temperature, "top_p": llm.top_p, "top_k": llm.top_k, "num_ctx": llm.num_ctx,
            "max_steps": settings.agent.max_steps, "embedder": settings.embed.backend, "concurrency": settings.eval.concurrency}


def e2e_summary(report: Any) -> dict[str, Any]:
    n = len(report.outcomes)
    return {
        "questions": n, "correct": sum(o.correct for o in report.outcomes), "accuracy_pct": round(report.accuracy * 100, 2),
        "steps_per_question": round(report.mean("steps"), 2), "tool_calls": report.total("tool_calls"),
        "tool_failures": report.total("tool_failures"), "parse_failures": report.total("parse_failures"),
        "other_rejections": report.total("other_rejections"), "errors": sum(bool(o.error) for o in report.outcomes),
        "grounded": sum(o.grounded for o in report.outcomes),
        "seconds_per_question": round(report.mean("seconds"), 3), "wall_seconds": round(report.elapsed, 2),
    }


def e2e_by_category(report: Any) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for o in report.outcomes:
        right, total = found.get(o.category, (0, 0))
        found[o.category] = (right + o.correct, total + 1)
    return found


def e2e_markdown(report: Any, header: dict[str, Any]) -> str:
    summary = e2e_summary(report)
    lines = ["# End-to-end evaluation", "", *(f"- {line}" for line in header_lines(header)), "",
             "| Measure | Value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in summary.items()), "",
             "| Category | Right | Questions |", "|---|---:|---:|"]
    lines += [f"| {c} | {r} | {t} |" for c, (r, t) in sorted(e2e_by_category(report).items())]
    failures = [o for o in report.outcomes if not o.correct]
    if failures:
        lines += ["", "## Failures", ""]
        for o in failures:
            lines += [f"### {o.id}: {o.question}", f"- expected one of: {', '.join(o.expect)}",
                      f"- answer: {o.answer or '(none)'}" + (f"\n- error: {o.error}" if o.error else ""),
                      "- trace:" if o.trace else "- trace: (no task planned)", *(f"    {line}" for line in o.trace), ""]
    return "\n".join(lines) + "\n"


def write_e2e(report: Any, header: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    body = {"settings": header, "summary": e2e_summary(report),
            "outcomes": [asdict(o) for o in report.outcomes]}
    json_path.write_text(json.dumps(body, ensure_ascii=False, indent=1), "utf-8")
    md_path.write_text(e2e_markdown(report, header), "utf-8")
    return json_path, md_path
