"""The memory store shared by every replica: LanceDB on S3-compatible storage.

LanceDB (lance 0.24 and later, lancedb 0.21 and later) commits a table version by writing its
manifest with a conditional PUT (`If-None-Match: *`): of two replicas committing the same
version, the store refuses the second with 412 Precondition Failed, and lance retries it on top
of the first. A store that ignores the header lets the second PUT overwrite the first commit, and
rows vanish. So before a replica opens the store in cluster mode it tries exactly that on a probe
object, and refuses to start when the second write is not refused. Documents are added under a
per-document lock in Redis (document_lock.py), so two replicas never store one document twice."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from kagentbot.cluster.document_lock import RedisDocumentLock
from kagentbot.cluster.redis import Keys, connect, replica_name
from kagentbot.memory.embedders import Embedder
from kagentbot.memory.store import MemoryStore, StoreError

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

log = logging.getLogger(__name__)

PROBE_FOLDER = "_cluster_probe"  # beside the tables; each probe deletes its own object
PROBE_TIMEOUT = 30.0
# The object store client's own options; every other key configures the bucket (aws_ prefix).
_CLIENT_KEYS = frozenset({
    "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type", "pool_idle_timeout",
    "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate", "proxy_excludes", "randomize_addresses",
    "read_timeout", "timeout", "user_agent",
})


class ConditionalWritesIgnored(StoreError):
    """The object store does not refuse a second conditional write: replicas would lose commits."""


def ignored_message(uri: str) -> str:
    return (
        f"the object store behind {uri} accepted a second conditional write of the same object "
        "(a PUT with If-None-Match: * must be refused with 412 Precondition Failed), so replicas "
        "committing to the memory store at the same time would overwrite each other's commits. "
        "Point memory.uri at a store that honours conditional writes (AWS S3, MinIO, Cloudflare R2 "
        "and most current S3-compatible stores do; check a proxy or gateway in between does not drop "
        "the header), or run a single replica with cluster.enabled = false"
    )


OPENING = "\0memory tables: opening"  # a name no document of any scope has


async def open_shared_memory(settings: Settings, *, embedder: Embedder | None = None, reindexing: bool = False,
                             ) -> tuple[MemoryStore, Callable[[], Awaitable[None]]]:
    """Probe the store, then open it with the Redis document lock. Returns the store and what
    closes the lock's Redis connection (after the store's own close).

    Replicas open the store one at a time (the same lock, one name for the store): replicas
    started together on a new store each created its tables' indexes, and all but the first
    failed to start on LanceDB's commit conflict."""
    await probe_conditional_writes(settings.memory_uri, settings.memory.storage_options)
    client = connect(settings.cluster)
    lock = RedisDocumentLock(client, Keys(settings.cluster.key_prefix), replica_name(settings.cluster),
                             settings.cluster.lease_seconds)
    try:
        async with lock.hold(OPENING):
            store = await MemoryStore.open(settings, embedder=embedder, reindexing=reindexing, document_lock=lock)
    except BaseException:
        await client.aclose()
        raise
    return store, client.aclose


async def probe_conditional_writes(uri: str, options: Mapping[str, SecretStr | str], timeout: float = PROBE_TIMEOUT) -> None:
    """Write a probe object with If-None-Match: *, then the same object again: the second must be
    refused. Raises ConditionalWritesIgnored when it is not, StoreError when the store cannot be
    reached. Only for s3:// (Google Cloud Storage and Azure enforce their preconditions
    themselves); a local directory is shared safely by processes of one machine."""
    if not uri.startswith("s3://"):
        return
    import obstore
    from obstore.exceptions import AlreadyExistsError, BaseError, NotSupportedError, PreconditionError

    store = _object_store(uri, options)
    path = f"{PROBE_FOLDER}/{uuid.uuid4().hex}"
    try:
        async with asyncio.timeout(timeout):
            await obstore.put_async(store, path, b"first", mode="create")
            try:
                await obstore.put_async(store, path, b"second", mode="create")
            except (AlreadyExistsError, PreconditionError):
                log.info("memory: %s refuses a second conditional write, as replicas need", uri)
                return
        raise ConditionalWritesIgnored(ignored_message(uri))
    except NotSupportedError:
        raise ConditionalWritesIgnored(ignored_message(uri) + " (memory.storage_options turns them off: "
                                       "remove aws_conditional_put)") from None
    except (BaseError, TimeoutError, OSError) as exc:
        raise StoreError(f"cannot probe the memory store at {uri} for conditional writes: {_first_line(exc)} "
                         "(memory.uri, memory.storage_options)") from None
    finally:
        await _delete_quietly(store, path)


def _object_store(uri: str, options: Mapping[str, SecretStr | str]) -> Any:
    """An object store client configured from `memory.storage_options` as LanceDB reads them;
    options of LanceDB's own that the client does not know are left out."""
    from obstore.exceptions import UnknownConfigurationKeyError
    from obstore.store import from_url

    config, client = _split_options(options)
    retry = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
    while True:
        try:
            return from_url(uri, config=config, client_options=client, retry_config=retry)  # type: ignore[call-overload]
        except UnknownConfigurationKeyError as exc:
            unknown = [key for key in config if repr(key) in str(exc)]
            if not unknown:
                raise StoreError(f"memory.storage_options: {_first_line(exc)}") from None
            for key in unknown:
                del config[key]


def _split_options(options: Mapping[str, SecretStr | str]) -> tuple[dict[str, str], dict[str, str]]:
    config: dict[str, str] = {}
    client: dict[str, str] = {}
    for key, value in options.items():
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        name = key.lower()
        if name in _CLIENT_KEYS:
            client[name] = text
        else:
            config[name if name.startswith("aws_") else f"aws_{name}"] = text
    return config, client


async def _delete_quietly(store: Any, path: str) -> None:
    import obstore

    try:
        async with asyncio.timeout(5):
            await obstore.delete_async(store, path)
    except Exception:  # nothing there, or the store went away: a probe object is harmless
        log.debug("memory: could not delete the probe object %s", path, exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:300] + "…"
