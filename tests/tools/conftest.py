from __future__ import annotations

from datetime import datetime, timezone

import aiohttp
import pytest

from kagentbot.tools.registry import ToolContext
from tests.tools.fake_web import FakeWeb

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
async def web():
    async with FakeWeb() as server:
        yield server


@pytest.fixture
def web_settings(make_settings, web):
    """Settings whose every endpoint points at the loopback fake."""

    def build(**tools):
        base = {
            "wikipedia_url": web.base + "/wiki/{lang}",
            "open_meteo_url": web.base + "/meteo",
            "open_meteo_archive_url": web.base + "/archive",
            "geocoding_url": web.base + "/geo",
            "searxng_url": web.base + "/searx",
            "search_backend": "searxng",
            "search_backoff": 0.01,
            "http_timeout": 5,
            "browse_allowlist": ["127.0.0.1"],
        }
        return make_settings(tools=base | tools)

    return build


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def context(web_settings, http):
    def build(language: str = "en", **tools) -> ToolContext:
        return ToolContext(now=NOW, language=language, settings=web_settings(**tools), http=http)

    return build
