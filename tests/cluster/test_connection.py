"""The shared Redis: reached through `cluster.redis_url`, keys under `cluster.key_prefix`, and a
clear ClusterUnavailable (within the connect timeout) when it is down."""

from __future__ import annotations

import time

import pytest

from kagentbot.cluster import ClusterUnavailable, Keys, connect
from kagentbot.cluster.redis import ping, replica_name
from kagentbot.config.settings import ClusterSettings
from tests.fakes.redis_server import RedisServer, free_port


async def test_set_if_absent_takes_an_event_once(redis_client, keys: Keys):
    key = keys.seen("slack", "Ev01")
    assert await redis_client.set(key, "replica-a", nx=True, ex=60)
    assert not await redis_client.set(key, "replica-b", nx=True, ex=60)
    assert await redis_client.get(key) == "replica-a"


async def test_an_unreachable_redis_is_a_clear_error_within_the_timeout():
    settings = ClusterSettings(enabled=True, redis_url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    client = connect(settings)
    started = time.monotonic()
    with pytest.raises(ClusterUnavailable, match="Redis does not answer"):
        await ping(client)
    assert time.monotonic() - started < 3
    await client.aclose()


async def test_a_redis_that_comes_back_is_used_again(tmp_path):
    server = RedisServer(tmp_path / "r").start()
    client = connect(ClusterSettings(enabled=True, redis_url=server.url, connect_timeout=0.5))
    await ping(client)
    server.stop()
    with pytest.raises(ClusterUnavailable):
        await ping(client)
    server.start()
    await ping(client)
    await client.aclose()
    server.stop()


def test_keys_share_one_prefix_and_replicas_have_names():
    keys = Keys("bot1")
    assert keys.fired("job7", "2026-11-29T10:00:00+00:00") == "bot1:fired:job7:2026-11-29T10:00:00+00:00"
    assert keys.lease("slack:C1:1.2") == "bot1:lease:slack:C1:1.2"
    assert replica_name(ClusterSettings(replica_id="r-2")) == "r-2"
    assert replica_name(ClusterSettings()).endswith(str(__import__("os").getpid()))
