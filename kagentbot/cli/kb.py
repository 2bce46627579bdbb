"""`kagentbot kb ...`: the knowledge base from the command line. The operator owns the data
directory, so the CLI may write to any scope, global included."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagentbot.memory.types import Audience
from kagentbot.scope import Scope, ScopeError

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("kb", help="manage the knowledge base (add, list, search, remove, reindex)")
    actions = parser.add_subparsers(dest="kb_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a file, a URL or text")
    add.add_argument("source", nargs="+", help="a file path, an http(s) URL, or text")
    add.add_argument("--text", action="store_true", help="store the words as text even if they look like a path")
    actions.add_parser("list", help="list the documents the user can read")
    search = actions.add_parser("search", help="hybrid search")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=0, help="how many results (default memory.top_k)")
    remove = actions.add_parser("remove", help="remove a document by id")
    remove.add_argument("id")
    actions.add_parser("reindex", help="re-embed everything with the configured embedder")
    for sub in (add, actions.choices["list"], search, remove):
        sub.add_argument("--scope", default="user", help="user (default), chat:ID or chat:PLATFORM:ID, or global")
        sub.add_argument("--user", default=os_user(), help="console user (scope user:console:NAME); default: your OS user, as `kagentbot ask` uses")
    parser.set_defaults(func=run)


def os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "console"


def audience_for(user: str, scope: str) -> tuple[Audience, str]:
    """The console audience and the scope to write to. Raises ValueError for a bad --scope."""
    user_scope = str(Scope.user("console", user))
    if scope == "user":
        return Audience(user_scope), user_scope
    if scope == "global":
        return Audience(user_scope), str(Scope.GLOBAL)
    if scope.startswith("chat:") and len(scope) > 5:
        chat = str(_chat_scope(scope))
        return Audience(user_scope, chat, share_private=True), chat  # the operator at the terminal
    raise ValueError(f"--scope must be user, global or chat:ID, not {scope!r}")


def _chat_scope(text: str) -> Scope:
    """`chat:ID` is a console chat; `chat:PLATFORM:ID` names any platform's."""
    try:
        scope = Scope.parse(text) if text.count(":") >= 2 else Scope.chat("console", text[len("chat:"):])
    except ScopeError:
        scope = None
    if scope is None or scope.kind != "chat":
        raise ValueError(f"--scope must be user, global or chat:ID, not {text!r}")
    return scope


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from kagentbot.memory.embedders import EmbedderError
    from kagentbot.memory.ingest import IngestError
    from kagentbot.memory.store import StoreError

    console, errors = Console(), Console(stderr=True)
    try:
        return await _ACTIONS[args.kb_action](args, settings, console)
    except (IngestError, StoreError, EmbedderError, ValueError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    finally:
        while _closing:
            await _closing.pop()()


# Cluster mode: what closes the document lock's Redis connection, once the command is done.
_closing: list[Callable[[], Awaitable[None]]] = []


async def _open(settings: Settings, reindexing: bool = False) -> Any:
    if settings.cluster.enabled:  # the replicas' store: probed, documents locked in Redis as they do
        from kagentbot.cluster.shared_memory import open_shared_memory

        store, closing = await open_shared_memory(settings, reindexing=reindexing)
        _closing.append(closing)
        return store
    from kagentbot.memory.store import MemoryStore

    return await MemoryStore.open(settings, reindexing=reindexing)


async def _add(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    audience, scope = audience_for(args.user, args.scope)
    document = await _load(" ".join(args.source), settings, as_text=args.text)
    store = await _open(settings)
    with _progress(console) as progress:
        task = progress.add_task(f"embedding {document.title[:40]}", total=None)
        result = await store.add_document(
            document, scope, lambda done, total: progress.update(task, completed=done, total=total)
        )
    doc = result.document
    verb = "already present as" if result.duplicate else "added as"
    console.print(f"{doc.title}: {verb} [bold]{doc.id}[/bold] ({doc.chunks} chunk{'' if doc.chunks == 1 else 's'}, scope {doc.scope})", highlight=False)
    return 0


async def _load(source: str, settings: Settings, as_text: bool = False) -> Any:
    from kagentbot.memory.ingest import IngestError, from_path, from_text, from_url, is_url

    if as_text:
        return from_text(source, settings.memory)
    try:
        path = local_path(source)
    except IngestError as exc:
        raise IngestError(f"{exc} (to store the words themselves as text, add --text)") from None
    if path is not None:
        return await from_path(path, settings.memory)
    if is_url(source):
        return await from_url(source, settings)
    return from_text(source, settings.memory)


def local_path(source: str) -> Path | None:
    """The file `source` names, None when it is text (or a URL). Words that look like a path but
    name no file, or name a folder, are an error rather than a one-line "document" of the path."""
    from kagentbot.memory.ingest import IngestError

    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise IngestError(f"{source} is a folder: add its files one by one")
    if _looks_like_path(source):
        raise IngestError(f"no such file: {source}")
    return None


def attach_local_files(message: Any) -> Any:
    """`/kb add PATH` typed in `kagentbot chat`: the terminal user's own file goes in as an
    attachment, as a file sent in a chat would, instead of the path being stored as text."""
    import asyncio
    from dataclasses import replace

    from kagentbot.bot.kb_commands import pop_scope
    from kagentbot.chat.messages import Attachment

    words = message.text.split()
    if len(words) < 3 or [w.lower() for w in words[:2]] != ["/kb", "add"]:
        return message
    scope, rest = pop_scope(words[2:])
    path = local_path(rest[0]) if len(rest) == 1 else None  # raises for a missing file or a folder
    if path is None:
        return message
    attachment = Attachment(path.name, path.stat().st_size, fetch=lambda: asyncio.to_thread(path.read_bytes))
    return replace(message, text=f"/kb add --scope {scope}", attachments=(attachment,))


def _looks_like_path(source: str) -> bool:
    from kagentbot.memory.ingest import HTML_SUFFIXES, TEXT_SUFFIXES, is_url

    if is_url(source) or not source or any(c.isspace() for c in source):
        return False
    suffix = Path(source).suffix.lower()
    return source.startswith(("/", "./", "../", "~")) or bool(suffix) and suffix in (
        TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx", ".doc", ".json", ".log"})


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


async def _list(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    audience, _ = audience_for(args.user, args.scope)
    documents = await (await _open(settings)).list_documents(audience.readable)
    if not documents:
        console.print("no documents")
        return 0
    from rich.table import Table

    table = Table("id", "title", "chunks", "scope", "added")
    for column in table.columns:
        column.overflow = "fold"  # a narrow or piped terminal wraps ids and scopes instead of cutting them
    for d in documents:
        table.add_row(d.id, d.title, str(d.chunks), d.scope, d.added_at[:16].replace("T", " "))
    console.print(table)
    return 0


async def _search(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    audience, _ = audience_for(args.user, args.scope)
    store = await _open(settings)
    passages = await store.search(audience, " ".join(args.query), args.limit or settings.memory.top_k)
    if not passages:
        console.print("no matches")
    for p in passages:
        doc_id, _, chunk = p.id.partition("-")
        console.print(f"[bold]{p.score:.4f}[/bold] {doc_id} (chunk {chunk}) {p.source} ({p.scope})", highlight=False)
        console.print("  " + " ".join(p.text.split())[:300], highlight=False, markup=False)
    return 0


async def _remove(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    audience, _ = audience_for(args.user, args.scope)
    store = await _open(settings)
    info = await store.remove_document(audience, args.id, may_remove_global=True)
    console.print(f"removed {info.id} ({info.title}, scope {info.scope})", highlight=False)
    return 0


async def _reindex(args: argparse.Namespace, settings: Settings, console: Any) -> int:
    store = await _open(settings, reindexing=True)
    with _progress(console) as progress:
        task = progress.add_task(f"re-embedding with {settings.embed.backend}", total=None)
        counts = await store.reindex(lambda done, total: progress.update(task, completed=done, total=total))
    console.print(f"reindexed {counts['chunks']} chunks and {counts['tasks']} task records with {store.embedder_id}")
    return 0


_ACTIONS = {"add": _add, "list": _list, "search": _search, "remove": _remove, "reindex": _reindex}
