"""What parsing untrusted documents in a budgeted child costs, and what it saves: a typical
.docx, PDF and HTML page parsed in the bot's own process and in the child, side by side, and a
.docx zip bomb (6 MB of XML in ~40 KB) with the budget and without it.

    python bench/parse_budget.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the parsing server too

# Imports stay inside the functions: each parsing child re-imports this script, as it does any
# program's main module, and the test helpers bring in pytest and LanceDB.
ROUNDS = 10
SENTENCES = [f"Paragraph {i}: the quarterly report covers sales, travel and the new office." for i in range(200)]


def timed(data: bytes, name: str, limits, rounds: int = ROUNDS) -> tuple[float, str]:
    from kagentbot.memory.ingest import IngestError, extract

    started, outcome = time.perf_counter(), "read"
    for _ in range(rounds):
        try:
            extract(data, name, limits)
        except IngestError as exc:
            outcome = "refused: " + str(exc).split("refused: ")[-1][:60]
    return (time.perf_counter() - started) / rounds, outcome


def main() -> None:
    from kagentbot.config.settings import MemorySettings
    from tests.hostile.test_uploads import docx_bomb
    from tests.memory.documents import docx_with, pdf_with_text

    inline, limited = MemorySettings(parse_cpu_seconds=0), MemorySettings()
    html = ("<html><body><article>" + "".join(f"<p>{s}</p>" for s in SENTENCES) + "</article></body></html>").encode()
    samples = [("memo.docx", docx_with(SENTENCES)), ("report.pdf", pdf_with_text(SENTENCES[:40])), ("page.html", html)]
    timed(samples[0][1], "warm.docx", limited, 1)  # the forkserver starts once per process
    print(f"{'document':<12}{'in process':>14}{'budgeted child':>16}{'ratio':>8}")
    for name, data in samples:
        a, _ = timed(data, name, inline)
        b, _ = timed(data, name, limited)
        print(f"{name:<12}{a * 1000:>11.1f} ms{b * 1000:>13.1f} ms{b / a:>7.1f}x")
    bomb = docx_bomb(6)
    lifted = {"archive_max_ratio": 10**6, "archive_max_unpacked_mb": 10**4}
    print(f"\n.docx bomb, {len(bomb) // 1024} KB → 6 MB of XML:")
    for label, limits in [("archive checks (default)", limited),
                          ("budget only, 2 s CPU", MemorySettings(parse_cpu_seconds=2, **lifted)),
                          ("no limits (as before)", MemorySettings(parse_cpu_seconds=0, **lifted))]:
        seconds, outcome = timed(bomb, "bomb.docx", limits, 1)
        print(f"  {label:<26}{seconds:>8.2f} s  {outcome}")


if __name__ == "__main__":
    main()
