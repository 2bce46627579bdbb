"""Memory benchmarks: hybrid query latency at scale and ingestion rate with the builtin embedder.

    python bench/retrieval.py                 # 100k chunks + ingestion rate + quality
    python bench/retrieval.py --million       # also 1M chunks (builds for a long while)
    python bench/retrieval.py --sizes 20000   # quick run

The big tables hold synthetic zh + en text and random unit vectors (what is measured is the
query path, not the embedding of the corpus). Queries go through `MemoryStore`'s real hybrid
path: vector + n-gram full text, RRF, scope prefilter. Everything is written under /tmp.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kagentbot.config.settings import load_settings  # noqa: E402
from kagentbot.memory.embedders import BuiltinEmbedder  # noqa: E402
from kagentbot.memory.ingest import from_text  # noqa: E402
from kagentbot.memory.store import MemoryStore  # noqa: E402
from kagentbot.memory.types import Audience  # noqa: E402

USERS, CHATS, BATCH = 1000, 200, 50_000


def vocabulary(rng) -> tuple[list[str], str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(list(letters), size=int(rng.integers(3, 10)))) for _ in range(20_000)]
    hanzi = "".join(chr(c) for c in rng.integers(0x4E00, 0x4E00 + 3500, size=3500))
    return words, hanzi


def synthetic_text(rng, words: list[str], hanzi: str) -> str:
    english = " ".join(words[i] for i in rng.zipf(1.3, size=40) % len(words))
    chinese = "".join(hanzi[i] for i in rng.zipf(1.3, size=60) % len(hanzi))
    return f"{english}。{chinese}。"


def scope_of(i: int) -> str:
    if i % 10 == 0:
        return "global"
    if i % 3 == 0:
        return f"chat:slack:C{i % CHATS}"
    return f"user:slack:U{i % USERS}"


def batch_table(store: MemoryStore, rng, start: int, n: int, words, hanzi):
    import numpy as np
    import pyarrow as pa

    vectors = rng.standard_normal((n, 512), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = range(start, start + n)
    data = {
        "id": [f"b{i}-0" for i in ids], "doc_id": [f"b{i}" for i in ids], "scope": [scope_of(i) for i in ids],
        "title": ["synthetic"] * n, "source": ["bench"] * n, "chunk_no": [0] * n, "chunks": [1] * n,
        "doc_hash": [f"h{i}" for i in ids], "added_ms": [0] * n,
        "text": [synthetic_text(rng, words, hanzi) for _ in ids],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 512),
    }
    return pa.table(data, schema=store._tables.knowledge.schema)


async def build(size: int, root: Path, embedder: BuiltinEmbedder):
    import numpy as np

    settings = load_settings(environ={}, data_dir=root / f"n{size}")
    store = await MemoryStore.open(settings, embedder=embedder)
    rng = np.random.default_rng(size)
    words, hanzi = vocabulary(rng)
    started = time.perf_counter()
    for start in range(0, size, BATCH):
        table = batch_table(store, rng, start, min(BATCH, size - start), words, hanzi)
        await asyncio.to_thread(store._tables.knowledge.add, table)
    needles, needle_vectors = needle_table(store, rng)
    await asyncio.to_thread(store._tables.knowledge.add, needles)
    written = time.perf_counter() - started
    report = await store.optimize()  # folds rows into the FTS/scalar indexes, builds the ANN index
    indexed = time.perf_counter() - started - written
    print(f"  built {size:,} chunks: write {written:.1f}s, optimize+index {indexed:.1f}s {report}")
    return store, rng, words, needle_vectors


def random_queries(rng, words, n: int) -> list[tuple[Audience, object, str]]:
    import numpy as np

    queries = []
    for _ in range(n):
        audience = Audience(f"user:slack:U{rng.integers(USERS)}", f"chat:slack:C{rng.integers(CHATS)}")
        vector = rng.standard_normal(512).astype(np.float32)
        vector /= np.linalg.norm(vector)
        text = " ".join(words[i] for i in rng.zipf(1.3, size=3) % len(words)) + " 会议"
        queries.append((audience, vector, text))
    return queries


async def query_latency(store: MemoryStore, rng, words, queries: int) -> tuple[float, float, int]:
    timings, hits = [], 0
    for q, (audience, vector, text) in enumerate(random_queries(rng, words, queries + 5)):
        started = time.perf_counter()
        passages = await asyncio.to_thread(store._knowledge.hybrid, vector, text, audience.readable, 5)
        if q >= 5:  # the first few warm the caches
            timings.append(time.perf_counter() - started)
        hits += len(passages)
        assert all(p.scope in audience.readable for p in passages)
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return statistics.median(timings) * 1000, p99 * 1000, hits


def legs(store: MemoryStore, rng, words, queries: int) -> str:
    """Where a hybrid query's time goes: each leg alone (through LanceDB's sync API), then the
    whole, wall and process CPU (every thread) per query, p50; and the whole as it was, legs
    through the sync API, between two runs of the whole as it is (side by side, same queries)."""
    from kagentbot.memory.store import scope_filter

    sample = random_queries(rng, words, queries)
    steps = {
        "vector leg": lambda a, v, t: store._knowledge.vector_leg(v, scope_filter(a.readable), 5),
        "full-text leg": lambda a, v, t: store._knowledge.text_leg(t, scope_filter(a.readable), 5),
        "hybrid": lambda a, v, t: store._knowledge.hybrid(v, t, a.readable, 5),
        "hybrid, legs through the sync API (before)": lambda a, v, t: sync_api_hybrid(store, a, v, t),
        "hybrid again": lambda a, v, t: store._knowledge.hybrid(v, t, a.readable, 5),
    }
    parts = []
    for name, step in steps.items():
        wall, cpu = [], []
        for audience, vector, text in sample:
            started, used = time.perf_counter(), time.process_time()
            step(audience, vector, text)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
        parts.append(f"{name} {statistics.median(wall) * 1000:.1f} ms (CPU {statistics.median(cpu) * 1000:.1f})")
    return ", ".join(parts)


def sync_api_hybrid(store: MemoryStore, audience: Audience, vector, text: str) -> list:
    """The hybrid query as it was: each leg through LanceDB's sync API, the full-text one in a
    worker thread beside the vector one, then the same RRF."""
    from kagentbot.memory.store import scope_filter

    where = scope_filter(audience.readable)
    knowledge = store._knowledge
    text_leg = store._legs.submit(knowledge.text_leg, text, where, 5)
    return knowledge._rrf.rerank_hybrid(text, knowledge.vector_leg(vector, where, 5), text_leg.result()).slice(0, 5).to_pylist()


NEEDLES = 50


def needle_table(store: MemoryStore, rng):
    """One private row per needle user, each with its own random vector: after the ANN index is
    built, a user with a single row must still get it back (prefilter, not post-filter)."""
    import numpy as np
    import pyarrow as pa

    vectors = rng.standard_normal((NEEDLES, 512), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = range(NEEDLES)
    data = {
        "id": [f"n{i}-0" for i in ids], "doc_id": [f"n{i}" for i in ids], "scope": [f"user:slack:N{i}" for i in ids],
        "title": ["needle"] * NEEDLES, "source": ["bench"] * NEEDLES, "chunk_no": [0] * NEEDLES,
        "chunks": [1] * NEEDLES, "doc_hash": [f"n{i}" for i in ids], "added_ms": [0] * NEEDLES,
        "text": [f"needle {i}" for i in ids],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 512),
    }
    return pa.table(data, schema=store._tables.knowledge.schema), vectors


async def needle_recall(store: MemoryStore, vectors, rng) -> float:
    import numpy as np

    found = 0
    for i, vector in enumerate(vectors):
        noisy = vector + rng.standard_normal(512).astype(np.float32) * 0.02
        passages = await asyncio.to_thread(
            store._knowledge.hybrid, noisy / np.linalg.norm(noisy), "unrelated words", Audience(f"user:slack:N{i}").readable, 5
        )
        found += any(p.id == f"n{i}-0" for p in passages)
    return found / len(vectors)


async def end_to_end_ms(store: MemoryStore) -> float:
    audience = Audience("user:slack:U1", "chat:slack:C1")
    await store.search(audience, "年假 policy", 5)
    started = time.perf_counter()
    for _ in range(20):
        await store.search(audience, "how many days of annual leave 年假", 5)
    return (time.perf_counter() - started) / 20 * 1000


async def ingestion_rate(root: Path, window: int, model: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "memory"))
    import numpy as np
    from retrieval_set import DOCUMENTS

    base = list(DOCUMENTS.values())
    rng = np.random.default_rng(7)
    words, hanzi = vocabulary(rng)
    texts = {
        "zh+en handbook text": "\n".join(f"{i}. {base[i % len(base)]}" for i in range(3000)),
        # random words and characters: far more distinct tokens than real text (cache worst case)
        "random zh+en words": "\n".join(synthetic_text(rng, words, hanzi) for _ in range(1500)),
    }
    for n, (name, text) in enumerate(texts.items()):
        # A fresh embedder each time: the pooled model's per-token cache starts empty, as after a
        # restart, so the rate includes working out each token the text uses (not the model load).
        embedder = BuiltinEmbedder(window_chars=window, model=model)
        settings = load_settings(environ={}, data_dir=root / f"ingest{n}")
        store = await MemoryStore.open(settings, embedder=embedder)
        await embedder.embed(["warm up"])
        started = time.perf_counter()
        result = await store.add_document(from_text(text, settings.memory, title="ingest"), "global")
        elapsed = time.perf_counter() - started
        chunks = result.document.chunks
        print(f"ingestion, {name}: {chunks} chunks of <= {settings.memory.chunk_chars} chars in {elapsed:.1f}s "
              f"= {chunks / elapsed:.0f} chunks/s (goal >= 500), {len(text) / elapsed / 1000:.0f}k chars/s")


async def quality(root: Path, embedder: BuiltinEmbedder) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.memory.test_retrieval_quality import measure

    settings = load_settings(environ={}, data_dir=root / "quality")
    hit1, hit5 = await measure(await MemoryStore.open(settings, embedder=embedder))
    print(f"quality (self-made zh+en set): hit@1={hit1:.3f} hit@5={hit5:.3f}")
    settings = load_settings(environ={}, data_dir=root / "packed")
    hit1, hit5 = await packed_quality(await MemoryStore.open(settings, embedder=embedder))
    print(f"quality, facts inside full-size chunks (start/middle/end): hit@1={hit1:.3f} hit@5={hit5:.3f}")


FILLER = [
    "This page is part of the staff handbook and is reviewed every year by the office team.",
    "Questions about this page can be sent to the helpdesk, which answers within two working days.",
    "本页面属于员工手册的一部分，每年由行政团队审阅更新。",
    "如对本页内容有疑问，请联系服务台，一般两个工作日内答复。",
    "Older versions of this page are kept in the archive for reference only.",
    "以往版本仅作存档参考，不再适用。",
]


def packed_text(fact: str, position: int, size: int = 760) -> str:
    """One chunk-sized text holding `fact` at its start, middle or end among neutral filler:
    the short documents of the quality set each fit in a fraction of a chunk, real ones do not."""
    filler, i = [], position
    while sum(map(len, filler)) + len(fact) < size - 90:
        filler.append(FILLER[i % len(FILLER)])
        i += 1
    at = (0, len(filler) // 2, len(filler))[position % 3]
    return " ".join([*filler[:at], fact, *filler[at:]])


async def packed_quality(store: MemoryStore) -> tuple[float, float]:
    from tests.memory.retrieval_set import DOCUMENTS, QUERIES

    titles = {}
    for n, (key, fact) in enumerate(DOCUMENTS.items()):
        document = from_text(packed_text(fact, n), store.settings.memory, title=key)
        titles[(await store.add_document(document, "global")).document.id] = key
    asker = Audience("user:console:eval")
    hit1 = hit5 = 0
    for query, expected in QUERIES:
        ranked = [titles[p.id.split("-")[0]] for p in await store.search(asker, query, 5)]
        hit1 += ranked[:1] == [expected]
        hit5 += expected in ranked
    return hit1 / len(QUERIES), hit5 / len(QUERIES)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--million", action="store_true", help="add the 1M-chunk case")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--window", type=int, default=None, help="embed.window_chars (default: the setting's)")
    parser.add_argument("--model", choices=["pooled", "full"], default=None,
                        help="embed.builtin_model (default: the setting's)")
    args = parser.parse_args()
    sizes = args.sizes + ([1_000_000] if args.million else [])
    root = Path(tempfile.mkdtemp(prefix="kagentbot-bench-", dir="/tmp"))
    window = load_settings(environ={}).embed.window_chars if args.window is None else args.window
    model = load_settings(environ={}).embed.builtin_model if args.model is None else args.model
    embedder = BuiltinEmbedder(window_chars=window, model=model)
    print(f"builtin embedder {embedder.id}, window_chars={window or 'whole text'}")
    try:
        if not args.skip_ingest:
            await quality(root, embedder)
            await ingestion_rate(root, window, model)
        for size in sizes:
            store, rng, words, needles = await build(size, root, embedder)
            p50, p99, hits = await query_latency(store, rng, words, args.queries)
            print(f"hybrid query @ {size:,} chunks: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"({args.queries} queries, scope-filtered, {hits} passages returned)")
            print(f"  end-to-end search incl. query embedding: {await end_to_end_ms(store):.1f} ms")
            print(f"  p50 of each part: {await asyncio.to_thread(legs, store, rng, words, args.queries)}")
            print(f"  a user's only row found by its vector after ANN indexing: {await needle_recall(store, needles, rng):.0%}")
            shutil.rmtree(root / f"n{size}", ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
