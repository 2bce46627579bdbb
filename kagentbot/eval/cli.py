"""`kagentbot eval run|score|e2e`."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kagentbot.eval.bench import OURSET, TYPES

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

NOTE = ("Measure answer quality. `run` sends a KAgentBench-format set's prompts to the configured model "
        "and writes its replies; `score` computes KAgentBench's metric; `e2e` runs checkable questions "
        "through the whole loop with network tools answered from recorded fixtures on loopback.")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("eval", help="measure answer quality (KAgentBench format, end to end)", description=NOTE)
    actions = parser.add_subparsers(dest="eval_action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="send a set's prompts to the model and write its predictions", description=NOTE)
    run.add_argument("data", nargs="?", type=Path, default=OURSET, help="KAgentBench-format JSONL (default: our own set)")
    run.add_argument("--out", type=Path, required=True, help="predictions JSONL; an existing one is resumed")
    _selection(run)
    run.add_argument("--concurrency", type=int, help="cases at once (default: eval.concurrency)")
    run.add_argument("--restart", action="store_true", help="discard an existing output instead of resuming it")
    score = actions.add_parser("score", help="score predictions with KAgentBench's metric", description=NOTE)
    score.add_argument("data", type=Path, help="the set the predictions answer")
    score.add_argument("predictions", type=Path)
    _selection(score)
    score.add_argument("--report", type=Path, help="write STEM.json and STEM.md (default: beside the predictions)")
    e2e = actions.add_parser("e2e", help="end-to-end accuracy on checkable questions, offline", description=NOTE)
    e2e.add_argument("--set", dest="data", type=Path, help="e2e questions JSONL (default: the shipped set)")
    e2e.add_argument("--limit", type=int, help="only the first N questions")
    e2e.add_argument("--categories", type=_csv, default=[], help="only these categories, e.g. weather,holidays")
    e2e.add_argument("--concurrency", type=int, help="questions at once (default: eval.concurrency)")
    e2e.add_argument("--report", type=Path, default=Path("e2e-report"), help="write STEM.json and STEM.md")
    parser.set_defaults(func=run_eval)


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="only the first N cases (after --types and --templates)")
    parser.add_argument("--types", type=_csv, default=[], help=f"only these types: {', '.join(TYPES)}")
    parser.add_argument("--templates", type=_csv, default=[],
                        help="only these prompt templates, e.g. KuaiAgent,ReACT (profile cases have one prompt and always count)")


async def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from kagentbot.agent.llm import LLMError
    from kagentbot.eval.bench import BenchError

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if getattr(args, "concurrency", None):
        settings = settings.model_copy(update={"eval": settings.eval.model_copy(update={"concurrency": args.concurrency})})
    try:
        _check_types(args)
        action = {"run": _run, "score": _score, "e2e": _e2e}[args.eval_action]
        return await action(args, settings, console)
    except BenchError as exc:
        console.print(f"kagentbot eval: {exc}", markup=False)
        return 2
    except LLMError as exc:  # a failed call stops the run; what was written is kept for resuming
        again = "; run the same command again to resume" if args.eval_action == "run" else ""
        console.print(f"kagentbot eval: {exc}{again}", markup=False)
        return 1


def _check_types(args: argparse.Namespace) -> None:
    from kagentbot.eval.bench import BenchError

    unknown = [t for t in getattr(args, "types", []) if t not in TYPES]
    if unknown:
        raise BenchError(f"unknown --types {', '.join(unknown)}: choose from {', '.join(TYPES)}")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise BenchError("--limit must be at least 1")


async def _run(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    from kagentbot.agent.llm import make_client
    from kagentbot.eval.bench import load_items, select
    from kagentbot.eval.report import header_lines, run_header, save_run_settings
    from kagentbot.eval.runner import BenchRun

    items = select(load_items(args.data), args.types, args.limit, args.templates)
    if args.restart and args.out.exists():
        args.out.unlink()
    header = run_header(settings, {"data": str(args.data), "cases": len(items)})
    for line in header_lines(header):
        console.print(line, markup=False)
    save_run_settings(args.out, header)
    llm = make_client(settings.llm)
    try:
        with ProgressBar(console, "cases", len(items)) as advance:
            result = await BenchRun(settings, llm, args.templates, on_done=lambda _: advance()).run(items, args.out)
    finally:
        await llm.close()
    per = result.elapsed / result.written if result.written else 0.0
    console.print(f"wrote {result.written} case(s) to {args.out} ({result.skipped} already there) "
                  f"in {result.elapsed:.1f} s, {per:.2f} s per case, {result.calls} model calls. "
                  f"Next: kagentbot eval score {args.data} {args.out}", markup=False)
    return 0


async def _score(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    import asyncio

    from rich.console import Console

    from kagentbot.eval.bench import BenchError, load_items, load_predictions, select
    from kagentbot.eval.report import print_table, run_header, saved_run_settings, write_reports
    from kagentbot.eval.score import score_all

    items = select(load_items(args.data), args.types, args.limit, args.templates)
    predictions = load_predictions(args.predictions)
    if not predictions:
        raise BenchError(f"{args.predictions} holds no predictions: write them with `kagentbot eval run`")
    table = await asyncio.to_thread(score_all, items, predictions, args.templates)
    header = (saved_run_settings(args.predictions) or run_header(settings, {"data": str(args.data)})) \
        | {"predictions": str(args.predictions)}
    print_table(Console(highlight=False, soft_wrap=True), table, header)
    stem = args.report or args.predictions.with_name(args.predictions.stem + ".score")
    json_path, md_path = write_reports(table, header, stem)
    console.print(f"wrote {json_path} and {md_path}", markup=False)
    return 0


async def _e2e(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    from rich.console import Console

    from kagentbot.eval.e2e import E2E_SET, load_cases, run_e2e
    from kagentbot.eval.report import e2e_header, e2e_summary, header_lines, write_e2e

    data = args.data or E2E_SET
    count = len([c for c in load_cases(data) if not args.categories or c.category in args.categories][: args.limit])
    header = e2e_header(settings) | {"set": str(data)}
    out = Console(highlight=False, soft_wrap=True)
    for line in header_lines(header):
        out.print(line, markup=False)
    with ProgressBar(console, "questions", count) as advance:
        report = await run_e2e(settings, data, limit=args.limit, categories=args.categories, on_done=lambda _: advance())
    for key, value in e2e_summary(report).items():
        out.print(f"{key}: {value}", markup=False)
    for o in report.outcomes:
        if not o.correct:
            out.print(f"✗ {o.id} {o.question} → {' '.join(o.answer.split())[:200] or o.error or '(no answer)'}", markup=False)
    json_path, md_path = write_e2e(report, header, args.report)
    console.print(f"wrote {json_path} and {md_path} (failures in full)", markup=False)
    return 0


class ProgressBar:
    """A progress bar on stderr (plain when it is not a terminal); yields `advance()`."""

    def __init__(self, console: Any, unit: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(unit), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=console, disable=not console.is_terminal)
        self._task = self._bar.add_task(unit, total=total)

    def __enter__(self) -> Any:
        self._bar.__enter__()
        return lambda: self._bar.advance(self._task)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.__exit__(kind, exc, tb)
