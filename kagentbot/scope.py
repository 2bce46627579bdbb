"""Whose a stored row is, as a value: `Scope` formats and parses every scope string the store
keeps (DESIGN.md, "Where state lives"), so that no module writes `f"user:{...}"` by hand.

    user:<platform>:<id>                 one person's own memory
    chat:<platform>:<id>                 a shared chat's (channel, group, thread)
    user:<platform>:<id>|chat:<p>:<id>   one person's, used only in that chat (opted in there)
    global                               everyone's

Ids may hold ':' (the id is everything after the second one); platforms may not. Formatting
takes ids as the platforms give them (none of theirs holds '|')."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

Kind = Literal["user", "chat", "global"]
PRIVATE_IN = "|"  # joins a user scope and a chat scope into the scope private to both
GLOBAL_TEXT = "global"


class ScopeError(ValueError):
    """Text that is not a scope; the message says what a scope looks like."""


@dataclass(frozen=True)
class Scope:
    kind: Kind
    platform: str = ""
    id: str = ""
    within: Scope | None = None  # user:…|chat:…: this user's, within that chat

    GLOBAL: ClassVar[Scope]

    @classmethod
    def user(cls, platform: str, user_id: str) -> Scope:
        return cls("user", platform, user_id)

    @classmethod
    def chat(cls, platform: str, chat_id: str) -> Scope:
        return cls("chat", platform, chat_id)

    def private_in(self, chat: Scope) -> Scope:
        """This user's scope, used only in `chat`."""
        if self.kind != "user" or self.within is not None or chat.kind != "chat":
            raise ScopeError(f"only a user scope is private in a chat, not {self} in {chat}")
        return Scope("user", self.platform, self.id, chat)

    @property
    def is_global(self) -> bool:
        return self.kind == "global"

    def __str__(self) -> str:
        if self.kind == "global":
            return GLOBAL_TEXT
        text = f"{self.kind}:{self.platform}:{self.id}"
        return f"{text}{PRIVATE_IN}{self.within}" if self.within is not None else text

    @classmethod
    def parse(cls, text: str) -> Scope:
        """The scope `text` names; ScopeError if it names none."""
        if text == GLOBAL_TEXT:
            return cls.GLOBAL
        head, sep, tail = text.partition(PRIVATE_IN)
        scope = cls._parse_one(head)
        return scope.private_in(cls._parse_one(tail)) if sep else scope

    @classmethod
    def _parse_one(cls, text: str) -> Scope:
        kind, _, rest = text.partition(":")
        platform, _, id_ = rest.partition(":")
        if kind == "user" and platform and id_:
            return cls.user(platform, id_)
        if kind == "chat" and platform and id_:
            return cls.chat(platform, id_)
        raise ScopeError(f"{text!r} is not a scope: use user:<platform>:<id>, chat:<platform>:<id> or global")


Scope.GLOBAL = Scope("global")
