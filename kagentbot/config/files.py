"""Small state files under the data directory that the CLI and a running bot both change
(persona selections, schedules): written atomically, changed under an exclusive lock."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
