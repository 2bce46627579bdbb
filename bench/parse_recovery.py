"""How many realistic planning replies the parser recovers (corpus: tests/core/plan_corpus.jsonl).

    python bench/parse_recovery.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.agent.parsing import PlanParseError, parse_plan  # noqa: E402


def main() -> None:
    corpus = [json.loads(line) for line in (ROOT / "tests/core/plan_corpus.jsonl").read_text().splitlines()]
    recoverable = [c for c in corpus if c["tool"] is not None]
    recovered = 0
    for case in recoverable:
        try:
            plan = parse_plan(case["raw"])
        except PlanParseError:
            continue
        recovered += (plan.tool, plan.args) == (case["tool"], case["args"])
    refused = 0
    for case in (c for c in corpus if c["tool"] is None):
        try:
            parse_plan(case["raw"])
        except PlanParseError:
            refused += 1
    garbage = len(corpus) - len(recoverable)
    print(f"recovered {recovered}/{len(recoverable)} recoverable replies ({recovered / len(recoverable):.1%}); "
          f"refused {refused}/{garbage} replies holding no task")


if __name__ == "__main__":
    main()
