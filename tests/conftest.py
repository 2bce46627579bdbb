from __future__ import annotations

from pathlib import Path

import pytest

from kagentbot.config.settings import Settings, load_settings
from tests.fakes.ollama_server import FakeOllama


@pytest.fixture
async def fake_ollama():
    async with FakeOllama() as server:
        yield server


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the builtin model's uncompressed weights for the whole run (77 MB each)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_dir: Path):
    """Settings isolated from the developer's environment and files."""
    monkeypatch.chdir(tmp_path)
    import os

    for key in list(os.environ):
        if key.startswith("KAGENTBOT_") or key == "OLLAMA_HOST":
            monkeypatch.delenv(key)

    def build(**overrides) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("embed", {"weights_dir": weights_dir})
        return load_settings(environ={}, **overrides)

    return build


@pytest.fixture
async def start_bot():
    """`await start_bot(settings, adapters, router=None)`: the real Bot on real Services, started;
    every bot started this way is stopped after the test."""
    from kagentbot.bot.app import Bot
    from kagentbot.bot.services import Services

    started = []

    async def start(settings: Settings, adapters: list, router=None):
        bot = Bot(await Services.open(settings), adapters, router)
        await bot.start()
        started.append(bot)
        return bot

    yield start
    for bot in started:
        await bot.stop()
