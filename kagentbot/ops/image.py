"""Two steps of the container image, as a module so that they are tested like the rest:

    python -m kagentbot.ops.image bake-weights   at build time: unpack the builtin embedder's
                                                 weights into embed.weights_dir, so that the
                                                 first start is offline and reads them memory-mapped
    python -m kagentbot.ops.image health         the HEALTHCHECK: exit 0 when the bot's /healthz
                                                 answers 200 on ops.port, 1 otherwise"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from kagentbot.config.settings import Settings, SettingsError, load_settings


def bake_weights(settings: Settings) -> str:
    """Load the builtin embedder once with its weights cache on: the cache is written where the
    settings say (embed.weights_dir), and later loads only check and map it."""
    from kagentbot.memory.embedders import BuiltinEmbedder, build_embedder

    if settings.embed.backend != "builtin":
        return f"nothing to bake: embed.backend is {settings.embed.backend}"
    embedder = build_embedder(settings)
    assert isinstance(embedder, BuiltinEmbedder)  # what the builtin backend builds
    embedder.embed_now(["warm up"])
    where = settings.embed.weights_dir or settings.data_dir / "models"
    return f"builtin embedder ({settings.embed.builtin_model}) ready in {where}"


def health(settings: Settings, timeout: float = 4.0) -> int:
    port = settings.ops.port
    if port is None:
        print("health: KAGENTBOT_OPS__PORT is not set, so there is no endpoint to ask", file=sys.stderr)
        return 1
    host = "127.0.0.1" if settings.ops.listen in ("0.0.0.0", "::", "") else settings.ops.listen
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:  # HTTPError (503) included
        print(f"health: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["bake-weights"], ["health"]):
        print("usage: python -m kagentbot.ops.image bake-weights|health", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"kagentbot: {exc}", file=sys.stderr)
        return 2
    if args == ["health"]:
        return health(settings)
    print(bake_weights(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
