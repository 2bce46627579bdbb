"""`kagentbot ask` cold start: process start → the first /api/chat request at the LLM server.

    python bench/cold_start.py [--runs 5]

Spawns `python -m kagentbot.cli ask ...` against a fake Ollama on loopback, twice over: with an
empty data directory, and with one holding a few documents of the asking user (so the first
recall has knowledge to search). Prints the median of the runs next to the goal (< 1500 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.ollama_server import FakeOllama, Scripted  # noqa: E402

USER = "bench"
QUESTION = "How many days of paid annual leave do employees get?"
PLAN = '{"task_name": "task_complete", "command": {"name": "task_complete", "args": {}}}'
GOAL_MS = 1500


def responder(body: dict) -> Scripted:
    return Scripted("Fifteen days." if body.get("stream") else PLAN, chunk=16)


async def seed(data: Path) -> None:
    """A data directory holding a few documents in the asking user's scope."""
    from kagentbot.config.settings import load_settings
    from kagentbot.memory.ingest import from_text
    from kagentbot.memory.store import MemoryStore
    from tests.memory.retrieval_set import DOCUMENTS

    store = await MemoryStore.open(load_settings(environ={}, data_dir=data))
    for key in ("leave", "expenses", "zh_canteen", "mixed_vpn"):
        await store.add_document(from_text(DOCUMENTS[key], store.settings.memory, title=key), f"user:console:{USER}")
    store.close()


async def one_run(server: FakeOllama, data: Path) -> float:
    arrived = asyncio.get_running_loop().create_future()

    def first(body: dict) -> Scripted:
        if not arrived.done():
            arrived.set_result(time.perf_counter())
        return responder(body)

    server.responder = first
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAGENTBOT_")}
    env.update({"KAGENTBOT_LLM__HOST": server.url, "KAGENTBOT_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)})
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kagentbot.cli", "ask", QUESTION, "--user", USER, env=env, cwd=data.parent,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        first_request = await asyncio.wait_for(arrived, 60)
    except asyncio.TimeoutError:
        process.kill()
        raise SystemExit(f"no LLM request within 60 s: {(await process.communicate())[1].decode()[-2000:]}")
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"kagentbot ask failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return (first_request - started) * 1000


async def series(server: FakeOllama, runs: int, template: Path | None, root: Path) -> list[float]:
    samples = []
    for n in range(runs):
        data = root / f"run{n}" / "data"
        if template is None:
            data.mkdir(parents=True)
        else:
            shutil.copytree(template, data)
        samples.append(await one_run(server, data))
    return samples


def line(label: str, samples: list[float]) -> str:
    median = statistics.median(samples)
    verdict = "meets" if median < GOAL_MS else "misses"
    return (f"{label:<34} median {median:6.0f} ms (min {min(samples):.0f}, max {max(samples):.0f}, "
            f"{len(samples)} runs); goal < {GOAL_MS} ms: {verdict}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kagentbot-cold-", dir="/tmp"))
    try:
        template = root / "seeded"
        await seed(template)
        async with FakeOllama() as server:
            empty = await series(server, args.runs, None, root / "empty")
            seeded = await series(server, args.runs, template, root / "docs")
        print("`kagentbot ask` cold start → first /api/chat request")
        print(line("empty data dir:", empty))
        print(line(f"data dir with 4 documents of {USER}:", seeded))
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("note: PYTHONDONTWRITEBYTECODE is set, so each run compiles kagentbot's sources again; "
                  "an installed kagentbot keeps its bytecode (run with it unset to measure that)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
