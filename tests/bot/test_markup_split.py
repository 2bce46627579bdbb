"""Markdown conversion and splitting: code fences survive a split, URLs are escaped once,
`__` is not bold, and Telegram's HTML always closes its tags in order."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from kagentbot.chat.markup import split_text, to_slack, to_telegram_html

CODE_LINES = [f"# step {i}: call f(*args, **kwargs) when __name__ == '__main__'" for i in range(40)]
FENCED = "Here is the script:\n\n```python\n" + "\n".join(CODE_LINES) + "\n```\n\nThat is all."


def fence_lines(piece: str) -> list[str]:
    return [line for line in piece.splitlines() if line.lstrip().startswith("```")]


def code_bodies(pieces: list[str]) -> list[str]:
    """The code lines of every piece, in order, without the fence lines."""
    lines: list[str] = []
    for piece in pieces:
        inside = False
        for line in piece.splitlines():
            if line.startswith("```"):
                inside = not inside
            elif inside:
                lines.append(line)
    return lines


def test_a_split_code_block_is_closed_and_reopened_with_its_language():
    pieces = split_text(FENCED, 600)
    assert len(pieces) > 3
    assert all(len(p) <= 600 for p in pieces)
    for piece in pieces:
        assert len(fence_lines(piece)) % 2 == 0, piece  # every piece closes what it opens
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n") and piece.endswith("\n```")
    assert code_bodies(pieces) == CODE_LINES  # cut between lines: none lost, none broken
    assert pieces[0].startswith("Here is the script:") and pieces[-1].endswith("That is all.")


def test_code_after_a_split_stays_code_on_telegram():
    for piece in split_text(FENCED, 600)[1:-1]:
        html = to_telegram_html(piece)
        assert html.startswith("<pre>") and html.endswith("</pre>")
        assert "<b>" not in html and "**kwargs" in html and "__name__" in html


@pytest.mark.parametrize("limit", range(40, 140, 7))
def test_pieces_keep_the_limit_with_the_added_fence_lines(limit):
    text = "Intro line.\n```sh\n" + "\n".join(f"echo {i} {'x' * (i % 23)}" for i in range(30)) + "\n```\nDone."
    pieces = split_text(text, limit)
    assert all(len(p) <= limit for p in pieces)
    assert all(len(fence_lines(p)) % 2 == 0 for p in pieces)
    assert "```sh\n```" not in pieces  # never an empty block
    assert code_bodies(pieces) == text.split("```sh\n")[1].split("\n```")[0].splitlines()


def test_a_code_line_longer_than_the_limit_is_cut_inside_the_line():
    text = "```\n" + "y" * 250 + "\n```"
    pieces = split_text(text, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert all(p.startswith("```\n") and p.endswith("\n```") for p in pieces)
    assert "".join(code_bodies(pieces)) == "y" * 250


def test_prose_outside_code_is_split_as_before():
    assert split_text("a" * 50 + "\n\n" + "b" * 50, 80) == ["a" * 50, "b" * 50]
    assert split_text("one two three four five six", 12) == ["one two", "three four", "five six"]


def test_a_streaming_answer_with_an_open_fence_shows_code():
    partial = "Try this:\n```py\nx = f(**kw)\n# note"
    assert to_telegram_html(partial) == "Try this:\n<pre>x = f(**kw)\n# note</pre>"
    assert to_slack(partial) == "Try this:\n```x = f(**kw)\n# note```"


def test_link_urls_are_escaped_once():
    text = "[docs & more](https://x.org/s?a=1&b=2)"
    assert to_telegram_html(text) == '<a href="https://x.org/s?a=1&amp;b=2">docs &amp; more</a>'
    assert to_slack(text) == "<https://x.org/s?a=1&amp;b=2|docs &amp; more>"


def test_emphasis_rules_leave_urls_alone():
    text = "see [it](https://x.org/*a*/__init__.py)"
    assert to_telegram_html(text) == 'see <a href="https://x.org/*a*/__init__.py">it</a>'
    assert to_slack(text) == "see <https://x.org/*a*/__init__.py|it>"


def test_double_underscore_is_not_bold():
    text = "call __init__ and **this**"
    assert to_telegram_html(text) == "call __init__ and <b>this</b>"
    assert to_slack(text) == "call __init__ and *this*"


class TagStack(HTMLParser):
    """Fails on a tag Telegram does not know or one closed out of order."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in {"b", "i", "a", "code", "pre"}, tag
        self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, f"</{tag}> closes nothing open"


@pytest.mark.parametrize("text", [
    "**a [b** c](https://x.org)",
    "**a *b** c*",
    "*a **b* c**",
    "# **h [l](https://x.org/?q=1&r=2)**",
    "[**bold** and `code`](https://x.org) *i [x*](https://y.org)",
    "**open\n```py\nx**y\n",
    "`a` **b `c** d` *e",
    "**x [y *z](https://x.org) w* v**",
])
def test_telegram_html_is_well_formed(text):
    checker = TagStack()
    checker.feed(to_telegram_html(text))
    checker.close()
    assert checker.open == []
