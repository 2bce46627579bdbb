"""How many realistic planning replies the parser recovers (corpus: tests/core/plan_corpus.jsonl),
and how many task-less replies (echoes, prose, placeholders) it refuses; overall and per source
(entries with a `source` came from a real model server, see bench/real_model.sh).

    python bench/parse_recovery.py
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.agent.parsing import PlanParseError, parse_plan  # noqa: E402


def score(cases: list[dict]) -> tuple[int, int, int, int]:
    """(recovered, recoverable, refused, task-less)."""
    recovered = refused = 0
    for case in cases:
        try:
            plan = parse_plan(case["raw"])
        except PlanParseError:
            refused += case["tool"] is None
            continue
        recovered += case["tool"] is not None and (plan.tool, plan.args) == (case["tool"], case["args"])
    recoverable = sum(case["tool"] is not None for case in cases)
    return recovered, recoverable, refused, len(cases) - recoverable


def line(name: str, cases: list[dict]) -> str:
    recovered, recoverable, refused, garbage = score(cases)
    share = f" ({recovered / recoverable:.1%})" if recoverable else ""
    return (f"{name}: recovered {recovered}/{recoverable} recoverable replies{share}; "
            f"refused {refused}/{garbage} replies holding no task")


def main() -> None:
    corpus = [json.loads(line) for line in (ROOT / "tests/core/plan_corpus.jsonl").read_text().splitlines()]
    print(line("all", corpus))
    by_source: dict[str, list[dict]] = defaultdict(list)
    for case in corpus:
        by_source[case.get("source", "hand-collected")].append(case)
    for source, cases in sorted(by_source.items()):
        print(line(f"  {source}", cases))


if __name__ == "__main__":
    main()
