"""The store in the real agent loop (fake Ollama at the wire): the memory section carries the
asker's knowledge and nobody else's, and the turn is remembered afterwards."""

from __future__ import annotations

import json

from kagentbot.agent.llm import make_client
from kagentbot.agent.loop import Agent, TurnRequest
from kagentbot.memory.ingest import from_text
from kagentbot.memory.store import MemoryStore
from kagentbot.memory.types import Audience
from kagentbot.tools.catalog import build_registry
from tests.fakes.ollama_server import Scripted

ALICE = Audience("user:slack:ALICE")
BOB = Audience("user:slack:BOB")


async def test_recall_feeds_the_prompt_and_the_turn_is_remembered(fake_ollama, make_settings, builtin):
    fake_ollama.responder = lambda body: Scripted("You get fifteen days.")
    settings = make_settings(llm={"host": fake_ollama.url, "mode": "native"}, agent={"max_steps": 1})
    store = await MemoryStore.open(settings, embedder=builtin)
    await store.add_document(from_text("Alice's team gets fifteen days of annual leave, 年假十五天。", settings.memory), ALICE.user_scope)
    await store.add_document(from_text("Bob's contract gives him thirty days of annual leave.", settings.memory), BOB.user_scope)
    agent = Agent(settings, make_client(settings.llm), build_registry(settings), store, knowledge=store.for_audience)

    events = [e async for e in agent.run(TurnRequest("How many days of annual leave do I get?", ALICE))]
    assert type(events[-1]).__name__ == "AnswerDone"
    sent = json.dumps(fake_ollama.chat_requests(), ensure_ascii=False)
    assert "fifteen days of annual leave" in sent
    assert "thirty days" not in sent  # Bob's document never reaches Alice's prompt

    recall = await store.recall(ALICE, "annual leave", turns=2, limit=1)
    assert [(t.question, t.answer) for t in recall.conversation] == [
        ("How many days of annual leave do I get?", "You get fifteen days.")
    ]
    assert (await store.recall(BOB, "annual leave", turns=2, limit=1)).conversation == ()
