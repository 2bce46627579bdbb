from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from kagentbot.cli import main
from kagentbot.eval.bench import load_items
from kagentbot.eval.ourset import OURSET


@pytest.fixture(scope="session")
def ourset():
    return load_items(OURSET)


@pytest.fixture
def cli(make_settings, monkeypatch):
    """`await cli(server_url, *argv)`: the real `kagentbot` entry point, run in a thread (it has its
    own event loop) with settings pointing at a fake model server on loopback."""

    async def run(url: str, *argv: str, backend: str = "ollama", **env: str) -> int:
        make_settings()  # isolates the environment and the working directory
        monkeypatch.setenv("KAGENTBOT_LLM__HOST", url)
        monkeypatch.setenv("KAGENTBOT_LLM__BACKEND", backend)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return await asyncio.to_thread(main, list(argv))

    return run


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
