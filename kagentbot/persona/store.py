"""Personas on disk: built-ins shipped with the package, custom personas created by admins,
who chose which (per user and per chat), and an append-only audit log. Layout under
`<data_dir>/personas/`: `custom/<name>.toml`, `selections.json`, `audit.jsonl`.

Only the `/persona` command handlers and the `kagentbot persona` CLI call the writing methods
(a test checks this): nothing a model, tool, document or web page says reaches them.

A custom persona may carry a built-in's name: it then overrides the built-in, and deleting it
brings the built-in back. Built-ins themselves cannot be deleted."""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kagentbot.config.files import Document, FileDocument, FileFolder, FileJournal, Folder, Journal
from kagentbot.persona.model import DEFAULT_PERSONA, Persona, PersonaError, persona_from_toml, persona_to_toml

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

log = logging.getLogger(__name__)

Source = Literal["built-in", "custom", "custom (overrides built-in)"]


class PersonaStoreError(Exception):
    """A request the store refuses (unknown persona, deleting a built-in, ...); the text says why."""


@dataclass(frozen=True)
class Listed:
    persona: Persona
    source: Source


@dataclass(frozen=True)
class Resolution:
    persona: Persona
    reason: str  # "your choice" | "this channel's persona" | "default"
    note: str = ""  # set when a chosen persona no longer exists and the default stood in


@dataclass(frozen=True)
class AuditEntry:
    when: str  # ISO 8601, UTC
    actor: str  # "slack:U1", "console:alice"
    action: str  # "create" | "edit" | "delete" | "use" | "set-chat" | "set-user" | "clear-..."
    target: str  # persona name, "user:slack:U1" or "chat:slack:C1"
    before: Any
    after: Any


@dataclass(frozen=True)
class PersonaFiles:
    """Where the store keeps custom personas, the selections and the audit log: files under
    the data directory, or shared ones when several replicas serve one bot."""

    custom: Folder
    selections: Document
    audit: Journal

    @classmethod
    def local(cls, root: Path) -> PersonaFiles:
        return cls(FileFolder(root / "custom", ".toml"), FileDocument(root / "selections.json", root / ".selections.lock"),
                   FileJournal(root / "audit.jsonl"))


def builtin_personas() -> dict[str, Persona]:
    found = {}
    for entry in resources.files("kagentbot.persona").joinpath("builtin").iterdir():
        if entry.name.endswith(".toml"):
            persona = persona_from_toml(entry.read_bytes(), f"built-in persona {entry.name}")
            found[persona.name] = persona
    return found


class PersonaStore:
    def __init__(self, settings: Settings, files: PersonaFiles | None = None) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir) / "personas"
        self.files = files or PersonaFiles.local(self.root)
        self._builtin = builtin_personas()
        self._lock = asyncio.Lock()  # one writer at a time within the process

    @classmethod
    async def open(cls, settings: Settings, files: PersonaFiles | None = None) -> PersonaStore:
        store = cls(settings, files)
        await asyncio.to_thread(store._ensure_dirs)
        return store

    def _ensure_dirs(self) -> None:
        (self.root / "custom").mkdir(parents=True, exist_ok=True)

    # -- reading -------------------------------------------------------------------------------
    async def list(self) -> list[Listed]:
        custom = await asyncio.to_thread(self._read_custom)
        names = sorted(set(self._builtin) | set(custom))
        return [self._listed(n, custom) for n in names]

    def _listed(self, name: str, custom: dict[str, Persona]) -> Listed:
        if name in custom:
            return Listed(custom[name], "custom (overrides built-in)" if name in self._builtin else "custom")
        return Listed(self._builtin[name], "built-in")

    async def get(self, name: str, *, strict: bool = False) -> Persona | None:
        """The persona called `name`. A hand-edited custom file that no longer validates counts as
        missing (turns fall back to the default and say so) unless `strict`, which raises PersonaError."""
        try:
            custom = await asyncio.to_thread(self._read_one_custom, name)
        except PersonaError:
            if strict:
                raise
            log.warning("custom persona %r does not validate; `kagentbot persona show %s` says why", name, name)
            custom = None
        return custom or self._builtin.get(name)

    async def default(self) -> Resolution:
        wanted = self.settings.persona.default
        persona = await self.get(wanted)
        if persona is None:
            return Resolution(DEFAULT_PERSONA, "default", f"the configured default persona {wanted!r} does not exist")
        return Resolution(persona, "default")

    async def resolve(self, user_key: str, chat_key: str = "") -> Resolution:
        """The persona for a turn: the user's own choice, else the chat's, else the default."""
        selections = await asyncio.to_thread(self._read_selections)
        choices = [(selections["users"].get(user_key), "your choice")]
        if chat_key:
            choices.append((selections["chats"].get(chat_key), "this channel's persona"))
        for name, reason in choices:
            if not name:
                continue
            persona = await self.get(name)
            if persona is not None:
                return Resolution(persona, reason)
            fallback = await self.default()
            note = f"the persona {name!r} chosen as {reason} no longer exists, so the default is used"
            return Resolution(fallback.persona, "default", note)
        return await self.default()

    async def resolve_message(self, message: Any) -> Resolution:
        """`resolve` for an IncomingMessage (DMs have no chat persona)."""
        return await self.resolve(message.user_key, "" if message.is_dm else chat_key(message.platform, message.chat_id))

    async def persona_for(self, message: Any) -> Persona:
        return (await self.resolve_message(message)).persona

    async def selections(self) -> dict[str, dict[str, str]]:
        return await asyncio.to_thread(self._read_selections)

    async def audit(self, limit: int = 20) -> builtins.list[AuditEntry]:
        return await asyncio.to_thread(self._read_audit, limit)

    # -- writing (command handlers and CLI only) ------------------------------------------------
    async def save_persona(self, actor: str, persona: Persona, *, mode: Literal["create", "edit"]) -> Persona | None:
        """Create or edit a custom persona. Returns the persona it replaced (None for create)."""
        async with self._lock:
            before = await self.get(persona.name)
            self._check_name(persona.name)
            exists_custom = await asyncio.to_thread(self._has_custom, persona.name)
            if mode == "create" and exists_custom:
                raise PersonaStoreError(f"A persona named {persona.name!r} already exists; use edit to change it.")
            if mode == "edit" and before is None and not exists_custom:
                raise PersonaStoreError(f"There is no persona named {persona.name!r} to edit; use create.")
            await asyncio.to_thread(self.files.custom.write, persona.name, persona_to_toml(persona))
            await self._record(actor, mode, persona.name, _dump(before), _dump(persona))
            return before

    async def delete_persona(self, actor: str, name: str) -> Persona | None:
        """Delete a custom persona. Returns the built-in that shows through again, if any."""
        async with self._lock:
            self._check_name(name)
            try:
                before = await asyncio.to_thread(self._read_one_custom, name)
            except PersonaError:
                before = None if not self._has_custom(name) else Persona(name=name, display_name="(unreadable file)")
            if before is None:
                if name in self._builtin:
                    raise PersonaStoreError(f"{name!r} is a built-in persona and cannot be deleted.")
                raise PersonaStoreError(f"There is no persona named {name!r}.")
            await asyncio.to_thread(self.files.custom.remove, name)
            restored = self._builtin.get(name)
            await self._record(actor, "delete", name, _dump(before), _dump(restored))
            return restored

    async def select_persona(self, actor: str, kind: Literal["users", "chats"], key: str, name: str | None) -> str | None:
        """Choose (or with None clear) the persona for a user or chat key. Returns the previous name."""
        if name is not None and await self.get(name) is None:
            raise PersonaStoreError(f"There is no persona named {name!r}. See /persona list.")
        async with self._lock:
            before = await asyncio.to_thread(self._update_selection, kind, key, name)
            action = ("use" if kind == "users" and actor == key else f"set-{kind[:-1]}") if name else f"clear-{kind[:-1]}"
            await self._record(actor, action, f"{kind[:-1]}:{key}", before, name)
            return before

    async def move_chat(self, old_key: str, new_key: str) -> str | None:
        """A chat's persona follows it to a new id; returns the persona moved, if any."""
        name = await asyncio.to_thread(self._update_selections, lambda chosen: _rekey(chosen["chats"], old_key, new_key))
        if name is None:
            return None
        await self._record("system", "move", f"chat {old_key} → {new_key}", name, name)
        return name

    async def _record(self, actor: str, action: str, target: str, before: Any, after: Any) -> None:
        entry = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "actor": actor,
                 "action": action, "target": target, "before": before, "after": after}
        await asyncio.to_thread(self._append_audit, json.dumps(entry, ensure_ascii=False))

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def _check_name(name: str) -> None:
        if not _is_name(name):
            raise PersonaStoreError(f"{name!r} is not a persona name (lowercase letters, digits, - and _).")

    def _has_custom(self, name: str) -> bool:
        return self.files.custom.read(name) is not None

    def _read_one_custom(self, name: str) -> Persona | None:
        if not _is_name(name):
            return None
        data = self.files.custom.read(name)
        return None if data is None else persona_from_toml(data, f"custom persona {name}.toml")

    def _read_custom(self) -> dict[str, Persona]:
        found = {}
        for name in self.files.custom.names():
            data = self.files.custom.read(name)
            if data is None:
                continue  # removed since listed
            try:
                persona = persona_from_toml(data, f"custom persona {name}.toml")
            except PersonaError:
                continue  # a hand-edited broken file: `kagentbot persona show NAME` reports why
            found[persona.name] = persona
        return found

    def _read_selections(self) -> dict[str, dict[str, str]]:
        text = self.files.selections.read()
        data = json.loads(text) if text is not None else {}
        return {"users": dict(data.get("users", {})), "chats": dict(data.get("chats", {}))}

    def _update_selection(self, kind: str, key: str, name: str | None) -> str | None:
        def change(selections: dict[str, dict[str, str]]) -> str | None:
            before = selections[kind].get(key)
            if name is None:
                selections[kind].pop(key, None)
            else:
                selections[kind][key] = name
            return before

        return self._update_selections(change)

    def _update_selections(self, change: Callable[[dict[str, dict[str, str]]], Any]) -> Any:
        """Read, change and rewrite selections.json under a file lock, so the CLI and a running
        bot never lose each other's changes; returns what `change` returns."""
        with self.files.selections.holding():
            selections = self._read_selections()
            result = change(selections)
            self.files.selections.write(json.dumps(selections, indent=1, sort_keys=True))
            return result

    def _append_audit(self, line: str) -> None:
        self.files.audit.append(line)

    def _read_audit(self, limit: int) -> builtins.list[AuditEntry]:
        return [AuditEntry(**entry) for entry in self.files.audit.last(limit)]


def _rekey(chosen: dict[str, str], old: str, new: str) -> str | None:
    """Move `old`'s choice to `new`; the name moved, or None when `old` had none."""
    if old not in chosen:
        return None
    chosen[new] = chosen.pop(old)
    return chosen[new]


def chat_key(platform: str, chat_id: str) -> str:
    return f"{platform}:{chat_id}"


def _is_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name))


def _dump(persona: Persona | None) -> dict[str, Any] | None:
    return None if persona is None else persona.model_dump(mode="json")


