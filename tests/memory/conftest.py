from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from kagentbot.config.settings import Settings, load_settings
from kagentbot.memory.embedders import BuiltinEmbedder
from kagentbot.memory.store import MemoryStore

from .embed_server import EmbedServer

_BUILTIN = BuiltinEmbedder()  # one model load per test process
_FULL = BuiltinEmbedder(model="full")


@pytest.fixture
def builtin() -> BuiltinEmbedder:
    return _BUILTIN


@pytest.fixture
def builtin_full() -> BuiltinEmbedder:
    return _FULL


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No kagentbot.toml or KAGENTBOT_* of the developer's leaks into these tests."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("KAGENTBOT_") or k == "OLLAMA_HOST"]:
        monkeypatch.delenv(key)


def make_settings(data_dir: Path, **overrides) -> Settings:
    return load_settings(environ={}, data_dir=data_dir, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def store(settings: Settings) -> MemoryStore:
    return await MemoryStore.open(settings, embedder=_BUILTIN)


@pytest.fixture
async def embed_server():
    fake = EmbedServer(models={"fake-embed": 32, "other-embed": 24})
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = f"http://127.0.0.1:{server.port}"
    yield fake
    await server.close()
