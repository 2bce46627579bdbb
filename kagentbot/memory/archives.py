"""Zip-based files (.docx) are archives, and an archive can be a bomb: a few kilobytes that
inflate to gigabytes of XML. Its directory says how many members it has and how large each is
unpacked; Python's zipfile never unpacks more than a member declares, so checking the declared
sizes before parsing bounds what parsing can unpack."""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings

RATIO_FLOOR = 1024 * 1024  # members smaller than this unpacked are never refused for their ratio


class ArchiveRefused(ValueError):
    """The archive is over a limit; the text names it."""


def check_archive(data: bytes, limits: MemorySettings) -> None:
    """Refuse an archive with too many members, too much unpacked, or a bomb's compression ratio."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # not an archive at all: the parser says so in its own words
    if len(members) > limits.archive_max_members:
        raise ArchiveRefused(f"it holds {len(members)} files; the limit is {limits.archive_max_members}")
    unpacked = sum(m.file_size for m in members)
    if unpacked > limits.archive_max_unpacked_mb * 1024 * 1024:
        raise ArchiveRefused(f"it unpacks to {unpacked / 1048576:,.0f} MB; the limit is {limits.archive_max_unpacked_mb:g} MB")
    for member in members:
        if member.file_size > RATIO_FLOOR and member.file_size > limits.archive_max_ratio * max(member.compress_size, 1):
            ratio = member.file_size / max(member.compress_size, 1)
            raise ArchiveRefused(f"its part {member.filename} is compressed {ratio:,.0f} to 1 (a zip bomb?); "
                                 f"the limit is {limits.archive_max_ratio} to 1")
