"""The model writes Markdown; each platform speaks its own dialect. Convert, and split long
text at the platform's limit on paragraph or line boundaries."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from kagentbot.chat.adapter import Markup

# an unclosed fence runs to the end: a streaming answer shows code as code before the fence closes
_CODE_BLOCK = re.compile(r"```(?:[\w+-]*)\n?(.*?)(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# only ** is bold: __ is everywhere in code names (__init__) and URLs, and models bold with **
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
_PLACEHOLDER = "\x00{}\x00"
_FENCE = re.compile(r"^ {0,3}```", re.M)
_CLOSE = "\n```"


def convert(text: str, markup: Markup) -> str:
    if markup == "slack":
        return to_slack(text)
    if markup == "telegram":
        return to_telegram_html(text)
    return text  # Discord and the console read Markdown as it is


def _stash(saved: list[str], rendered: str) -> str:
    """Keep a finished fragment out of reach of the later rules; `_restore` puts it back."""
    saved.append(rendered)
    return _PLACEHOLDER.format(len(saved) - 1)


def _protect_code(text: str, render: Callable[[str, bool], str]) -> tuple[str, list[str]]:
    """Take code out before other rules run, so nothing inside code is rewritten."""
    saved: list[str] = []
    text = text.replace("\x00", "")  # the placeholders' marker must not come from the text
    text = _CODE_BLOCK.sub(lambda m: _stash(saved, render(m.group(1), True)), text)
    text = _INLINE_CODE.sub(lambda m: _stash(saved, render(m.group(1), False)), text)
    return text, saved


def _restore(text: str, saved: list[str]) -> str:
    # a fragment may hold placeholders itself (code in a link's label, a link in bold)
    return re.sub(r"\x00(\d+)\x00", lambda m: _restore(saved[int(m.group(1))], saved), text)


def to_slack(text: str) -> str:
    """Slack mrkdwn: *bold*, _italic_, <url|label>; &, < and > escaped."""
    # code is escaped too: Slack parses <...> everywhere, so `List<String>` would lose its
    # brackets and `<!channel>` in a tool's argument would notify the whole channel
    text, saved = _protect_code(
        text, lambda code, block: f"```{_slack_escape(code)}```" if block else f"`{_slack_escape(code)}`"
    )
    # links leave before the other rules so that * and _ in a URL stay as they are
    text = _LINK.sub(lambda m: _stash(saved, f"<{_slack_escape(m.group(2))}|{_slack_escape(m.group(1))}>"), text)
    text = _slack_escape(text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1)}*", text)
    text = _HEADING.sub(lambda m: f"*{m.group(1)}*", text)
    return _restore(text, saved)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_telegram_html(text: str) -> str:
    """Telegram's HTML parse mode (simpler and safer than MarkdownV2's escaping).

    Links and bold become finished fragments before the next rule runs, so markers that
    overlap (`**a [b** c](url)`) can never leave a tag open: Telegram refuses such a message."""
    text, saved = _protect_code(
        text, lambda code, block: f"<pre>{html.escape(code)}</pre>" if block else f"<code>{html.escape(code)}</code>"
    )
    text = _LINK.sub(lambda m: _stash(saved, _telegram_link(m.group(1), m.group(2), saved)), text)
    text = html.escape(text, quote=False)
    text = _telegram_emphasis(text, saved)
    text = _HEADING.sub(lambda m: f"<b>{m.group(1)}</b>", text)
    return _restore(text, saved)


def _telegram_link(label: str, url: str, saved: list[str]) -> str:
    label = _telegram_emphasis(html.escape(label, quote=False), saved)
    return f'<a href="{html.escape(url, quote=True)}">{label}</a>'


def _telegram_emphasis(text: str, saved: list[str]) -> str:
    """Bold, then italic, on text already escaped."""
    text = _BOLD.sub(lambda m: _stash(saved, f"<b>{_ITALIC.sub(_telegram_italic, m.group(1))}</b>"), text)
    return _ITALIC.sub(_telegram_italic, text)


def _telegram_italic(match: re.Match) -> str:
    return f"<i>{match.group(1)}</i>"


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line, sentence or space.

    A code block cut in two is closed at the end of one piece and reopened, with its
    language, at the start of the next, so every piece renders on its own."""
    pieces: list[str] = []
    while len(text) > limit:
        piece, text = _next_piece(text, limit)
        pieces.append(piece)
    if text or not pieces:
        pieces.append(text)
    return pieces


def _next_piece(text: str, limit: int) -> tuple[str, str]:
    """The first piece of `text` and the text left for the next ones."""
    cut = _prose_cut(text, limit)
    start = _open_fence(text[: cut + 1])
    if start is not None:
        code = _code_cut(text, limit, start)
        if code is not None:
            return code
    return text[: cut + 1].rstrip(), text[cut + 1 :].lstrip("\n ")


def _prose_cut(text: str, limit: int) -> int:
    """Where to cut prose: the last character the piece keeps."""
    window = text[:limit]
    cut = max(window.rfind("\n\n"), window.rfind("\n"))
    if cut < limit // 2:
        cut = max(window.rfind(". "), window.rfind("。"), window.rfind(" "))
    if cut < limit // 2:
        cut = limit - 1
    return cut


def _open_fence(head: str) -> int | None:
    """Where the fence line left open at the end of `head` begins, if one is."""
    start = None
    for fence in _FENCE.finditer(head):
        start = None if start is not None else fence.start()
    return start


def _code_cut(text: str, limit: int, start: int) -> tuple[str, str] | None:
    """Cut inside the code block whose fence line begins at `start`: close the block at the
    end of the piece and reopen it in the next. None when the block cannot be cut that way."""
    body = text.find("\n", start) + 1
    fence = text[start:body].strip()
    if body == 0 or len(fence) + 1 + len(_CLOSE) > limit // 2:
        return None  # a fence line this long (or never ended) is cut like prose
    line_end = text.rfind("\n", body, limit - len(_CLOSE) + 1)
    if line_end < 0 and text[:start].strip():
        return text[:start].rstrip(), text[start:]  # not one line fits: the block starts the next piece
    cut = line_end if line_end >= 0 else limit - len(_CLOSE)  # a line longer than the piece
    if cut < body:
        return None
    rest = text[cut + 1 if line_end >= 0 else cut :]
    if _FENCE.match(rest):  # what is left of the block is its closing fence: nothing to reopen
        return text[:cut] + _CLOSE, rest.partition("\n")[2].lstrip("\n ")
    return text[:cut] + _CLOSE, f"{fence}\n{rest}"
