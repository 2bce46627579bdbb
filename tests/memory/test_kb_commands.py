"""The /kb chat command through the real CommandRouter, with a real store."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kagentbot.bot.kb_commands import kb_command
from kagentbot.chat.commands import CommandContext, CommandRouter
from kagentbot.chat.messages import Attachment, IncomingMessage
from kagentbot.memory.store import MemoryStore

from .documents import CORRUPT_PDF, docx_with


@dataclass(frozen=True)
class Services:  # the bot's services container as far as /kb is concerned
    memory: MemoryStore | None


def attachment(name: str, data: bytes) -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment(name=name, size=len(data), fetch=fetch)


@pytest.fixture
def send(store: MemoryStore):
    router = CommandRouter()
    router.add(kb_command())

    async def send(text: str, user: str = "ALICE", chat: str = "TEAM", dm: bool = False,
                   admin: bool = False, attachments: tuple = (), services=None):
        message = IncomingMessage("slack", chat, user, text, is_dm=dm, attachments=attachments)
        return await router.dispatch(CommandContext(message, services or Services(store), admin))

    return send


async def test_add_list_search_remove_in_a_dm(send):
    added = await send("/kb add 年假政策：员工每年享有十五天带薪年假。", dm=True, chat="D1")
    assert added.text.startswith("✓ Added") and "private to you" in added.text and added.private
    doc_id = added.text.split(" as ")[1].split(":")[0]
    listed = await send("/kb list", dm=True, chat="D1")
    assert doc_id in listed.text and listed.private
    found = await send("/kb search 年假有几天", dm=True, chat="D1")
    assert "十五天" in found.text and f"[{doc_id}]" in found.text
    assert "= " in (await send("/kb add 年假政策：员工每年享有十五天带薪年假。", dm=True, chat="D1")).text
    removed = await send(f"/kb remove {doc_id}", dm=True, chat="D1")
    assert removed.text.startswith("Removed")
    assert "No documents" in (await send("/kb list", dm=True, chat="D1")).text


async def test_attachments_are_added_and_bad_ones_explained(send):
    reply = await send("/kb add", attachments=(
        attachment("memo.docx", docx_with(["The offsite is in Hangzhou in May."])),
        attachment("broken.pdf", CORRUPT_PDF),
    ))
    lines = reply.text.splitlines()
    assert lines[0].startswith("✓ Added memo.docx")
    assert lines[1].startswith("✗ broken.pdf: not added.") and "could not read the PDF" in lines[1]
    assert "Hangzhou" in (await send("/kb search offsite location", dm=True, chat="D1")).text
    assert "broken.pdf" not in (await send("/kb list", dm=True, chat="D1")).text
    # in the shared channel, the private memo is neither listed nor quoted for everyone to see
    in_channel = await send("/kb search offsite location")
    assert "Hangzhou" not in in_channel.text and "DM me" in in_channel.text
    assert "memo.docx" not in (await send("/kb list")).text


async def test_scope_rules(send):
    assert "not in a direct message" in (await send("/kb add --scope chat hello", dm=True, chat="D1")).text
    assert "Only an admin" in (await send("/kb add --scope global hello")).text
    assert "Unknown scope" in (await send("/kb add --scope=everyone hello")).text
    shared = await send("/kb add --scope chat The team standup is at 9:30 every weekday.")
    assert "this chat" in shared.text
    assert "standup" in (await send("/kb search standup time", user="BOB")).text  # same chat
    assert "Nothing" in (await send("/kb search standup time", user="BOB", chat="OTHER")).text
    assert "global" in (await send("/kb add --scope global Office closes at 6pm.", admin=True)).text
    assert "Office closes" in (await send("/kb search office closing", user="CAROL", dm=True, chat="D9")).text


async def test_others_cannot_remove_or_see_by_id(send):
    added = await send("/kb add Alice's private note about the garden shed key.", dm=True, chat="D1")
    doc_id = added.text.split(" as ")[1].split(":")[0]
    assert "no document" in (await send(f"/kb remove {doc_id}", user="BOB", dm=True, chat="D2")).text
    assert doc_id not in (await send("/kb list", user="BOB", dm=True, chat="D2")).text
    assert "Nothing" in (await send("/kb search garden shed key", user="BOB", dm=True, chat="D2")).text
    glob = await send("/kb add --scope global Visitors sign in at reception.", admin=True)
    glob_id = glob.text.split(" as ")[1].split(":")[0]
    assert "only an admin" in (await send(f"/kb remove {glob_id}", user="BOB")).text
    assert glob_id in (await send("/kb list", user="BOB")).text


async def test_user_mistakes_get_usage_and_urls_are_checked(send):
    assert "Usage: /kb" in (await send("/kb")).text
    assert "Usage: /kb" in (await send("/kb frobnicate")).text
    assert "Usage: /kb" in (await send("/kb add")).text
    assert "Usage: /kb" in (await send("/kb remove")).text
    assert "loopback address" in (await send("/kb add http://127.0.0.1:9/admin")).text
    assert "not available" in (await send("/kb list", services=Services(None))).text


async def test_a_failed_download_is_explained(send):
    async def refuse() -> bytes:
        raise ValueError("the file is over the platform's 20 MB download limit")

    reply = await send("/kb add", attachments=(Attachment("big.pdf", 1000, fetch=refuse),))
    assert reply.text.startswith("✗ big.pdf: not added.") and "20 MB" in reply.text
