"""`/kb` chat command: add, list, search and remove knowledge-base documents, and opt in to using
one's private notes in a shared chat (`/kb share`). Platform-agnostic;
the store comes from `ctx.services.memory`. Users only ever see what their audience can read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from kagentbot.chat.commands import Command, CommandContext, CommandError, Reply
from kagentbot.scope import Scope, ScopeError

if TYPE_CHECKING:
    from kagentbot.bot.sharing import ShareBook
    from kagentbot.memory.contracts import KnowledgeBase
    from kagentbot.memory.types import AddResult


class KbServices(Protocol):
    """What /kb reads of the bot's Services."""

    @property
    def memory(self) -> KnowledgeBase | None: ...

    def sharing(self) -> ShareBook: ...


USAGE = (
    "/kb add [--scope user|chat|global] TEXT|URL (or attach files) · /kb list · "
    "/kb search QUERY · /kb remove ID · /kb share on|off (use your private notes in this chat)"
)
EXCERPT_CHARS = 240


def kb_command() -> Command:
    return Command("kb", "your knowledge base: add, list, search, remove; share your notes in a chat", USAGE, handle_kb)


async def handle_kb(ctx: CommandContext[KbServices], args: list[str]) -> Reply:
    if not args:
        raise CommandError("Say what to do with the knowledge base.")
    store = ctx.services.memory
    if store is None:
        return Reply("The knowledge base is not available on this bot (no memory store is configured).", private=True)
    action, rest = args[0].lower(), args[1:]
    handler = _ACTIONS.get(action)
    if handler is None:
        raise CommandError(f"Unknown /kb action {action!r}.")
    from kagentbot.memory.embedders import EmbedderError
    from kagentbot.memory.ingest import IngestError
    from kagentbot.memory.store import StoreError

    try:
        return await handler(ctx, store, rest)
    except (IngestError, StoreError, EmbedderError) as exc:
        return Reply(str(exc), private=True)


def pop_scope(args: list[str]) -> tuple[str, list[str]]:
    """Take `--scope X` / `--scope=X` out of the arguments; default "user"."""
    rest, scope, i = [], "user", 0
    while i < len(args):
        word = args[i]
        if word == "--scope":
            if i + 1 >= len(args):
                raise CommandError("--scope needs a value: user, chat or global.")
            scope, i = args[i + 1].lower(), i + 2
            continue
        if word.startswith("--scope="):
            scope = word.split("=", 1)[1].lower()
        else:
            rest.append(word)
        i += 1
    return scope, rest


def target_scope(ctx: CommandContext[KbServices], scope: str) -> str:
    audience = ctx.audience
    if scope == "user":
        return audience.user_scope
    if scope == "chat":
        if ctx.message.is_dm or not audience.chat_scope:
            raise CommandError("--scope chat works in a channel or group, not in a direct message.")
        return audience.chat_scope
    if scope == "global":
        if not ctx.is_admin:
            raise CommandError("Only an admin can add to the global knowledge base.")
        return str(Scope.GLOBAL)
    raise CommandError(f"Unknown scope {scope!r}: use user, chat or global.")


async def _add(ctx: CommandContext[KbServices], store: KnowledgeBase, args: list[str]) -> Reply:
    scope_name, words = pop_scope(args)
    scope = target_scope(ctx, scope_name)
    attachments = ctx.message.attachments
    if not attachments and not words:
        raise CommandError("Attach a file, or give a URL or some text to add.")
    lines = [await _add_attachment(store, a, scope) for a in attachments]
    if words:
        lines.append(await _add_words(store, " ".join(words), scope))
    return Reply("\n".join(lines), private=True)


async def _add_attachment(store: KnowledgeBase, attachment: Any, scope: str) -> str:
    from kagentbot.memory.ingest import IngestError, check_size, from_bytes

    try:
        check_size(attachment.size, store.settings.memory)
        if attachment.fetch is None:
            raise IngestError("the platform did not let me download it")
        data = await _download(attachment)
        document = await from_bytes(data, attachment.name, store.settings.memory)
    except IngestError as exc:
        reason = str(exc).removeprefix(f"{attachment.name}: ")  # the line names the file already
        return f"✗ {attachment.name}: not added. {reason}"
    return _added_line(await store.add_document(document, scope))


async def _add_words(store: KnowledgeBase, text: str, scope: str) -> str:
    from kagentbot.memory.ingest import from_text, from_url, is_url

    if is_url(text):
        document = await from_url(text.strip(), store.settings)
    else:
        document = from_text(text, store.settings.memory)
    return _added_line(await store.add_document(document, scope))


async def _download(attachment: Any) -> bytes:
    from kagentbot.memory.ingest import IngestError

    try:
        return await attachment.fetch()
    except ValueError as exc:  # the adapters' AttachmentError: too large, gone, refused
        raise IngestError(f"could not download it: {exc}") from None


def _added_line(result: AddResult) -> str:
    doc = result.document
    if result.duplicate:
        return f"= {doc.title}: already in the knowledge base as {doc.id} ({describe_scope(doc.scope)})."
    return f"✓ Added {doc.title} as {doc.id}: {doc.chunks} chunk(s), {describe_scope(doc.scope)}."


def describe_scope(scope: str) -> str:
    try:
        kind = Scope.parse(scope).kind
    except ScopeError:
        kind = "user"
    return {"global": "global", "chat": "this chat"}.get(kind, "private to you")


PRIVATE_HINT = "(Your private documents are not shown in a shared chat: DM me /kb list to see them.)"


def listing_audience(ctx: CommandContext[KbServices]):
    """A reply in a shared chat is seen by everyone there: show only what they may all read."""
    return ctx.audience if ctx.message.is_dm else ctx.audience.shared()


async def _list(ctx: CommandContext[KbServices], store: KnowledgeBase, args: list[str]) -> Reply:
    documents = await store.list_documents(listing_audience(ctx).readable)
    hint = "" if ctx.message.is_dm else f"\n{PRIVATE_HINT}"
    if not documents:
        return Reply(f"No documents to show. Add something with /kb add.{hint}", private=True)
    lines = [f"{len(documents)} document(s) you can read:{hint}"]
    lines += [
        f"• {d.id} — {d.title} ({d.chunks} chunk(s), {describe_scope(d.scope)}, added {d.added_at[:10]})"
        for d in documents
    ]
    return Reply("\n".join(lines), private=True)


async def _search(ctx: CommandContext[KbServices], store: KnowledgeBase, args: list[str]) -> Reply:
    query = " ".join(args).strip()
    if not query:
        raise CommandError("Say what to search for.")
    passages = await store.search(listing_audience(ctx), query, store.settings.memory.top_k)
    if not passages:
        hint = "" if ctx.message.is_dm else f" {PRIVATE_HINT}"
        return Reply(f"Nothing in the knowledge base matches {query!r}.{hint}", private=True)
    lines = [f"Top {len(passages)} for {query!r}:"]
    for p in passages:
        excerpt = " ".join(p.text.split())[:EXCERPT_CHARS]
        lines.append(f"• [{p.id.split('-')[0]}] {p.source} ({describe_scope(p.scope)}, score {p.score:.3f}): {excerpt}")
    return Reply("\n".join(lines), private=True)


async def _remove(ctx: CommandContext[KbServices], store: KnowledgeBase, args: list[str]) -> Reply:
    if len(args) != 1:
        raise CommandError("Give the id of one document (see /kb list).")
    from kagentbot.memory.store import NotFound

    try:
        info = await store.remove_document(ctx.audience, args[0], may_remove_global=ctx.is_admin)
    except NotFound as exc:
        hint = "" if ctx.message.is_dm else f" {PRIVATE_HINT}"
        return Reply(f"{exc}.{hint}", private=True)
    return Reply(f"Removed {info.title} ({info.id}, {describe_scope(info.scope)}).", private=True)


SHARE_ON = ("Sharing is on: in this chat I will also use your private documents, conversation and tasks, "
            "and my answers here may quote them for everyone in it. What I derive from them stays private "
            "to you in this chat. /kb share off stops it.")
SHARE_OFF = ("Sharing is off: in this chat I use only this chat's documents and the global ones, never "
             "your private notes. /kb share on allows them here.")


async def _share(ctx: CommandContext[KbServices], store: KnowledgeBase, args: list[str]) -> Reply:
    """`/kb share on|off` in a shared chat: the asker's opt-in for this chat alone, audited."""
    audience = ctx.audience
    if not audience.is_shared:
        return Reply("Your private notes are always used in a direct message; /kb share is for channels, "
                     "groups and threads.", private=True)
    book = ctx.services.sharing()
    if not args:
        return Reply(SHARE_ON if await book.is_on(audience.user_scope, audience.chat_scope) else SHARE_OFF, private=True)
    if len(args) != 1 or args[0].lower() not in ("on", "off"):
        raise CommandError("Say /kb share on or /kb share off.")
    on = args[0].lower() == "on"
    await book.set(ctx.message.user_key, audience.user_scope, audience.chat_scope, on)
    return Reply(SHARE_ON if on else SHARE_OFF, private=True)


_ACTIONS = {"add": _add, "list": _list, "ls": _list, "search": _search, "find": _search, "remove": _remove, "rm": _remove,
            "share": _share}
