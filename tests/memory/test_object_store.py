"""The memory store on an S3-compatible object store: moto's S3 server on loopback, the real
LanceDB writing to it through `memory.uri = s3://...` and `memory.storage_options`."""

from __future__ import annotations

import time

import pytest

from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore, StoreError
from kagentbot.memory.types import Audience, TaskRecord

from tests.fakes.s3_server import MotoS3, storage_options

from .conftest import make_settings

ALICE = Audience("user:slack:ALICE", "chat:slack:TEAM")
BOB = Audience("user:slack:BOB", "chat:slack:OTHER")
BUCKET = "kagentbot-memory"


@pytest.fixture(scope="module")
def s3_endpoint():
    with MotoS3() as s3:
        s3.bucket(BUCKET)
        yield s3.endpoint


def s3_settings(tmp_path, endpoint: str, bucket: str = BUCKET, prefix: str = "team"):
    return make_settings(tmp_path, memory={"uri": f"s3://{bucket}/{prefix}", "storage_options": storage_options(endpoint)})


async def test_knowledge_turns_and_tasks_live_in_the_bucket_scoped_and_persistent(tmp_path, s3_endpoint, builtin):
    settings = s3_settings(tmp_path, s3_endpoint)
    store = await MemoryStore.open(settings, embedder=builtin)
    doc = await store.add_document(from_text("Tea is grown on the hills of Yunnan.", settings.memory), ALICE.chat_scope)
    await store.remember(ALICE, "where is tea grown", "Yunnan", [TaskRecord("kb", {}, "Yunnan hills")])
    store.close()
    assert not (tmp_path / "lancedb").exists()  # nothing went to the local data directory

    reopened = await MemoryStore.open(settings, embedder=builtin)  # as after a restart
    hits = await reopened.search(ALICE, "tea Yunnan", 3)
    assert [h.id.split("-")[0] for h in hits] == [doc.document.id]
    recall = await reopened.recall(ALICE, "where is tea grown", turns=2, limit=2)
    assert [t.answer for t in recall.conversation] == ["Yunnan"] and recall.tasks[0].result == "Yunnan hills"
    assert await reopened.search(BOB, "tea Yunnan", 3) == []
    assert (await reopened.recall(BOB, "where is tea grown", turns=2, limit=2)).conversation == ()


async def test_a_missing_bucket_or_endpoint_is_a_clear_error_within_seconds(tmp_path, s3_endpoint, builtin):
    with pytest.raises(StoreError, match="at s3://no-such-bucket/team: the bucket does not exist"):
        await MemoryStore.open(s3_settings(tmp_path, s3_endpoint, bucket="no-such-bucket"), embedder=builtin)
    started = time.monotonic()
    with pytest.raises(StoreError, match="the endpoint cannot be reached"):
        await MemoryStore.open(s3_settings(tmp_path, "http://127.0.0.1:9"), embedder=builtin)
    assert time.monotonic() - started < 20
