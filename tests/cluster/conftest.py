from __future__ import annotations

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
