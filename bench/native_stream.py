"""How soon a direct answer in native mode reaches the user: time to the first answer character
and to the whole answer, against the fake Ollama and OpenAI-compatible servers sending the answer
in small pieces with a pause between them (as a model generates it).

    python bench/native_stream.py [--turns 5] [--pieces 40] [--interval 0.02] [--compare OLD_CHECKOUT]

`--compare DIR` runs the same turns, in turn, with the kagentbot package of another checkout
(e.g. `mkdir /tmp/base && git archive BASE kagentbot | tar -x -C /tmp/base`): before and after
side by side on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # each run imports kagentbot through its PYTHONPATH

ANSWER = "Bonjour ! "  # repeated to the length asked


async def one_backend(backend: str, turns: int, pieces: int, interval: float) -> dict[str, float]:
    from kagentbot.agent.events import AnswerDelta, AnswerDone
    from kagentbot.agent.llm import make_client
    from kagentbot.agent.loop import Agent, TurnRequest
    from kagentbot.config.settings import Settings
    from kagentbot.memory.types import Audience
    from kagentbot.tools.registry import ToolRegistry
    from kagentbot.tools.timetools import TIME_TOOLS
    from tests.fakes.ollama_server import FakeModel, FakeOllama, Scripted
    from tests.fakes.openai_server import FakeOpenAI

    server = (FakeOllama([FakeModel("m", capabilities=("completion", "tools"))]) if backend == "ollama"
              else FakeOpenAI(("m",)))
    text = (ANSWER * pieces)[: 6 * pieces]
    first, whole = [], []
    async with server:
        llm = {"host": server.url, "mode": "native", "model": "m", "backend": backend}
        settings = Settings(llm=llm, data_dir=tempfile.mkdtemp())
        client = make_client(settings.llm)
        agent = Agent(settings, client, ToolRegistry(TIME_TOOLS))
        for _ in range(turns):
            server.script(Scripted(text, chunk=6, interval=interval))
            started, seen = time.perf_counter(), None
            async for event in agent.run(TurnRequest("Say hello in French", Audience("user:console:bench"))):
                if isinstance(event, AnswerDelta) and seen is None:
                    seen = time.perf_counter() - started
                if isinstance(event, AnswerDone):
                    whole.append(time.perf_counter() - started)
            first.append(seen or float("nan"))
        await client.close()
    # the first turn also reads the model's context size (once per model)
    return {"first": statistics.median(first), "whole": statistics.median(whole), "turn1": first[0]}


def child(args) -> None:
    import kagentbot

    print(f"kagentbot from {Path(kagentbot.__file__).parent}", file=sys.stderr)
    figures = {b: asyncio.run(one_backend(b, args.turns, args.pieces, args.interval)) for b in ("ollama", "openai")}
    print(json.dumps(figures))


def run_with(package_root: Path, args) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{package_root}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, __file__, "--child", "--turns", str(args.turns), "--pieces", str(args.pieces),
                          "--interval", str(args.interval)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--pieces", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = [("this checkout", ROOT)] + ([("compared", args.compare.resolve())] if args.compare else [])
    results = {name: run_with(root, args) for name, root in rows}
    print(f"native mode, direct answer of {args.pieces} pieces, {args.interval * 1000:g} ms apart; median of {args.turns}")
    print(f"{'checkout':<15} {'backend':<8} {'first char':>11} {'whole answer':>13} {'1st turn, first char':>21}")
    for name, figures in results.items():
        for backend, f in figures.items():
            print(f"{name:<15} {backend:<8} {f['first'] * 1000:>8.0f} ms {f['whole'] * 1000:>10.0f} ms "
                  f"{f['turn1'] * 1000:>18.0f} ms")


if __name__ == "__main__":
    main()
