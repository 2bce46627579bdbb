"""The contract between the bot and the platform adapters, importable by both without either
importing the other: the message an adapter hands in (messages), the Adapter protocol and its
values (adapter), chat commands (commands), and how agent events become sends and edits
(markup, render)."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["adapter", "commands", "markup", "messages", "recent", "render"]
