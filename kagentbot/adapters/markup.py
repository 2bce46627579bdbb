"""The model writes Markdown; each platform speaks its own dialect. Convert, and split long
text at the platform's limit on paragraph or line boundaries."""

from __future__ import annotations

import html
import re

from kagentbot.adapters.base import Markup

_CODE_BLOCK = re.compile(r"```(?:[\w+-]*)\n?(.*?)```", re.S)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__", re.S)
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
_PLACEHOLDER = "\x00{}\x00"


def convert(text: str, markup: Markup) -> str:
    if markup == "slack":
        return to_slack(text)
    if markup == "telegram":
        return to_telegram_html(text)
    return text  # Discord and the console read Markdown as it is


def _protect_code(text: str, render) -> tuple[str, list[str]]:
    """Take code out before other rules run, so nothing inside code is rewritten."""
    saved: list[str] = []

    def keep(match: re.Match, block: bool) -> str:
        saved.append(render(match.group(1), block))
        return _PLACEHOLDER.format(len(saved) - 1)

    text = _CODE_BLOCK.sub(lambda m: keep(m, True), text)
    text = _INLINE_CODE.sub(lambda m: keep(m, False), text)
    return text, saved


def _restore(text: str, saved: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: saved[int(m.group(1))], text)


def to_slack(text: str) -> str:
    """Slack mrkdwn: *bold*, _italic_, <url|label>; &, < and > escaped."""
    # code is escaped too: Slack parses <...> everywhere, so `List<String>` would lose its
    # brackets and `<!channel>` in a tool's argument would notify the whole channel
    text, saved = _protect_code(
        text, lambda code, block: f"```{_slack_escape(code)}```" if block else f"`{_slack_escape(code)}`"
    )
    text = _slack_escape(text)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _ITALIC.sub(lambda m: f"_{m.group(1)}_", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", text)
    text = _HEADING.sub(lambda m: f"*{m.group(1)}*", text)
    return _restore(text, saved)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_telegram_html(text: str) -> str:
    """Telegram's HTML parse mode (simpler and safer than MarkdownV2's escaping)."""
    text, saved = _protect_code(
        text, lambda code, block: f"<pre>{html.escape(code)}</pre>" if block else f"<code>{html.escape(code)}</code>"
    )
    text = html.escape(text, quote=False)
    text = _LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', text)
    text = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", text)
    text = _ITALIC.sub(lambda m: f"<i>{m.group(1)}</i>", text)
    text = _HEADING.sub(lambda m: f"<b>{m.group(1)}</b>", text)
    return _restore(text, saved)


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line, sentence or space."""
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = max(window.rfind(". "), window.rfind("。"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit - 1
        pieces.append(text[: cut + 1].rstrip())
        text = text[cut + 1 :].lstrip("\n ")
    if text or not pieces:
        pieces.append(text)
    return pieces
