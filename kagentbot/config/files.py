"""Small state files under the data directory that the CLI and a running bot both change
(persona selections, schedules): written atomically, changed under an exclusive lock. The
stores reach them through small interfaces (Document, Folder, Journal), which several replicas
of one bot implement in Redis instead (kagentbot.cluster.shared)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

log = logging.getLogger(__name__)
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def atomic_write(path: Path, text: str) -> None:
    """Write a temp file beside the target and rename it over: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to an append-only log (an audit trail) and sync it: it survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def last_json_lines(path: Path, limit: int) -> list[Any]:
    """The last `limit` JSON lines of an append-only log, oldest first; none when it is missing."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines[-limit:] if line.strip()]


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock (flock on `lock_path`) across a read-change-write of a state file,
    so that two processes never lose each other's changes."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Document(Protocol):
    """One small state document (JSON text) that several writers change: read, rewritten under
    an exclusive hold, and stamped so that a reader can tell cheaply whether it changed. A file
    here; in Redis when several replicas share it."""

    def read(self) -> str | None: ...

    def stamp(self) -> Hashable | None: ...

    def holding(self) -> AbstractContextManager[None]: ...

    def write(self, text: str) -> None: ...


class Folder(Protocol):
    """Named texts (custom personas): listed, read, written and removed one by one."""

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, text: str) -> None: ...

    def remove(self, name: str) -> bool: ...


class Journal(Protocol):
    """An append-only log of JSON lines (an audit trail)."""

    def append(self, line: str) -> None: ...

    def last(self, limit: int) -> list[Any]: ...


class FileDocument:
    """A Document kept in a file, rewritten atomically under a flock beside it."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path, self.lock_path = path, lock_path

    def read(self) -> str | None:
        try:
            return self.path.read_text("utf-8")
        except FileNotFoundError:
            return None

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size  # a rewrite is a new file

    def holding(self) -> AbstractContextManager[None]:
        return exclusive(self.lock_path)

    def write(self, text: str) -> None:
        atomic_write(self.path, text)


class FileFolder:
    """A Folder of `<name><suffix>` files."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path, self.suffix = path, suffix

    def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [p.name.removesuffix(self.suffix) for p in sorted(self.path.glob(f"*{self.suffix}"))]

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / f"{name}{self.suffix}").read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, text: str) -> None:
        atomic_write(self.path / f"{name}{self.suffix}", text)

    def remove(self, name: str) -> bool:
        try:
            (self.path / f"{name}{self.suffix}").unlink()
        except FileNotFoundError:
            return False
        return True


class FileJournal:
    """A Journal in a file: `append_line` and `last_json_lines`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, line: str) -> None:
        append_line(self.path, line)

    def last(self, limit: int) -> list[Any]:
        return last_json_lines(self.path, limit)


def make_data_private(settings: Settings) -> None:
    """`make_private` for the data directory, and for the memory store's folder when it is
    local and elsewhere. A folder that cannot be made is left to `kagentbot doctor` to report."""
    folders = [Path(settings.data_dir)]
    uri = settings.memory_uri
    if "://" not in uri and not Path(uri).resolve().is_relative_to(Path(settings.data_dir).resolve()):
        folders.append(Path(uri))
    for folder in folders:
        try:
            make_private(folder)
        except OSError as exc:
            log.warning("could not create %s (%s)", folder, exc.strerror or exc)


def make_private(root: Path) -> None:
    """The data directory readable by the bot's OS user alone: itself and every folder in it
    0700, every file 0600. The tree is walked only while the directory is not 0700 yet (a first
    start, or the first after an upgrade; it is chmodded last, so an interrupted walk is redone);
    what is written later is private through the umask `kagentbot` sets at start."""
    root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if stat.S_IMODE(root.stat().st_mode) == PRIVATE_DIR:
        return
    for folder, folders, files in os.walk(root):
        for name, mode in [*((f, PRIVATE_DIR) for f in folders), *((f, PRIVATE_FILE) for f in files)]:
            _chmod(Path(folder) / name, mode)
    _chmod(root, PRIVATE_DIR)


def _chmod(path: Path, mode: int) -> None:
    try:
        if not path.is_symlink():  # a link's target may lie outside: not ours to change
            path.chmod(mode)
    except OSError as exc:
        log.warning("could not make %s private (%s); fix its permissions by hand", path, exc.strerror or exc)
