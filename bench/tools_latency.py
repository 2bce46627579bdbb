"""Latency of each network tool against the loopback API replays (tests/tools/fake_web.py):
what our own code costs per call (HTTP round trips, JSON, extraction, ranking), not the
internet's. Prints the first call, the median and p90 over N runs per tool, and the offline tools beside them.

    python bench/tools_latency.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.tools.catalog import build_registry  # noqa: E402
from kagentbot.tools.registry import ToolContext  # noqa: E402
from tests.tools.fake_web import FakeWeb  # noqa: E402

CALLS = [
    ("web_search (SearXNG)", "web_search", {"text": "Lionel Messi birth date"}),
    ("browse_website", "browse_website", {"url": "{base}/pages/ski_weekend.html", "question": "weekend pass Nanshan"}),
    ("browse_website (zh)", "browse_website", {"url": "{base}/pages/spring_festival_zh.html", "question": "正月初一"}),
    ("browse_website (pdf)", "browse_website", {"url": "{base}/pages/solar_terms.pdf"}),
    ("encyclopedia (en)", "encyclopedia", {"query": "Lionel Messi birth date", "lang": "en"}),
    ("encyclopedia (zh)", "encyclopedia", {"query": "梅西", "lang": "zh"}),
    ("get_weather_info (now)", "get_weather_info", {"location": "Berlin", "start_date": "2026-11-25", "end_date": "2026-11-27", "is_current": "yes"}),
    ("get_weather_info (archive)", "get_weather_info", {"location": "北京", "start_date": "2025-02-01", "end_date": "2025-02-03"}),
    ("time_delta (offline)", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}),
    ("get_calendar_info (offline)", "get_calendar_info", {"start_date": "2026-02-17", "end_date": "2026-02-17"}),
]


async def main(runs: int) -> None:
    async with FakeWeb() as web, aiohttp.ClientSession() as http:
        settings = load_settings(environ={}, data_dir=Path(tempfile.mkdtemp()), tools={
            "wikipedia_url": web.base + "/wiki/{lang}", "open_meteo_url": web.base + "/meteo",
            "open_meteo_archive_url": web.base + "/archive", "geocoding_url": web.base + "/geo",
            "searxng_url": web.base + "/searx", "search_backend": "searxng", "browse_allowlist": ["127.0.0.1"]})
        registry = build_registry(settings)
        context = ToolContext(now=datetime(2026, 11, 25, 10, tzinfo=timezone.utc), settings=settings, http=http)
        print(f"{'tool':<30}{'first ms':>10}{'median ms':>10}{'p90 ms':>10}  requests/call  (N={runs}, loopback fixtures)")
        for label, name, args in CALLS:
            args = {k: v.format(base=web.base) for k, v in args.items()}
            before = len(web.requests)
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                result = await registry.invoke(name, args, context)
                times.append((time.perf_counter() - started) * 1000)
                assert result.ok, result.text
            p90 = statistics.quantiles(times, n=10)[-1] if runs >= 10 else max(times)
            per_call = (len(web.requests) - before) / runs
            # the first call pays lazy imports (trafilatura, pypdf, lunar tables); the median is the steady cost
            print(f"{label:<30}{times[0]:>10.2f}{statistics.median(times):>10.2f}{p90:>10.2f}  {per_call:>13.0f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
