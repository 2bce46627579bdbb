"""The fair gate for LLM slots on its own: who gets the next free slot, and where a waiting
turn stands."""

from __future__ import annotations

import asyncio

import pytest

from kagentbot.agent.slots import Claim, FairGate


async def _served_order(gate: FairGate, claims: list[Claim]) -> list[str]:
    """Fill the gate, queue `claims` in order, then free the slots: each waiter, once served,
    gives its slot back at once, so the order of service is the gate's choice alone."""
    holder = Claim("holder", "elsewhere")
    for _ in range(gate.capacity):
        await gate.acquire(holder)
    order: list[str] = []

    async def take(claim: Claim) -> None:
        await gate.acquire(claim)
        order.append(claim.turn)
        await gate.release(claim)

    waiting = [asyncio.create_task(take(c)) for c in claims]
    await asyncio.sleep(0)
    for _ in range(gate.capacity):
        await gate.release(holder)
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    return order


async def test_users_take_turns_whatever_order_they_asked_in():
    gate = FairGate(1)
    flood = [Claim("A", "c1", turn=f"a{n}") for n in range(5)]
    others = [Claim("B", "c2", turn="b0"), Claim("C", "c3", turn="c0")]
    order = await _served_order(gate, flood + others)
    assert order[:3] == ["a0", "b0", "c0"]
    assert order[3:] == ["a1", "a2", "a3", "a4"]


async def test_interactive_turns_go_before_scheduled_ones():
    gate = FairGate(1)
    claims = [Claim("A", "c1", "scheduled", turn="s1"), Claim("B", "c2", "scheduled", turn="s2"),
              Claim("C", "c3", turn="i1")]
    assert await _served_order(gate, claims) == ["i1", "s1", "s2"]


async def test_a_chat_at_its_share_is_passed_over_while_another_chat_waits():
    gate = FairGate(4, chat_share=0.5)  # a chat holds at most 2 of 4 while others wait
    for claim in (Claim("A", "busy"), Claim("B", "busy"), Claim("E", "third"), Claim("F", "third")):
        await gate.acquire(claim)
    busy = asyncio.create_task(gate.acquire(Claim("C", "busy", turn="busy")))
    quiet = asyncio.create_task(gate.acquire(Claim("D", "quiet", turn="quiet")))
    await asyncio.sleep(0)
    await gate.release(Claim("F", "third"))
    await asyncio.sleep(0)
    assert quiet.done() and not busy.done()  # C asked first, but its chat held its share
    await gate.release(Claim("E", "third"))
    await asyncio.sleep(0)
    assert busy.done()  # nobody else waits: the share yields rather than leave a slot idle


async def test_no_slot_stays_idle_when_only_one_chat_wants_them():
    gate = FairGate(4, chat_share=0.5)
    for n in range(4):
        await asyncio.wait_for(gate.acquire(Claim(f"U{n}", "busy")), 1)
    assert gate.in_use() == 4


async def test_position_counts_who_is_served_first_and_a_cancelled_wait_leaves_the_queue():
    gate = FairGate(1)
    await gate.acquire(Claim("holder", "x"))
    tasks = [asyncio.create_task(gate.acquire(c)) for c in (
        Claim("A", "c1", turn="a0"), Claim("A", "c1", turn="a1"), Claim("B", "c2", turn="b0"))]
    await asyncio.sleep(0)
    assert [await gate.position(t) for t in ("a0", "b0", "a1")] == [0, 1, 2]
    assert gate.queue_length() == 3
    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    # A was not served in this round yet: A's next call still goes first
    assert await gate.position("a0") is None and [await gate.position(t) for t in ("a1", "b0")] == [0, 1]
    assert gate.queue_length() == 2
    await gate.release(Claim("holder", "x"))
    await asyncio.sleep(0)
    assert tasks[1].done() and not tasks[2].done() and gate.in_use() == 1
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_first_slot_of_a_turn_marks_it_started():
    gate = FairGate(1)
    started = asyncio.Event()
    await gate.acquire(Claim("A", "c", turn="t", started=started))
    assert started.is_set()


@pytest.mark.parametrize("capacity", [1, 3])
async def test_every_wait_is_served_exactly_once(capacity):
    gate = FairGate(capacity, chat_share=0.5)
    held = 0
    peak = 0

    async def call(n: int) -> None:
        nonlocal held, peak
        await gate.acquire(Claim(f"U{n % 4}", f"c{n % 2}"))
        held += 1
        peak = max(peak, held)
        await asyncio.sleep(0.001)
        held -= 1
        await gate.release(Claim(f"U{n % 4}", f"c{n % 2}"))

    await asyncio.wait_for(asyncio.gather(*(call(n) for n in range(40))), 5)
    assert peak == capacity and gate.in_use() == 0 and gate.queue_length() == 0


async def test_a_scheduled_call_waiting_past_its_patience_goes_before_interactive_ones():
    gate = FairGate(1, scheduled_patience=0.05)
    holder = Claim("holder", "x")
    await gate.acquire(holder)
    order: list[str] = []

    async def take(claim: Claim) -> None:
        await gate.acquire(claim)
        order.append(claim.turn)
        await gate.release(claim)

    waiting = [asyncio.create_task(take(Claim("S", "c1", "scheduled", turn="s")))]
    await asyncio.sleep(0.06)
    waiting += [asyncio.create_task(take(Claim(u, "c2", turn=u))) for u in ("A", "B")]
    await asyncio.sleep(0)
    await gate.release(holder)
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert order == ["s", "A", "B"]


async def test_a_user_who_just_began_asking_goes_before_users_whose_calls_pile_up():
    gate = FairGate(1)
    holder = Claim("holder", "x")
    await gate.acquire(holder)
    order: list[str] = []
    late: list[asyncio.Task] = []

    async def take(claim: Claim) -> None:
        await gate.acquire(claim)
        order.append(claim.turn)
        if len(order) == 4:  # A and B have had two calls each: C asks now, while b1 holds the slot
            late.append(asyncio.create_task(take(Claim("C", "c3", turn="c0"))))
            await asyncio.sleep(0)
        await gate.release(claim)

    waiting = [asyncio.create_task(take(Claim(u, f"chat-{u}", turn=f"{u.lower()}{n}")))
               for n in range(4) for u in ("A", "B")]
    await asyncio.sleep(0)
    await gate.release(holder)
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    await asyncio.wait_for(asyncio.gather(*late), 1)
    # C has had no share yet: it goes next, then A and B take turns again
    assert order == ["a0", "b0", "a1", "b1", "c0", "a2", "b2", "a3", "b3"]


async def test_a_user_asking_one_call_at_a_time_takes_turns_with_a_backed_up_one():
    """Served, then asking again at once, a user with nothing under way starts afresh at the
    clock: it alternates with a user whose calls were already waiting, no more, no less."""
    gate = FairGate(1)
    holder = Claim("holder", "x")
    await gate.acquire(holder)
    order: list[str] = []

    async def take(claim: Claim) -> None:
        await gate.acquire(claim)
        order.append(claim.turn)
        await gate.release(claim)

    async def one_at_a_time(calls: int) -> None:
        for n in range(calls):
            await take(Claim("A", "ca", turn=f"a{n}"))

    waiting = [asyncio.create_task(one_at_a_time(3))]
    waiting += [asyncio.create_task(take(Claim("B", "cb", turn=f"b{n}"))) for n in range(3)]
    await asyncio.sleep(0)
    await gate.release(holder)
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


async def test_a_user_with_a_call_under_way_keeps_its_place_behind_others():
    """A user whose earlier call still holds a slot is not idle: its next call is tagged one past
    that call, behind a user who asked later but has nothing under way."""
    gate = FairGate(2)
    await gate.acquire(Claim("A", "ca", turn="a0"))  # A holds one slot throughout
    await gate.acquire(Claim("holder", "x"))
    order: list[str] = []

    async def take(claim: Claim) -> None:
        await gate.acquire(claim)
        order.append(claim.turn)
        await gate.release(claim)

    waiting = [asyncio.create_task(take(Claim("A", "ca", turn="a1")))]  # A asks first
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(take(Claim("B", "cb", turn="b0"))))
    await asyncio.sleep(0)
    await gate.release(Claim("holder", "x"))
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert order == ["b0", "a1"]
