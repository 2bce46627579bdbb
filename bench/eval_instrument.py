"""A check of the eval instrument, not of a model: our KAgentBench-format set and the e2e set run
against the fake Ollama server with a scripted perfect model and a garbage model, side by side.
Prints each score table (×100), the e2e accuracy, and the time per item (what our own code costs
per case: prompt fitting, HTTP to the fake, parsing, tools on loopback, LanceDB recall).

    python bench/eval_instrument.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kagentbot.agent.llm import make_client  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.eval.bench import load_items, load_predictions  # noqa: E402
from kagentbot.eval.e2e import E2E_SET, load_cases, run_e2e  # noqa: E402
from kagentbot.eval.ourset import OURSET  # noqa: E402
from kagentbot.eval.report import e2e_summary, table_rows  # noqa: E402
from kagentbot.eval.runner import BenchRun  # noqa: E402
from kagentbot.eval.score import score_all  # noqa: E402
from tests.eval.scripted import PerfectAgent, PerfectBench, garbage  # noqa: E402
from tests.fakes.ollama_server import FakeOllama  # noqa: E402


async def bench_set(fake: FakeOllama, responder, settings, items) -> tuple[list, float]:
    fake.responder = responder
    out = Path(tempfile.mkdtemp()) / "pred.jsonl"
    llm = make_client(settings.llm)
    try:
        result = await BenchRun(settings, llm).run(items, out)
    finally:
        await llm.close()
    started = time.perf_counter()
    table = score_all(items, load_predictions(out))
    scoring = time.perf_counter() - started
    return table_rows(table), (result.elapsed / len(items), scoring / len(items))


async def main() -> None:
    items = load_items(OURSET)
    cases = load_cases(E2E_SET)
    async with FakeOllama() as fake:
        settings = load_settings(environ={}, data_dir=Path(tempfile.mkdtemp()), llm={"host": fake.url},
                                 embed={"backend": "ollama", "model": "kagentlm"})
        print(f"our set: {len(items)} cases, eval.concurrency={settings.eval.concurrency}, fake Ollama on loopback")
        perfect, perfect_t = await bench_set(fake, PerfectBench(items), settings, items)
        junk, junk_t = await bench_set(fake, garbage, settings, items)
        print(f"{'ability':<12}{'perfect':>10}{'garbage':>10}   cases")
        for (name, p, n), (_, g, _) in zip(perfect, junk):
            print(f"{name:<12}{p:>10}{g:>10}   {n}")
        print(f"time per case: run {perfect_t[0] * 1000:.1f} ms (perfect) / {junk_t[0] * 1000:.1f} ms (garbage); "
              f"scoring {perfect_t[1] * 1000:.1f} ms / {junk_t[1] * 1000:.1f} ms")
        results = {}
        for label, responder in (("perfect", PerfectAgent(cases)), ("garbage", garbage)):
            fake.responder = responder
            results[label] = e2e_summary(await run_e2e(settings))
        print(f"\ne2e: {len(cases)} questions through the whole loop (tools on loopback fixtures, LanceDB memory)")
        keys = ("accuracy_pct", "correct", "steps_per_question", "tool_calls", "tool_failures", "parse_failures",
                "grounded", "seconds_per_question", "wall_seconds")
        print(f"{'measure':<22}{'perfect':>10}{'garbage':>10}")
        for key in keys:
            print(f"{key:<22}{results['perfect'][key]:>10}{results['garbage'][key]:>10}")


if __name__ == "__main__":
    asyncio.run(main())
