"""What the store raises: each message says what to do."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked; the message says what to do."""


class EmbedderMismatch(StoreError):
    """The tables were built by another embedder than the one configured."""


class NotFound(StoreError):
    """No such row among those the asker may read."""
