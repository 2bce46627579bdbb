"""The isolation matrix: users × chats (DM, channel, public thread, private thread, group) × every
path (recall, kb_search, task history, conversation history, the posted answer, /kb list, /kb
search, /kb remove, schedules, personas). Every document, question and answer carries a marker
word; an oracle written from the rules in docs/privacy.md says who may see each marker where,
and every cell looks for markers it must not hold, in what reached the model at the fake
Ollama's wire or in what was posted. Each cell also checks that it saw what it should, so a
path that returned nothing cannot pass for a private one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.privacy.world import MARKER, Chat, Turn, World, doc_id, open_world

USERS = ("alice", "bob", "carol")
CHANNEL = Chat("channel", "C1", place="C1")
PUBLIC_THREAD = Chat("public thread", "C1", thread_id="T1", place="C1")  # continues its channel
PRIVATE_THREAD = Chat("private thread", "P1")  # its own chat, as the Discord adapter derives it
GROUP = Chat("group", "G1")
SHARED = (CHANNEL, PUBLIC_THREAD, PRIVATE_THREAD, GROUP)
MEMBERS = {CHANNEL: {"alice", "bob"}, PUBLIC_THREAD: {"alice", "bob"}, PRIVATE_THREAD: {"alice", "carol"},
           GROUP: {"alice", "bob", "carol"}}
SHARING = {("alice", "G1")}  # Alice turned /kb share on in the group; nobody else anywhere
SHORT = {"channel": "c1", "public thread": "t1", "private thread": "p1", "group": "g1"}
PERSONAS = {"bob": "Research Assistant"}  # Bob's own choice; the private thread has its own persona
CHAT_PERSONA = {"P1": "Research Assistant"}
DEFAULT_PERSONA = "KAgent"
PATHS = ("recall", "kb_search", "task history", "conversation history", "answer",
         "kb list", "kb search", "kb remove", "schedules", "personas")


def dm(user: str) -> Chat:
    return Chat(f"dm-{user}", f"D-{user.upper()}", is_dm=True)


def short(chat: Chat) -> str:
    return "dm" if chat.is_dm else SHORT[chat.name]


def cells() -> list[tuple[str, Chat]]:
    return [(u, dm(u)) for u in USERS] + [(u, c) for c in SHARED for u in sorted(MEMBERS[c])]


@dataclass(frozen=True)
class Origin:
    kind: str  # "doc-user" | "doc-chat" | "doc-global" | "turn"
    owner: str = ""
    place: str = ""  # a chat's place; "dm" for a turn in its owner's DM


def may_see(origin: Origin, viewer: str, chat: Chat, sharing: set[tuple[str, str]] = SHARING) -> bool:
    """The rules, independent of the code: a shared chat reads its own place and global; a user's
    private material reaches them in their DM, or where they share; what was derived from
    material is seen only by whoever may see all of it."""
    shares = not chat.is_dm and (viewer, chat.where) in sharing
    if origin.kind == "doc-global":
        return True
    if origin.kind == "doc-chat":
        return not chat.is_dm and chat.where == origin.place
    owners_own = viewer == origin.owner and (chat.is_dm or shares)
    if origin.kind == "doc-user" or origin.place == "dm":
        return owners_own
    if (origin.owner, origin.place) in sharing:  # drawn from the owner's private notes there
        return viewer == origin.owner and chat.where == origin.place and shares
    return not chat.is_dm and chat.where == origin.place


class Matrix:
    def __init__(self, world: World) -> None:
        self.w = world
        self.origins: dict[str, Origin] = {}
        self.docs: dict[str, tuple[str, Origin]] = {}  # doc id → (marker, origin)
        self.checked = 0
        self.leaks: list[str] = []
        self.misses: list[str] = []

    # -- setup ---------------------------------------------------------------------------------
    async def add_doc(self, user: str, chat: Chat, marker: str, origin: Origin, scope: str = "") -> None:
        option = f"--scope {scope} " if scope else ""
        reply = (await self.w.send(user, chat, f"/kb add {option}Locker note {marker}: the locker code is {marker}.")).replies
        assert "Added" in reply, reply
        self.origins[marker] = origin
        self.docs[doc_id(reply)] = (marker, origin)

    def turn_markers(self, question: str, origin: Origin) -> None:
        self.origins[question] = origin
        self.origins["zqa" + question.removeprefix("zq")] = origin  # the answer names it

    async def setup(self) -> None:
        for user in USERS:
            await self.add_doc(user, dm(user), f"zqdoc{user}", Origin("doc-user", user))
        await self.add_doc("ADMIN", dm("admin"), "zqdocglobal", Origin("doc-global"), scope="global")
        for chat in (CHANNEL, PRIVATE_THREAD, GROUP):
            await self.add_doc(sorted(MEMBERS[chat])[0], chat, f"zqdoc{short(chat)}", Origin("doc-chat", place=chat.where),
                               scope="chat")
        for user, place in SHARING:
            assert "Sharing is on" in (await self.w.send(user, GROUP if place == "G1" else CHANNEL, "/kb share on")).replies
        await self.w.send("bob", dm("bob"), "/persona use research")
        await self.w.send("ADMIN", PRIVATE_THREAD, "/persona set research")
        for user, chat in cells():
            question = f"zqq{user}{short(chat)}"
            self.turn_markers(question, Origin("turn", user, "dm" if chat.is_dm else chat.where))
            await self.w.send(user, chat, f"what is the locker code {question}")

    # -- checks --------------------------------------------------------------------------------
    def check(self, path: str, viewer: str, chat: Chat, text: str, expect: set[str], sharing=SHARING, *,
              cell: bool = True, nonempty: bool = False) -> None:
        """`cell`: counts as a cell of the matrix (a second look at cells already counted does not)."""
        self.checked += cell
        where = f"{path} for {viewer} in {chat.name}"
        if nonempty and not text.strip():
            self.misses.append(f"{where}: nothing there")
        found = set(MARKER.findall(text))
        leaked = sorted(m for m in found if m in self.origins and not may_see(self.origins[m], viewer, chat, sharing))
        if leaked:
            self.leaks.append(f"{where}: {leaked}")
        if not expect <= found:
            self.misses.append(f"{where}: expected {sorted(expect - found)}")

    def expected_docs(self, viewer: str, chat: Chat, sharing=SHARING) -> set[str]:
        return {m for m, o in self.origins.items() if o.kind.startswith("doc") and may_see(o, viewer, chat, sharing)}

    async def ask(self, viewer: str, chat: Chat) -> None:
        turn = await self.w.send(viewer, chat, "what is the locker code now")
        docs = self.expected_docs(viewer, chat)
        self.check("recall", viewer, chat, turn.section("* Knowledge base"), docs)
        self.check("kb_search", viewer, chat, turn.section("* Complete tasks"), docs)
        self.check("task history", viewer, chat, turn.section("* Related earlier tasks"), set())
        self.check("conversation history", viewer, chat, turn.section("* Conversation"), set(), nonempty=True)
        self.check("answer", viewer, chat, turn.replies, set(), nonempty=True)
        self._persona(viewer, chat, turn)
        self.check("anything sent to the model", viewer, chat, turn.wire, set(), cell=False)

    def _persona(self, viewer: str, chat: Chat, turn: Turn) -> None:
        self.checked += 1
        expected = PERSONAS.get(viewer) or CHAT_PERSONA.get(chat.chat_id) or DEFAULT_PERSONA
        names = {m for p in turn.prompts for m in re.findall(r"^You are (?!now )(.+)\.$", p, re.M)}
        if names != {expected}:
            self.leaks.append(f"personas for {viewer} in {chat.name}: {sorted(names)} instead of {expected!r}")

    async def commands(self, viewer: str, chat: Chat) -> None:
        """Commands never use sharing: their replies follow the no-sharing rule in every chat."""
        docs = self.expected_docs(viewer, chat, sharing=set())
        listed = (await self.w.send(viewer, chat, "/kb list")).replies
        self.check("kb list", viewer, chat, listed, docs, sharing=set())
        found = (await self.w.send(viewer, chat, "/kb search locker code")).replies
        self.check("kb search", viewer, chat, found, docs, sharing=set())
        self.checked += 1
        for doc, (marker, origin) in self.docs.items():
            if not may_see(origin, viewer, chat, sharing=set()) and origin.kind != "doc-global":
                reply = (await self.w.send(viewer, chat, f"/kb remove {doc}")).replies
                if "Removed" in reply or marker in reply:
                    self.leaks.append(f"kb remove for {viewer} in {chat.name}: {reply!r}")

    async def schedules(self) -> None:
        for user, chat in cells():
            question = f"zqs{user}{short(chat)}"
            self.turn_markers(question, Origin("turn", user, "dm" if chat.is_dm else chat.where))
            reply = (await self.w.send(user, chat, f"/schedule add every day at 09:00 what is the locker code {question}")).replies
            assert reply.startswith("Scheduled:"), reply
        jobs = {spec.question.split()[-1]: spec.id for spec in self.w.bot.services.scheduler.book.file.jobs.values()}
        for user, chat in cells():
            self.checked += 1
            listing = (await self.w.send(user, chat, "/schedule list")).replies
            others = sorted(m for m in MARKER.findall(listing) if m.startswith("zqs") and not m.startswith(f"zqs{user}"))
            if others or f"zqs{user}{short(chat)}" not in listing:
                self.leaks.append(f"schedules for {user} in {chat.name}: listed {others}")
            fired = await self.w.fire(jobs[f"zqs{user}{short(chat)}"])
            self.check("schedules", user, chat, fired.wire + fired.replies, {f"zqs{user}{short(chat)}"}, cell=False)



async def test_isolation_matrix_users_by_chats_by_paths_has_no_leak(fake_ollama, make_settings, start_bot):
    world = await open_world(make_settings, start_bot, fake_ollama)
    matrix = Matrix(world)
    await matrix.setup()
    for viewer, chat in cells():
        await matrix.ask(viewer, chat)
        await matrix.commands(viewer, chat)
    await matrix.schedules()
    scopes = sorted({d.scope for d in await world.bot.services.memory.list_documents(
        ["global", *(f"user:testchat:{u}" for u in USERS), *(f"chat:testchat:{c}" for c in ("C1", "P1", "G1"))])})
    stored = {d.id for d in await world.bot.services.memory.list_documents(scopes)}
    gone = sorted(marker for doc, (marker, _) in matrix.docs.items() if doc not in stored)

    expected_cells = len(cells()) * len(PATHS)
    print(f"\nisolation matrix: {len(USERS)} users × {len(SHARED) + 1} kinds of chat × {len(PATHS)} paths: "
          f"{matrix.checked} cells checked, {len(matrix.leaks)} leaks")
    assert matrix.checked == expected_cells
    assert matrix.leaks == [] and gone == [], "\n".join(matrix.leaks)
    assert matrix.misses == []
