"""The builtin pooled model's uncompressed weight copy in the data directory: same vectors as the
wheel's weights, rebuilt when missing, stale or damaged, never read when it does not match."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from kagentbot.memory.embedders import BuiltinEmbedder, build_embedder
from kagentbot.memory.startup.use_weights import DENSE, RECORD, TABLE, PooledWeights, load_cached, write_cache

from .conftest import make_settings

TEXTS = ["How many days of paid annual leave do employees get?", "员工每年有多少天带薪年假？", "VPN setup"]


async def test_cached_weights_give_the_same_vectors_as_the_wheel(tmp_path: Path, builtin: BuiltinEmbedder):
    folder = tmp_path / "models"
    first = BuiltinEmbedder(weights_cache=folder)  # no copy yet: loads the wheel's, writes the copy
    written = await first.embed(TEXTS)
    assert {TABLE, DENSE, RECORD} <= {p.name for p in folder.iterdir()}
    assert (folder / TABLE).stat().st_size > 60_000_000
    again = await BuiltinEmbedder(weights_cache=folder).embed(TEXTS)  # loads the copy
    reference = await builtin.embed(TEXTS)  # no copy at all
    # equal up to BLAS rounding: the shared reference embedder computed its token rows in other batches
    assert np.allclose(written, reference, atol=1e-5) and np.allclose(again, reference, atol=1e-5)
    assert np.array_equal(written, again)


def test_the_copy_lives_in_the_data_directory_unless_turned_off(tmp_path: Path):
    on = build_embedder(make_settings(tmp_path))
    assert on._weights_cache == tmp_path / "models" / "use-multilingual-v3"
    off = build_embedder(make_settings(tmp_path, embed={"weights_cache": False}))
    assert off._weights_cache is None
    shared = build_embedder(make_settings(tmp_path, embed={"weights_dir": tmp_path / "shared"}))
    assert shared._weights_cache == tmp_path / "shared" / "use-multilingual-v3"


def _tiny(seed: int = 0) -> PooledWeights:
    rng = np.random.default_rng(seed)

    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    branches = lambda *shape: tuple(f(*shape) for _ in range(3))  # noqa: E731
    return PooledWeights(
        table=rng.integers(0, 255, (34, 8), dtype=np.uint8), scale=f(17), lo=f(17), proj_W=f(8, 12),
        proj_b=f(12), ln_g_all=f(12), ln_b_all=f(12), w1=branches(4, 4), b1=branches(4), w2=branches(4, 4),
        b2=branches(4), ln_g=f(20), ln_b=f(20), cnn_W=f(20, 6), cnn_b=f(6), d0=f(6, 6), d1=f(6, 6), d2=f(6, 6),
        d3=f(6, 6), p1=f(6, 6), p3=f(6, 6), eps=1e-6,
    )


def _same(a: PooledWeights, b: PooledWeights) -> bool:
    for name in PooledWeights.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        pairs = zip(x, y) if isinstance(x, tuple) else [(x, y)]
        if not all(np.array_equal(np.asarray(p), np.asarray(q)) for p, q in pairs):
            return False
    return True


def test_copy_round_trips_and_maps_the_table(tmp_path: Path):
    source = tmp_path / "weights.npz"
    source.write_bytes(b"the wheel's weights")
    folder = tmp_path / "copy"
    assert load_cached(folder, source) is None  # nothing written yet
    write_cache(folder, source, _tiny())
    loaded = load_cached(folder, source)
    assert loaded is not None and _same(loaded, _tiny())
    assert isinstance(loaded.table, np.memmap)  # rows are read from disk on demand
    assert not _same(replace(loaded, eps=1.0), _tiny())  # the comparison can fail
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temporary files left


def test_stale_or_damaged_copy_is_refused_and_rebuilt(tmp_path: Path):
    source = tmp_path / "weights.npz"
    source.write_bytes(b"the wheel's weights")
    folder = tmp_path / "copy"
    write_cache(folder, source, _tiny())

    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # another wheel installed
    assert load_cached(folder, source) is None
    write_cache(folder, source, _tiny(seed=1))
    rebuilt = load_cached(folder, source)
    assert rebuilt is not None and _same(rebuilt, _tiny(seed=1))

    table = folder / TABLE
    table.write_bytes(table.read_bytes()[:-10])  # cut short after the record was written
    assert load_cached(folder, source) is None

    write_cache(folder, source, _tiny())
    (folder / RECORD).write_text("{not json", encoding="utf-8")
    assert load_cached(folder, source) is None
    (folder / RECORD).unlink()
    assert load_cached(folder, source) is None
