"""The lock that makes "is this document already stored? if not, store it" one step across
processes, so that two processes adding the same document at once store it once.

A local store takes a file lock beside its tables (the CLI and a running bot on one machine);
an object store alone has none; several replicas on an object store take a lock in the shared
Redis instead (kagentbot/cluster/document_lock.py), handed to `MemoryStore.open(document_lock=...)`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

LOCK_FILE = ".documents.lock"


class DocumentLock(Protocol):
    """`async with lock.hold(name) as exclusive:` excludes every other holder of `name`, in this
    process and in others. `name` identifies one document in one scope; an implementation may
    lock more (the file lock locks the whole store). Yields True when other processes are kept
    out meanwhile: the caller then reads the newest table version before checking. Raises the
    store's StoreError when it cannot lock."""

    def hold(self, name: str) -> AbstractAsyncContextManager[bool]: ...


class FileDocumentLock:
    """An flock on `<store>/.documents.lock`, one for every document of a local store. Waited
    for by polling, never by a blocking flock in a thread, so a cancelled add leaves at once."""

    def __init__(self, folder: str | Path, poll: float = 0.05) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._poll = poll

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(self._poll)
            yield True
        finally:
            os.close(fd)  # releases the lock


class NoDocumentLock:
    """An object store without cluster mode has no lock: two processes adding the same document
    at the same moment may both store it. Cluster mode (docs/scaling.md) locks it in Redis."""

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        yield False


def local_document_lock(uri: str) -> DocumentLock:
    """The lock a store at `uri` takes when none is handed in."""
    return NoDocumentLock() if "://" in uri else FileDocumentLock(uri)
