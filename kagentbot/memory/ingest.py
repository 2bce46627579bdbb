"""Turning files, web pages and pasted text into clean text and overlapping chunks.
Everything here is data: nothing in a document is ever treated as an instruction."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kagentbot.config.settings import MemorySettings, Settings

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text", ".csv", ".rst", ""}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED = "txt, md, html, pdf, docx or an http(s) URL"
_CONTENT_TYPES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/plain": ".txt",
    "text/markdown": ".md",
}


class IngestError(Exception):
    """A document was refused; the message is meant for the user who sent it."""


@dataclass(frozen=True)
class Document:
    title: str
    source: str  # file name or URL, shown in search results
    text: str

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(normalise(self.text).encode()).hexdigest()


def normalise(text: str) -> str:
    return " ".join(text.split())


# ---------- bytes → text ----------


def extract(data: bytes, filename: str, limits: MemorySettings, source: str = "") -> Document:
    """Blocking: run it in a thread. Raises IngestError for anything unreadable or too big."""
    check_size(len(data), limits)
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in (".pdf", ".docx"):
        text = _parse_limited(data, filename, suffix, limits)
    elif suffix in HTML_SUFFIXES:
        text = _parse_limited(_decode(data, filename), filename, suffix, limits)
    elif suffix in TEXT_SUFFIXES:
        text = _decode(data, filename)
    else:
        raise IngestError(f"{filename}: unsupported file type {suffix!r}; send {SUPPORTED}")
    if not text.strip():
        raise IngestError(f"{filename}: no readable text found in it")
    return Document(title=filename, source=source or filename, text=text)


def _parse_limited(data: bytes | str, filename: str, suffix: str, limits: MemorySettings) -> str:
    """PDF, Word and HTML parsers run on hostile input: in a child process with a budget, the
    archive inside a .docx checked before any of it is unpacked."""
    from kagentbot.memory.archives import ArchiveRefused, check_archive
    from kagentbot.memory.sandbox import Budget, BudgetExceeded, ParseFailed, run_limited

    try:
        if isinstance(data, bytes) and suffix == ".docx":  # HTML arrives decoded, as str
            check_archive(data, limits)
        budget = Budget(limits.parse_cpu_seconds, limits.parse_memory_mb)
        return run_limited(parse_untrusted, (data, suffix, limits.max_pages), budget, (IngestError,))
    except (ArchiveRefused, BudgetExceeded) as exc:
        raise IngestError(f"{filename} was refused: {exc}; nothing was added") from None
    except ParseFailed as exc:  # a parser out of memory often says only "unknown error"
        raise IngestError(f"{filename} was refused: it could not be read within the limits for one document "
                          f"(damaged, or too large unpacked: {exc}); nothing was added") from None
    except IngestError as exc:
        raise IngestError(f"{filename}: {exc}") from None


def parse_untrusted(data: bytes | str, suffix: str, max_pages: int) -> str:
    """The text of a PDF or a Word file (bytes), or of decoded HTML (str); run by `_parse_limited`
    in a budgeted child."""
    if isinstance(data, str):
        return _html_text(data)
    if suffix == ".pdf":
        return _pdf_text(data, max_pages)
    if suffix == ".docx":
        return _docx_text(data)
    raise IngestError(f"unsupported file type {suffix!r}; send {SUPPORTED}")


def check_size(size: int, limits: MemorySettings) -> None:
    if size > limits.max_upload_mb * 1024 * 1024:
        raise IngestError(
            f"the document is {size / 1048576:.1f} MB; the limit is {limits.max_upload_mb:g} MB"
        )


def _decode(data: bytes, filename: str) -> str:
    if b"\x00" in data[:65536]:
        raise IngestError(f"{filename}: this looks like a binary file, not text; send {SUPPORTED}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _guess_decode(data, filename)
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > max(8, len(text[:65536]) // 100):
        raise IngestError(f"{filename}: this looks like a binary file, not text; send {SUPPORTED}")
    return text


def _guess_decode(data: bytes, filename: str) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    if best is None or best.encoding is None:
        raise IngestError(f"{filename}: this is not readable text (unknown encoding or binary data)")
    return data.decode(best.encoding, errors="replace")


def _html_text(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True) or ""


def _pdf_text(data: bytes, max_pages: int) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise IngestError("this PDF is password-protected; send an unlocked copy")
        if len(reader.pages) > max_pages:
            raise IngestError(f"the PDF has {len(reader.pages)} pages; the limit is {max_pages}")
        pages = [page.extract_text() or "" for page in reader.pages]
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise IngestError(f"could not read the PDF (corrupt or not a PDF): {exc}") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise IngestError("the PDF has no extractable text (is it a scan? OCR it first)")
    return text


def _docx_text(data: bytes) -> str:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise IngestError(f"could not read the Word file (corrupt or not a .docx): {exc}") from None
    parts = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n\n".join(parts)


# ---------- chunking ----------

# A sentence ends after CJK or Latin end punctuation (plus closing quotes/brackets), or at a line end.
_SENTENCE_END = re.compile(r"[。！？；!?;…]+[”’\"'」』）)\]]*\s*|\.(?:[”’\"')\]]*)(?=\s|$)\s*|\n+")


def sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def chunk_text(text: str, size: int, overlap: int) -> list[str]:
    """Pack whole sentences into chunks of at most `size` characters; each chunk repeats the last
    sentences of the previous one (up to `overlap` characters) so no fact is cut off from its
    context. Sentences longer than `size` are cut hard."""
    spans = [piece for span in sentences(text) for piece in _split_long(span, size)]
    chunks: list[str] = []
    first = 0
    while first < len(spans):
        last = first
        while last + 1 < len(spans) and spans[last + 1][1] - spans[first][0] <= size:
            last += 1
        chunks.append(text[spans[first][0] : spans[last][1]].strip())
        if last + 1 >= len(spans):
            break
        first = _overlap_start(spans, first, last, overlap)
    return [c for c in chunks if c]


def _overlap_start(spans: list[tuple[int, int]], first: int, last: int, overlap: int) -> int:
    nxt = last + 1
    while nxt - 1 > first and spans[last][1] - spans[nxt - 1][0] <= overlap:
        nxt -= 1
    return nxt


def _split_long(span: tuple[int, int], size: int) -> list[tuple[int, int]]:
    start, end = span
    return [(s, min(s + size, end)) for s in range(start, end, size)]


def unique_chunks(chunks: list[str]) -> list[str]:
    """Drop repeated chunks (boilerplate repeated on every page) by content hash."""
    seen: set[str] = set()
    out = []
    for chunk in chunks:
        digest = hashlib.sha256(normalise(chunk).encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(chunk)
    return out


def chunk_document(document: Document, limits: MemorySettings) -> list[str]:
    overlap = min(limits.chunk_overlap, limits.chunk_chars // 2)
    chunks = unique_chunks(chunk_text(document.text, limits.chunk_chars, overlap))
    if len(chunks) > limits.max_chunks_per_document:
        raise IngestError(
            f"{document.title}: {len(chunks)} chunks is over the limit of "
            f"{limits.max_chunks_per_document} per document; split it into smaller files"
        )
    if not chunks:
        raise IngestError(f"{document.title}: no readable text found in it")
    return chunks


# ---------- sources: files, URLs, pasted text ----------


def from_text(text: str, limits: MemorySettings, title: str = "") -> Document:
    check_size(len(text.encode()), limits)
    if not text.strip():
        raise IngestError("there is no text to add")
    title = title or normalise(text)[:60]
    return Document(title=title, source="pasted text", text=text)


async def from_bytes(data: bytes, filename: str, limits: MemorySettings, source: str = "") -> Document:
    return await asyncio.to_thread(extract, data, filename, limits, source)


async def from_path(path: Path, limits: MemorySettings) -> Document:
    try:
        size = path.stat().st_size
        check_size(size, limits)
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise IngestError(f"cannot read {path}: {exc.strerror or exc}") from None
    return await from_bytes(data, path.name, limits, source=str(path))


def is_url(text: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$", text.strip()))


async def from_url(url: str, settings: Settings) -> Document:
    if not is_url(url) or urlsplit(url).scheme.lower() not in ("http", "https"):
        raise IngestError(f"only http(s) URLs can be added, not {url!r}")
    data, content_type, final_url = await fetch_url(url, settings)
    suffix = _CONTENT_TYPES.get(content_type) or PurePosixPath(urlsplit(final_url).path).suffix or ".html"
    name = PurePosixPath(urlsplit(final_url).path).name or urlsplit(final_url).hostname or "page"
    filename = name if name.lower().endswith(suffix) else name + suffix
    document = await from_bytes(data, filename, settings.memory, source=final_url)
    return Document(title=name, source=final_url, text=document.text)


async def fetch_url(url: str, settings: Settings) -> tuple[bytes, str, str]:
    """Fetch through the tools' SSRF guard (public addresses only unless allow-listed, every
    redirect and the connected socket checked), capped at the upload limit.
    Returns (body, content type, final URL)."""
    from dataclasses import replace

    from kagentbot.net.guard import FetchFailed, FetchPolicy, FetchRefused, guarded_fetch

    policy = replace(
        FetchPolicy.from_settings(settings.tools),
        max_bytes=int(settings.memory.max_upload_mb * 1024 * 1024),
        timeout=settings.memory.fetch_timeout,
        content_types=tuple(_CONTENT_TYPES),
    )
    try:
        page = await guarded_fetch(url, policy)
    except (FetchRefused, FetchFailed) as exc:
        raise IngestError(str(exc)) from None
    return page.body, page.content_type, page.url
