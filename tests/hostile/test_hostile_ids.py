"""Hostile ids: user, chat and document ids with quotes, backslashes, path separators, `..`,
SQL comment markers and control characters reach LanceDB filters and file names as data only.
Nobody reads, finds or removes another's documents through them."""

from __future__ import annotations

import pytest

from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore, NotFound
from kagentbot.memory.types import Audience
from kagentbot.persona.store import PersonaStore, PersonaStoreError

HOSTILE = [
    "x' OR '1'='1", "x') OR scope LIKE '%", "\\' OR 1=1 --", "../../etc/passwd", "a/b\\c", "..",
    "line\nbreak", "nul\x00byte", "%", "'; DROP TABLE knowledge; --", "用户'名",
]


@pytest.fixture
async def store(make_settings):
    opened = await MemoryStore.open(make_settings())
    yield opened
    await opened.flush()
    opened.close()


async def test_hostile_user_ids_see_only_their_own_documents(store):
    memory = store.settings.memory
    bob = Audience("user:slack:BOB")
    await store.add_document(from_text("Bob's salary is 91000.", memory), bob.user_scope)
    for hostile in HOSTILE:
        mallory = Audience(f"user:slack:{hostile}")  # her DM
        room = Audience(mallory.user_scope, chat_scope=f"chat:slack:{hostile}")  # a chat with a hostile id
        await store.add_document(from_text(f"Mallory note {hostile!r}", memory), mallory.user_scope)
        await store.add_document(from_text(f"Room note {hostile!r}", memory), room.chat_scope)
        assert [d.scope for d in await store.list_documents(mallory.readable)] == [mallory.user_scope]
        assert [d.scope for d in await store.list_documents(room.readable)] == [room.chat_scope]
        assert all("salary" not in p.text for p in await store.search(room, "salary 91000", 10))
        assert all("salary" not in p.text for p in await store.search(mallory, "salary 91000", 10))
        (bobs,) = await store.list_documents(bob.readable)
        with pytest.raises(NotFound):
            await store.remove_document(mallory, bobs.id, may_remove_global=False)
        for forged in (f"{bobs.id}' OR '1'='1", "' OR doc_id LIKE '%", "%"):
            with pytest.raises(NotFound):
                await store.remove_document(mallory, forged, may_remove_global=False)
    assert [d.title for d in await store.list_documents(bob.readable)] == ["Bob's salary is 91000."]


async def test_hostile_ids_in_persona_selections_stay_data(make_settings):
    personas = await PersonaStore.open(make_settings())
    for hostile in HOSTILE:
        await personas.select_persona(f"slack:{hostile}", "users", f"slack:{hostile}", "research")
        with pytest.raises(PersonaStoreError):
            await personas.select_persona("slack:admin", "users", "slack:x", f"../{hostile}")
    chosen = (await personas.selections())["users"]
    assert set(chosen) == {f"slack:{h}" for h in HOSTILE} and set(chosen.values()) == {"research"}
    assert sorted(p.name for p in (personas.root / "custom").iterdir()) == []
    assert not any((personas.root.parent.parent / name).exists() for name in ("etc", "passwd"))
