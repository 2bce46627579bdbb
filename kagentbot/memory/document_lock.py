"""The lock that makes the CLI and a running bot, adding the same document at once, store it
once. A local store holds an flock on `<store>/.documents.lock`; an object store has none (there
two processes can still both add the same document). Another implementation (a lock shared by
the replicas of a cluster) plugs in through `DocumentLock`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

LOCK_FILE = ".documents.lock"
POLL_SECONDS = 0.05


class DocumentLock(Protocol):
    def hold(self) -> AbstractAsyncContextManager[bool]:
        """Held while a document is checked for and added. Yields True when other processes are
        kept out meanwhile: the caller then reads the newest table version before checking."""
        ...


class FileDocumentLock:
    """An exclusive flock on a file in the store's folder, waited for by polling: never on the
    event loop, and a cancelled add leaves at once (a blocking flock in a thread would not)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(POLL_SECONDS)
            yield True
        finally:
            os.close(fd)  # releases the lock


class NoDocumentLock:
    """An object store's: nothing keeps other processes out."""

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        yield False


def document_lock(uri: str) -> DocumentLock:
    """The lock for the store at `uri`: an flock for a local folder, none for an object store."""
    return NoDocumentLock() if "://" in uri else FileDocumentLock(uri)
