"""Nobody sees what isn't theirs: every read path, several users and chats, zero cross-scope hits."""

from __future__ import annotations

import pytest

from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore, NotFound, StoreError
from kagentbot.memory.types import Audience, TaskRecord

ALICE_DM = Audience("user:slack:ALICE")
BOB_DM = Audience("user:slack:BOB")
ALICE_IN_TEAM = Audience("user:slack:ALICE", "chat:slack:TEAM")
BOB_IN_TEAM = Audience("user:slack:BOB", "chat:slack:TEAM")
CAROL_IN_OPS = Audience("user:telegram:CAROL", "chat:telegram:OPS")

SECRETS = {
    "user:slack:ALICE": "Alice's locker code is 4417 and her locker is on the third floor.",
    "user:slack:BOB": "Bob's locker code is 9902 and his locker is in the basement.",
    "user:telegram:CAROL": "Carol's locker code is 3150 and her locker is by the lifts.",
    "chat:slack:TEAM": "The team locker code is 7788 and the team locker is in room 12.",
    "chat:telegram:OPS": "The ops locker code is 6061 and the ops locker is in the server room.",
    "global": "Locker codes are reset every January by facilities.",
}
QUERY = "what is the locker code"


@pytest.fixture
async def filled(store: MemoryStore) -> tuple[MemoryStore, dict[str, str]]:
    ids = {}
    for scope, text in SECRETS.items():
        ids[scope] = (await store.add_document(from_text(text, store.settings.memory), scope)).document.id
    return store, ids


def allowed(audience: Audience) -> set[str]:
    return set(audience.readable)


@pytest.mark.parametrize("audience", [ALICE_DM, BOB_DM, ALICE_IN_TEAM, BOB_IN_TEAM, CAROL_IN_OPS])
async def test_search_list_and_recall_show_only_readable_scopes(filled, audience):
    store, _ = filled
    passages = await store.search(audience, QUERY, 10)
    assert {p.scope for p in passages} == allowed(audience)  # all of theirs, none of anyone else's
    listed = await store.list_documents(audience.readable)
    assert {d.scope for d in listed} == allowed(audience)
    recall = await store.recall(audience, QUERY, turns=5, limit=10)
    assert {p.scope for p in recall.knowledge} == allowed(audience)
    view = await store.for_audience(audience).search_knowledge(QUERY, 10)
    assert {p.scope for p in view} == allowed(audience)


async def test_top_k_is_filled_from_readable_rows_even_when_others_dominate(store: MemoryStore):
    # Many near-identical rows of another user must not crowd Alice's single row out of her top-k.
    crowd = "\n\n".join(f"Bob's note {i}: the locker code is {1000 + i}." for i in range(40))
    await store.add_document(from_text(crowd, store.settings.memory), BOB_DM.user_scope)
    await store.add_document(from_text(SECRETS["user:slack:ALICE"], store.settings.memory), ALICE_DM.user_scope)
    passages = await store.search(ALICE_DM, QUERY, 3)
    assert [p.scope for p in passages] == ["user:slack:ALICE"]


async def test_remove_by_id_outside_readable_scopes_is_not_found(filled):
    store, ids = filled
    with pytest.raises(NotFound):
        await store.remove_document(ALICE_DM, ids["user:slack:BOB"], may_remove_global=True)
    with pytest.raises(NotFound):
        await store.remove_document(ALICE_DM, ids["chat:slack:TEAM"], may_remove_global=True)
    with pytest.raises(NotFound):
        await store.remove_document(ALICE_DM, "nosuchid", may_remove_global=True)
    with pytest.raises(NotFound):
        await store.remove_document(ALICE_DM, "x' OR scope != '", may_remove_global=True)
    assert len(await store.list_documents(BOB_DM.readable)) == 2  # Bob's and global survive
    with pytest.raises(StoreError, match="only an admin"):
        await store.remove_document(ALICE_DM, ids["global"], may_remove_global=False)
    removed = await store.remove_document(ALICE_IN_TEAM, ids["chat:slack:TEAM"], may_remove_global=False)
    assert removed.scope == "chat:slack:TEAM"
    assert "chat:slack:TEAM" not in {p.scope for p in await store.search(BOB_IN_TEAM, QUERY, 10)}


async def test_conversation_and_tasks_stay_in_their_scopes(store: MemoryStore):
    calc = TaskRecord("calculator", {"name": "calculator", "args": {"expression": "17*23"}}, "391")
    await store.remember(ALICE_DM, "what is 17 times 23", "391", [calc])
    await store.remember(CAROL_IN_OPS, "what is 17 times 24", "408",
                         [TaskRecord("calculator", {"name": "calculator"}, "408")])
    alice = await store.recall(ALICE_DM, "17 times 23 again?", turns=5, limit=3)
    assert [t.question for t in alice.conversation] == ["what is 17 times 23"]
    assert [t.result for t in alice.tasks] == ["391"]
    assert alice.tasks[0].command == calc.command
    bob = await store.recall(BOB_DM, "17 times 23 again?", turns=5, limit=3)
    assert bob.conversation == () and bob.tasks == ()
    team = await store.recall(BOB_IN_TEAM, "17 times 24?", turns=5, limit=3)
    assert team.conversation == () and team.tasks == ()


async def test_recall_returns_the_last_turns_in_order(store: MemoryStore):
    for i in range(6):
        await store.remember(ALICE_IN_TEAM, f"question {i}", f"answer {i}", [])
    recall = await store.recall(ALICE_IN_TEAM, "next", turns=3, limit=3)
    assert [t.question for t in recall.conversation] == ["question 3", "question 4", "question 5"]
    # The team conversation is the chat's, so Bob in the same chat sees it too; Alice's DM does not.
    assert len((await store.recall(BOB_IN_TEAM, "next", turns=3, limit=3)).conversation) == 3
    assert (await store.recall(ALICE_DM, "next", turns=3, limit=3)).conversation == ()
