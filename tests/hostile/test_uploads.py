"""Hostile uploads: a .docx zip bomb is refused before it is unpacked, and parsing runs in a
child process with a CPU and memory budget, so what slips past the archive checks still cannot
stall the bot. Each gets a clear refusal, and nothing is stored."""

from __future__ import annotations

import io
import zipfile

import pytest

from kagentbot.bot.kb_commands import kb_command
from kagentbot.chat.commands import CommandContext, CommandRouter
from kagentbot.chat.messages import Attachment, IncomingMessage
from kagentbot.memory.ingest import IngestError, extract
from kagentbot.memory.store import MemoryStore
from tests.memory.documents import docx_with
from tests.memory.test_kb_commands import Services

PARAGRAPH = "<w:p><w:r><w:t>all work and no play</w:t></w:r></w:p>"
LIFTED = {"archive_max_ratio": 1_000_000, "archive_max_unpacked_mb": 10_000}  # past the archive checks


def docx_bomb(xml_mb: float) -> bytes:
    """A valid .docx whose document.xml repeats one paragraph until it is `xml_mb` MB unpacked."""
    source = zipfile.ZipFile(io.BytesIO(docx_with(["x"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                head, _, tail = data.partition(b"<w:body>")
                data = head + b"<w:body>" + PARAGRAPH.encode() * int(xml_mb * 1048576 / len(PARAGRAPH)) + tail
            bomb.writestr(info.filename, data, compresslevel=9)
    return out.getvalue()


def many_members(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for index in range(count):
            archive.writestr(f"word/media/{index}.bin", b"")
    return out.getvalue()


@pytest.fixture
async def kb(make_settings):
    stores = []

    async def open_kb(**memory):
        settings = make_settings(memory=memory)
        store = await MemoryStore.open(settings)
        stores.append(store)
        router = CommandRouter()
        router.add(kb_command())

        async def add(name: str, data: bytes) -> str:
            async def fetch() -> bytes:
                return data

            message = IncomingMessage("slack", "D1", "ALICE", "/kb add", is_dm=True,
                                      attachments=(Attachment(name=name, size=len(data), fetch=fetch),))
            return (await router.dispatch(CommandContext(message, Services(store), False))).text

        return add, store

    yield open_kb
    for store in stores:
        await store.flush()
        store.close()


async def test_a_docx_zip_bomb_is_refused_before_it_is_unpacked(kb):
    add, store = await kb()
    bomb = docx_bomb(6)
    assert len(bomb) < 100_000  # tens of kilobytes that unpack to 6 MB of XML
    reply = await add("report.docx", bomb)
    assert "report.docx was refused" in reply and "zip bomb" in reply and "nothing was added" in reply
    assert await store.list_documents(["user:slack:ALICE"]) == []
    assert "✓ Added" in await add("memo.docx", docx_with(["The offsite is in Hangzhou in May."]))  # a real one still works


def test_archive_member_count_and_unpacked_size_have_limits(make_settings):
    limits = make_settings(memory={"archive_max_members": 50, "archive_max_unpacked_mb": 2}).memory
    with pytest.raises(IngestError, match="holds 201 files; the limit is 50"):
        extract(many_members(200), "many.docx", limits)
    with pytest.raises(IngestError, match=r"unpacks to \d MB; the limit is 2 MB"):
        extract(docx_bomb(3), "big.docx", limits.model_copy(update={"archive_max_ratio": 1_000_000}))


async def test_parsing_past_its_cpu_budget_is_stopped_and_refused(kb):
    add, store = await kb(parse_cpu_seconds=1, **LIFTED)
    reply = await add("slow.docx", docx_bomb(6))
    assert "slow.docx was refused" in reply and "more than 1 s of CPU time" in reply
    assert await store.list_documents(["user:slack:ALICE"]) == []


async def test_parsing_past_its_memory_budget_is_stopped_and_refused(kb):
    add, store = await kb(parse_memory_mb=128, **LIFTED)
    reply = await add("hungry.docx", docx_bomb(6))
    assert "hungry.docx was refused" in reply and "nothing was added" in reply
    assert await store.list_documents(["user:slack:ALICE"]) == []
