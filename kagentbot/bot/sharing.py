"""Who allowed their private memory in which shared chat (`/kb share on|off`). Off by default:
in a channel, group or thread the bot reads only the chat's memory and global, unless the asker
turned sharing on for that very chat. Layout under `<data_dir>/privacy/`: `sharing.json` (the
opt-ins) and `audit.jsonl` (every change, append-only, like the persona audit log)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kagentbot.config.files import Document, FileDocument, FileJournal, Journal
from kagentbot.memory.types import PRIVATE_IN


@dataclass(frozen=True)
class ShareEntry:
    when: str  # ISO 8601, UTC
    actor: str  # "slack:U1": who changed it (always the user whose memory it is)
    action: str  # "share-on" | "share-off" | "move"
    user_scope: str
    chat_scope: str


class ShareBook:
    """The opt-ins, read again only when the document changed (a stat per turn). `document` and
    `journal`: shared ones when several replicas serve one bot, else files in the data directory."""

    def __init__(self, data_dir: Path, document: Document | None = None, journal: Journal | None = None) -> None:
        self.root = Path(data_dir) / "privacy"
        self._local = document is None
        self._document = document or FileDocument(self.root / "sharing.json", self.root / ".sharing.lock")
        self._journal = journal or FileJournal(self.root / "audit.jsonl")
        self._lock = asyncio.Lock()  # one writer at a time within the process
        self._stamp: object = None
        self._on: frozenset[str] = frozenset()

    async def is_on(self, user_scope: str, chat_scope: str) -> bool:
        if not chat_scope:
            return False
        # a local file is stat'ed in place; a shared document is a network round trip
        stamp = self._document.stamp() if self._local else await asyncio.to_thread(self._document.stamp)
        if stamp != self._stamp:
            self._on, self._stamp = await asyncio.to_thread(self._read), stamp
        return _key(user_scope, chat_scope) in self._on

    async def set(self, actor: str, user_scope: str, chat_scope: str, on: bool) -> bool:
        """Turn sharing on or off for this user in this chat; returns whether it was on before.
        Every call is audited, a repeat included: the log shows what was asked and when."""
        key = _key(user_scope, chat_scope)

        def change(keys: set[str]) -> bool:
            before = key in keys
            (keys.add if on else keys.discard)(key)
            return before

        async with self._lock:
            before = await asyncio.to_thread(self._update, change)
            await self._record(actor, "share-on" if on else "share-off", user_scope, chat_scope)
        return before

    async def move_chat(self, old_chat: str, new_chat: str) -> int:
        """A chat's opt-ins follow it to its new id (Telegram: a group upgraded to a supergroup)."""
        suffix = PRIVATE_IN + old_chat

        def change(keys: set[str]) -> list[str]:
            moving = [k for k in keys if k.endswith(suffix)]
            for k in moving:
                keys.discard(k)
                keys.add(k.removesuffix(old_chat) + new_chat)
            return moving

        async with self._lock:
            moved = await asyncio.to_thread(self._update, change)
            for k in moved:
                await self._record("system", "move", k.removesuffix(suffix), f"{old_chat} → {new_chat}")
        return len(moved)

    async def audit(self, limit: int = 20) -> list[ShareEntry]:
        return await asyncio.to_thread(self._read_audit, limit)

    # -- files ---------------------------------------------------------------------------------
    def _read(self) -> frozenset[str]:
        text = self._document.read()
        if text is None:
            return frozenset()
        return frozenset(str(k) for k in json.loads(text).get("on", []))

    def _update(self, change):
        with self._document.holding():
            keys = set(self._read())
            result = change(keys)
            self._document.write(json.dumps({"on": sorted(keys)}, indent=1))
            return result

    async def _record(self, actor: str, action: str, user_scope: str, chat_scope: str) -> None:
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entry = ShareEntry(when, actor, action, user_scope, chat_scope)
        await asyncio.to_thread(self._append_audit, json.dumps(entry.__dict__, ensure_ascii=False))

    def _append_audit(self, line: str) -> None:
        self._journal.append(line)

    def _read_audit(self, limit: int) -> list[ShareEntry]:
        return [ShareEntry(**entry) for entry in self._journal.last(limit)]


def _key(user_scope: str, chat_scope: str) -> str:
    return f"{user_scope}{PRIVATE_IN}{chat_scope}"
