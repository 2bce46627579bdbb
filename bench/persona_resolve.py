"""Persona resolution per turn: what choosing the persona adds to each message, with a store of
many selections and custom personas on disk (selections.json read, then one persona file).

    python bench/persona_resolve.py [--users 5000] [--custom 50] [--turns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.persona.model import Persona  # noqa: E402
from kagentbot.persona.store import PersonaStore  # noqa: E402


async def main(users: int, custom: int, turns: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        store = await PersonaStore.open(load_settings(environ={}, data_dir=Path(data)))
        for i in range(custom):
            await store.save_persona("console:bench", Persona(name=f"p{i}", display_name=f"P {i}", bio="x" * 500), mode="create")
        started = time.perf_counter()
        for i in range(users):
            await store.select_persona("console:bench", "users", f"slack:U{i}", f"p{i % custom}")
        per_write = (time.perf_counter() - started) / users
        timings = []
        for i in range(turns):
            t0 = time.perf_counter()
            await store.resolve(f"slack:U{i % (users * 2)}", "slack:C1")
            timings.append(time.perf_counter() - t0)
        timings.sort()
        print(f"{users} user selections, {custom} custom personas, {turns} resolutions")
        print(f"resolve per turn: median {statistics.median(timings) * 1e3:.2f} ms, p95 {timings[int(len(timings) * 0.95)] * 1e3:.2f} ms")
        print(f"selection write (atomic rewrite + audit line, fsync): mean {per_write * 1e3:.2f} ms while growing to {users}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--custom", type=int, default=50)
    parser.add_argument("--turns", type=int, default=2000)
    options = parser.parse_args()
    asyncio.run(main(options.users, options.custom, options.turns))
