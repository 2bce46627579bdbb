"""The memory shared by two replicas on S3 (moto's S3 server and a redis-server, both on
loopback): how long a document added on one replica takes to be found on the other, the cost of
the conditional-write probe at start, and what the Redis document lock adds to `add_document`,
side by side with the same adds unlocked.

    python bench/shared_memory.py [--documents 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kagentbot.cluster.shared_memory import open_shared_memory, probe_conditional_writes  # noqa: E402
from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.memory.embedders import BuiltinEmbedder  # noqa: E402
from kagentbot.memory.ingest import from_text  # noqa: E402
from kagentbot.memory.store import MemoryStore  # noqa: E402
from kagentbot.memory.types import Audience  # noqa: E402
from tests.fakes.redis_server import RedisServer  # noqa: E402
from tests.fakes.s3_server import MotoS3, storage_options  # noqa: E402

TEAM = Audience("user:bench:A", "chat:bench:TEAM")


def settings_for(data: Path, endpoint: str, uri: str, redis_url: str, replica: str):
    return load_settings(environ={}, data_dir=data / replica,
                         memory={"uri": uri, "storage_options": storage_options(endpoint)},
                         cluster={"enabled": True, "redis_url": redis_url, "replica_id": replica, "key_prefix": "bench"})


async def seen_after(a: MemoryStore, b: MemoryStore, n: int) -> float:
    """Seconds from the end of an add on `a` until `b` finds the document, `b` having read the
    table just before the add (a busy replica reads all the time)."""
    word = f"zq{uuid.uuid4().hex[:8]}"
    await b.search(TEAM, word, 1)
    await a.add_document(from_text(f"Document {n} mentions {word} once.", a.settings.memory), TEAM.chat_scope)
    added = time.perf_counter()
    while not await b.search(TEAM, word, 1):
        await asyncio.sleep(0.02)
    return time.perf_counter() - added


async def add_times(store: MemoryStore, count: int, tag: str) -> list[float]:
    times = []
    for n in range(count):
        doc = from_text(f"{tag} note {n}: {uuid.uuid4().hex}", store.settings.memory)
        started = time.perf_counter()
        await store.add_document(doc, TEAM.chat_scope)
        times.append(time.perf_counter() - started)
    return times


async def main(documents: int) -> None:
    embedder = BuiltinEmbedder()
    with tempfile.TemporaryDirectory() as tmp, MotoS3() as s3, RedisServer(Path(tmp) / "redis") as redis:
        data, bucket = Path(tmp), s3.bucket("bench-memory")
        uri = f"s3://{bucket}/shared"
        probes = []
        for _ in range(5):
            started = time.perf_counter()
            await probe_conditional_writes(uri, storage_options(s3.endpoint))
            probes.append(time.perf_counter() - started)
        (a, close_a), (b, close_b) = [await open_shared_memory(settings_for(data, s3.endpoint, uri, redis.url, name),
                                                               embedder=embedder) for name in ("a", "b")]
        unlocked = await MemoryStore.open(settings_for(data, s3.endpoint, f"s3://{bucket}/unlocked", redis.url, "u"),
                                          embedder=embedder)
        await add_times(a, 2, "warm-up")
        await add_times(unlocked, 2, "warm-up")
        locked_adds: list[float] = []
        unlocked_adds: list[float] = []
        for _ in range(documents):  # alternated, so that the machine's load falls on both alike
            locked_adds += await add_times(a, 1, "locked")
            unlocked_adds += await add_times(unlocked, 1, "unlocked")
        delays = [await seen_after(a, b, n) for n in range(documents)]
        for store in (a, b, unlocked):
            store.close()
        await close_a()
        await close_b()
    print(f"two replicas on moto S3 + redis-server (loopback), {documents} documents; a busy machine inflates all figures")
    print(f"conditional-write probe at start: median {statistics.median(probes) * 1e3:.1f} ms (5 runs)")
    print(f"add_document, Redis lock  : median {statistics.median(locked_adds) * 1e3:.1f} ms")
    print(f"add_document, no lock     : median {statistics.median(unlocked_adds) * 1e3:.1f} ms  "
          f"(lock adds {(statistics.median(locked_adds) / statistics.median(unlocked_adds) - 1) * 100:+.0f} %)")
    print(f"added on a → found on b   : median {statistics.median(delays):.2f} s, max {max(delays):.2f} s "
          f"(each replica reads the newest table version at most 2 s late)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=20)
    asyncio.run(main(parser.parse_args().documents))
