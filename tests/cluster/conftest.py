from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from kagentbot.cluster import Keys, connect
from kagentbot.config.settings import ClusterSettings
from tests.fakes.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """One loopback redis-server for the run; each test gets its own key prefix."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def cluster_settings(redis_server: RedisServer, request: pytest.FixtureRequest) -> ClusterSettings:
    prefix = f"t{abs(hash(request.node.nodeid)):x}"
    return ClusterSettings(enabled=True, redis_url=redis_server.url, key_prefix=prefix, replica_id="replica-a",
                           lease_seconds=2.0, connect_timeout=0.5)


@pytest.fixture
async def redis_client(cluster_settings: ClusterSettings):
    client = connect(cluster_settings)
    yield client
    keys = [key async for key in client.scan_iter(f"{cluster_settings.key_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def keys(cluster_settings: ClusterSettings) -> Keys:
    return Keys(cluster_settings.key_prefix)


@contextlib.asynccontextmanager
async def doomed_replica(script: str, settings: ClusterSettings) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A replica in a process of its own, running `script` (argv: the Redis URL and the key
    prefix), yielded once it printed "held"; the test kills it (SIGKILL, as a crash), and it is
    killed on exit in any case."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    doomed = subprocess.Popen([sys.executable, "-c", script, settings.redis_url.get_secret_value(), settings.key_prefix],
                              stdout=subprocess.PIPE, env=env)
    try:
        assert doomed.stdout is not None
        assert (await asyncio.wait_for(asyncio.to_thread(doomed.stdout.readline), 30)).strip() == b"held"
        yield doomed
    finally:
        doomed.kill()
        doomed.wait(5)
