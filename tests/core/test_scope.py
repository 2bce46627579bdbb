"""Scopes are values: one type formats and parses every scope string, and no module outside the
store writes one by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kagentbot.chat.messages import IncomingMessage
from kagentbot.scope import Scope, ScopeError

ROOT = Path(__file__).resolve().parents[2] / "kagentbot"


@pytest.mark.parametrize("text", [
    "global", "user:slack:U1", "chat:telegram:-100123", "user:console:bob|chat:console:room",
    "chat:discord:1:2",  # an id may hold ':'
])
def test_a_scope_reads_back_as_written(text: str) -> None:
    assert str(Scope.parse(text)) == text


def test_the_parts_of_a_scope() -> None:
    private = Scope.parse("user:slack:U1|chat:slack:C9")
    assert (private.kind, private.platform, private.id) == ("user", "slack", "U1")
    assert private.within == Scope.chat("slack", "C9")
    assert Scope.user("slack", "U1").private_in(Scope.chat("slack", "C9")) == private
    assert Scope.parse("global") is Scope.GLOBAL and Scope.GLOBAL.is_global


@pytest.mark.parametrize("text", [
    "", "global ", "user:", "user:slack:", "chat::C1", "team:slack:T1", "user:a:b|user:a:c", "chat:a:b|chat:a:c",
])
def test_text_that_is_no_scope_is_refused_with_the_forms_named(text: str) -> None:
    with pytest.raises(ScopeError, match="scope"):
        Scope.parse(text)


def test_a_message_audience_is_built_from_scopes() -> None:
    shared = IncomingMessage("slack", "C1", "U1", "hi")
    assert (shared.audience.user_scope, shared.audience.chat_scope) == ("user:slack:U1", "chat:slack:C1")
    assert IncomingMessage("telegram", "5", "5", "hi", is_dm=True).audience.chat_scope == ""


def _hand_built_scopes(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if "memory" in path.relative_to(root).parts[:1] or path.name == "scope.py":
            continue  # the store keeps its own rows' scopes
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = str(node.values[0].value)
                if head.startswith(("user:", "chat:")):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_module_outside_the_store_writes_a_scope_by_hand() -> None:
    assert _hand_built_scopes(ROOT) == []


def test_the_terminal_scope_option_reads_through_scope() -> None:
    from kagentbot.cli.kb import audience_for

    assert audience_for("bob", "chat:room")[1] == "chat:console:room"
    assert audience_for("bob", "chat:slack:C1")[1] == "chat:slack:C1"
    assert audience_for("bob", "global") == (audience_for("bob", "user")[0], "global")
    for bad in ("chat:slack:", "chat:a:b|chat:a:c", "team"):
        with pytest.raises(ValueError, match="--scope must be user, global or chat:ID"):
            audience_for("bob", bad)
