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

from kagentbot.config.files import append_line, atomic_write, exclusive, last_json_lines
from kagentbot.memory.types import PRIVATE_IN


@dataclass(frozen=True)
class ShareEntry:
    when: str  # ISO 8601, UTC
    actor: str  # "slack:U1": who changed it (always the user whose memory it is)
    action: str  # "share-on" | "share-off" | "move"
    user_scope: str
    chat_scope: str


class ShareBook:
    """The opt-ins, read from disk only when the file changed (a stat per turn)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "privacy"
        self._lock = asyncio.Lock()  # one writer at a time within the process
        self._stamp: tuple[int, int, int] | None = None
        self._on: frozenset[str] = frozenset()

    @property
    def _file(self) -> Path:
        return self.root / "sharing.json"

    async def is_on(self, user_scope: str, chat_scope: str) -> bool:
        if not chat_scope:
            return False
        stamp = self._current_stamp()
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
    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            status = self._file.stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size  # a rewrite is a new file

    def _read(self) -> frozenset[str]:
        try:
            data = json.loads(self._file.read_text("utf-8"))
        except FileNotFoundError:
            return frozenset()
        return frozenset(str(k) for k in data.get("on", []))

    def _update(self, change):
        with exclusive(self.root / ".sharing.lock"):
            keys = set(self._read())
            result = change(keys)
            atomic_write(self._file, json.dumps({"on": sorted(keys)}, indent=1))
            return result

    async def _record(self, actor: str, action: str, user_scope: str, chat_scope: str) -> None:
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entry = ShareEntry(when, actor, action, user_scope, chat_scope)
        await asyncio.to_thread(self._append_audit, json.dumps(entry.__dict__, ensure_ascii=False))

    def _append_audit(self, line: str) -> None:
        append_line(self.root / "audit.jsonl", line)

    def _read_audit(self, limit: int) -> list[ShareEntry]:
        return [ShareEntry(**entry) for entry in last_json_lines(self.root / "audit.jsonl", limit)]


def _key(user_scope: str, chat_scope: str) -> str:
    return f"{user_scope}{PRIVATE_IN}{chat_scope}"
