"""The deferred opener serves the whole memory contract (each call opens the store first), and
the document lock is one small replaceable part that the knowledge base takes as given."""

from __future__ import annotations

import contextlib

from kagentbot.memory.ingest import from_text
from kagentbot.memory.startup.deferred import DeferredStore
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience

from .conftest import make_settings

ROOM = Audience("user:slack:ALICE", "chat:slack:OLD")


async def test_a_deferred_store_opens_for_documents_upkeep_and_moves(tmp_path, builtin):
    settings = make_settings(tmp_path / "data")
    deferred = DeferredStore(settings)
    try:
        added = await deferred.add_document(from_text("The office kettle is on the third floor.", settings.memory),
                                            ROOM.chat_scope)
        assert [d.id for d in await deferred.list_documents([ROOM.chat_scope])] == [added.document.id]
        found = await deferred.for_audience(ROOM).search_knowledge("where is the kettle", 2)
        assert found and "kettle" in found[0].text and await deferred.totals() == (1, 1)
        assert await deferred.private_matches(ROOM.user_scope, "kettle") is False  # not in Alice's own notes
        assert await deferred.move_scope(ROOM.chat_scope, "chat:slack:NEW") == 1
        report = await deferred.optimize()
        assert report["knowledge_rows"] == 1
        assert await deferred.prune_conversation(1) == 0 and await deferred.prune_tasks(1) == 0
        moved = Audience("user:slack:ALICE", "chat:slack:NEW")
        removed = await deferred.remove_document(moved, added.document.id, may_remove_global=False)
        assert removed.scope == "chat:slack:NEW" and await deferred.list_documents([moved.chat_scope]) == []
    finally:
        await deferred.flush()
        deferred.close()


class CountingLock:
    """A document lock of another kind (as a cluster's would be): counts its holds."""

    def __init__(self) -> None:
        self.holds = 0

    @contextlib.asynccontextmanager
    async def hold(self, name: str):
        self.holds += 1
        yield True


async def test_the_knowledge_base_adds_under_the_document_lock_it_is_given(tmp_path, builtin):
    settings = make_settings(tmp_path / "data")
    lock = CountingLock()
    store = await MemoryStore.open(settings, embedder=builtin, document_lock=lock)
    try:
        text = from_text("Badges are renewed every March.", settings.memory)
        first, again = await store.add_document(text, "global"), await store.add_document(text, "global")
        assert lock.holds == 2 and not first.duplicate and again.duplicate
    finally:
        store.close()
