"""Memory shared by replicas: LanceDB on moto's S3 (on loopback), the conditional-write probe at
start, and the per-document lock in the loopback Redis. Two MemoryStore instances on one s3://
prefix stand for two replicas."""

from __future__ import annotations

import asyncio

import pytest

from kagentbot.bot.services import Services
from kagentbot.cluster import Keys, connect
from kagentbot.cluster.document_lock import RedisDocumentLock
from kagentbot.cluster.shared_memory import ConditionalWritesIgnored, probe_conditional_writes
from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore, StoreError
from kagentbot.memory.types import Audience
from tests.fakes.s3_server import ConditionDroppingProxy, MotoS3, storage_options
from tests.memory.conftest import _BUILTIN

TEAM = Audience("user:slack:ALICE", "chat:slack:TEAM")
BUCKET = "kagentbot-replicas"


@pytest.fixture(scope="module")
def s3():
    with MotoS3() as server:
        server.bucket(BUCKET)
        yield server


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"s3://{BUCKET}/t{abs(hash(request.node.nodeid)):x}"


def replica_settings(make_settings, s3_endpoint: str, uri: str, cluster_settings, replica: str = "replica-a"):
    cluster = cluster_settings.model_dump() | {"redis_url": cluster_settings.redis_url.get_secret_value(),
                                               "replica_id": replica}
    return make_settings(memory={"uri": uri, "storage_options": storage_options(s3_endpoint)}, cluster=cluster)


# ---------- the probe ----------


async def test_the_probe_passes_on_a_store_that_refuses_a_second_conditional_write(s3, prefix):
    await probe_conditional_writes(prefix, storage_options(s3.endpoint))


async def test_the_probe_refuses_a_store_that_ignores_if_none_match_and_names_the_fix(s3, prefix):
    async with ConditionDroppingProxy(s3.endpoint) as proxy:
        with pytest.raises(ConditionalWritesIgnored) as refused:
            await probe_conditional_writes(prefix, storage_options(proxy.endpoint))
    assert proxy.dropped >= 2  # both conditional PUTs went through without their condition
    message = str(refused.value)
    assert "If-None-Match" in message and "412 Precondition Failed" in message
    assert "memory.uri" in message and "cluster.enabled = false" in message


async def test_the_probe_says_when_the_store_cannot_be_reached(prefix):
    with pytest.raises(StoreError, match="cannot probe the memory store at s3://"):
        await probe_conditional_writes(prefix, storage_options("http://127.0.0.1:9"), timeout=15)


async def test_the_probe_leaves_nothing_behind_and_ignores_lance_only_options(s3, prefix):
    import boto3

    options = storage_options(s3.endpoint) | {"client_max_retries": "3", "region": "us-east-1"}
    await probe_conditional_writes(prefix, options)
    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix.removeprefix(f"s3://{BUCKET}/"))
    assert listed.get("KeyCount", 0) == 0


async def test_a_replica_refuses_to_start_on_a_store_that_ignores_conditional_writes(
        s3, prefix, make_settings, cluster_settings, redis_server):
    async with ConditionDroppingProxy(s3.endpoint) as proxy:
        settings = replica_settings(make_settings, proxy.endpoint, prefix, cluster_settings)
        with pytest.raises(ConditionalWritesIgnored, match="would overwrite each other's commits"):
            await Services.open(settings)


async def test_a_replica_opens_the_shared_store_with_the_redis_document_lock(
        s3, prefix, make_settings, cluster_settings, redis_server):
    settings = replica_settings(make_settings, s3.endpoint, prefix, cluster_settings)
    services = await Services.open(settings)
    try:
        assert isinstance(services.memory, MemoryStore)
        assert isinstance(services.memory._knowledge._lock, RedisDocumentLock)
    finally:
        await services.close()


# ---------- two replicas on one store ----------


@pytest.fixture
async def two_replicas(s3, prefix, make_settings, cluster_settings, redis_server):
    """Two stores on one s3:// prefix, each with its own Redis connection, as two replicas have."""
    from kagentbot.cluster.shared_memory import open_shared_memory

    opened = []
    for name in ("replica-a", "replica-b"):
        settings = replica_settings(make_settings, s3.endpoint, prefix, cluster_settings, name)
        opened.append(await open_shared_memory(settings, embedder=_BUILTIN))
    yield [store for store, _ in opened]
    for store, closing in opened:
        await store.flush()
        store.close()
        await closing()


async def test_replicas_started_together_on_a_new_store_all_open_it(s3, prefix, make_settings, cluster_settings,
                                                                   redis_server):
    """Each used to create the new tables' indexes, and all but the first failed to start on
    LanceDB's commit conflict ("This CreateIndex transaction was preempted")."""
    from kagentbot.cluster.shared_memory import open_shared_memory

    replicas = [replica_settings(make_settings, s3.endpoint, prefix, cluster_settings, f"replica-{n}") for n in "abc"]
    opened = await asyncio.gather(*(open_shared_memory(settings, embedder=_BUILTIN) for settings in replicas),
                                  return_exceptions=True)
    try:
        assert [type(o).__name__ for o in opened if isinstance(o, BaseException)] == []
    finally:
        for store, closing in (o for o in opened if not isinstance(o, BaseException)):
            store.close()
            await closing()


async def test_two_replicas_adding_documents_at_once_lose_none_and_store_a_shared_one_once(two_replicas):
    a, b = two_replicas
    settings = a.settings.memory
    shared = from_text("The release train leaves every second Tuesday.", settings, title="release")
    own = [from_text(f"Runbook {n}: restart service {n} with care.", settings, title=f"runbook {n}") for n in range(6)]
    results = await asyncio.gather(
        a.add_document(shared, TEAM.chat_scope), b.add_document(shared, TEAM.chat_scope),
        *(store.add_document(doc, TEAM.chat_scope) for store, doc in zip([a, b] * 3, own)))
    assert sorted(r.duplicate for r in results[:2]) == [False, True]  # one stored it, the other saw it
    await asyncio.sleep(2.1)  # each replica reads the newest table version at most 2 s late
    titles = sorted(d.title for d in await b.list_documents([TEAM.chat_scope]))
    assert titles == sorted(["release", *(f"runbook {n}" for n in range(6))])


async def test_two_replicas_remembering_turns_at_once_keep_each_turn_exactly_once(two_replicas):
    a, b = two_replicas
    turns = [(store, f"question {n}", f"answer {n}") for n, store in enumerate([a, b] * 10)]
    await asyncio.gather(*(store.remember(TEAM, q, answer, []) for store, q, answer in turns))
    await asyncio.sleep(2.1)  # each replica reads the newest table version at most 2 s late
    for store in (a, b):
        recall = await store.recall(TEAM, "question", turns=50, limit=1)
        assert sorted(t.answer for t in recall.conversation) == sorted(answer for _, _, answer in turns)


async def test_a_document_added_on_one_replica_is_found_on_the_other_within_two_seconds(two_replicas):
    a, b = two_replicas
    assert await b.search(TEAM, "lighthouse keeper", 3) == []  # b has read the table before the add
    added = await a.add_document(from_text("The lighthouse keeper logs the fog at dawn.", a.settings.memory),
                                 TEAM.chat_scope)
    await asyncio.sleep(2.0)
    hits = await b.search(TEAM, "lighthouse keeper", 3)
    assert [h.id.split("-")[0] for h in hits] == [added.document.id]


# ---------- the lock itself ----------


async def test_the_document_lock_excludes_other_holders_until_released(cluster_settings, redis_client, redis_server):
    keys = Keys(cluster_settings.key_prefix)
    one = RedisDocumentLock(redis_client, keys, "replica-a", lease_seconds=2.0)
    other = RedisDocumentLock(connect(cluster_settings), keys, "replica-b", lease_seconds=2.0)
    order: list[str] = []

    async def hold(lock: RedisDocumentLock, name: str, seconds: float) -> None:
        async with lock.hold("chat:slack:TEAM\nabc"):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    first = asyncio.create_task(hold(one, "a", 0.3))
    await asyncio.sleep(0.05)
    await hold(other, "b", 0)
    await first
    assert order == ["a in", "a out", "b in", "b out"]
    async with other.hold("another document"):  # another document is not held up
        async with one.hold("chat:slack:TEAM\nabc"):
            pass
    assert not await redis_client.exists(one.key("chat:slack:TEAM\nabc"))


async def test_replicas_on_one_store_compact_it_one_at_a_time(make_settings, cluster_settings, redis_client, tmp_path):
    """A replica's write-time compaction waits while another replica compacts the shared tables."""
    from kagentbot.memory.maintenance import COMPACTION

    keys = Keys(cluster_settings.key_prefix)
    settings = make_settings(data_dir=tmp_path / "a", memory={"compact_every": 1})
    store = await MemoryStore.open(settings, embedder=_BUILTIN,
                                   document_lock=RedisDocumentLock(redis_client, keys, "replica-a", lease_seconds=2.0))
    other = RedisDocumentLock(connect(cluster_settings), keys, "replica-b", lease_seconds=2.0)
    try:
        async with other.hold(COMPACTION):  # replica b is compacting
            store.remember_soon(TEAM, "where is the lighthouse", "On the cape", [])
            flushed = asyncio.create_task(store.flush())  # the batch, then its compaction
            await asyncio.sleep(1.0)
            assert not flushed.done()
        await asyncio.wait_for(flushed, 20)
        assert not await redis_client.exists(other.key(COMPACTION))
    finally:
        store.close()


async def test_the_lease_is_renewed_while_held_and_never_frees_a_successors_lock(cluster_settings, redis_client, redis_server):
    lock = RedisDocumentLock(redis_client, Keys(cluster_settings.key_prefix), "replica-a", lease_seconds=0.6)
    key = lock.key("doc")
    async with lock.hold("doc"):
        await asyncio.sleep(1.5)  # longer than the lease: renewals keep it
        assert (await redis_client.get(key) or "").startswith("replica-a:")
        await redis_client.set(key, "replica-b:successor")  # as if our lease had run out and b took it
    assert await redis_client.get(key) == "replica-b:successor"


async def test_the_lock_fails_with_a_clear_error_when_redis_is_down(cluster_settings):
    from pydantic import SecretStr

    from tests.fakes.redis_server import free_port

    down = cluster_settings.model_copy(update={"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")})
    client = connect(down)
    lock = RedisDocumentLock(client, Keys(down.key_prefix), "replica-a", lease_seconds=2.0)
    with pytest.raises(StoreError, match="cannot lock the document in the shared Redis"):
        async with lock.hold("doc"):
            pytest.fail("held without Redis")
    await client.aclose()



def test_a_single_process_bot_imports_neither_redis_nor_the_probe(tmp_path):
    import subprocess
    import sys

    code = ("import sys, kagentbot.cli.runner, kagentbot.bot.services, kagentbot.memory.store, "
            "kagentbot.adapters.discord_adapter, kagentbot.adapters.telegram_adapter, kagentbot.adapters.slack_adapter; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'obstore', 'kagentbot') "
            "and (m.split('.')[0] != 'kagentbot' or m.startswith('kagentbot.cluster'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"


async def test_kb_add_from_the_command_line_in_cluster_mode_probes_the_store_and_locks_in_redis(
        s3, prefix, make_settings, cluster_settings, redis_server, capsys):
    import argparse

    from kagentbot.cli import kb as kb_cli

    parser = argparse.ArgumentParser(prog="kagentbot")
    kb_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["kb", "add", "--text", "The", "on-call", "rota", "changes", "on", "Mondays."])
    async with ConditionDroppingProxy(s3.endpoint) as proxy:
        refused = replica_settings(make_settings, proxy.endpoint, prefix, cluster_settings)
        assert await args.func(args, refused) == 1
    assert "would overwrite each other's commits" in " ".join(capsys.readouterr().err.split())  # rich wraps lines
    settings = replica_settings(make_settings, s3.endpoint, prefix, cluster_settings)
    assert await args.func(args, settings) == 0
    assert "added as" in capsys.readouterr().out
    assert kb_cli._closing == []  # the lock's Redis connection was closed
