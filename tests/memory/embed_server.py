"""A loopback server speaking Ollama's `/api/embed` wire format, for the real `ollama` client.
Vectors are deterministic bags of hashed character bigrams, so similar texts get similar vectors."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from aiohttp import web


def bigram_vector(text: str, dim: int) -> list[float]:
    vector = [0.0] * dim
    padded = f" {text.lower()} "
    for i in range(len(padded) - 1):
        digest = hashlib.blake2s(padded[i : i + 2].encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "little") % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@dataclass
class EmbedServer:
    models: dict[str, int]  # model name -> dimension
    fail_after: int | None = None  # answer HTTP 500 from this request on (counting from 0)
    requests: list[dict] = field(default_factory=list)
    peers: list[tuple] = field(default_factory=list)  # the client's (host, port) of each request

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/embed", self.embed)
        return app

    async def embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else ())
        model = body.get("model", "")
        if model not in self.models:
            return web.json_response({"error": f'model "{model}" not found, try pulling it first'}, status=404)
        if self.fail_after is not None and len(self.requests) > self.fail_after:
            return web.json_response({"error": "llama runner process has terminated"}, status=500)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = self.models[model]
        return web.json_response({
            "model": model,
            "embeddings": [bigram_vector(text, dim) for text in inputs],
            "total_duration": 1000, "load_duration": 10, "prompt_eval_count": len(inputs),
        })
