"""Per-user, per-chat memory in embedded LanceDB: the knowledge base, the conversation log and
the task history, behind the Protocols of `contracts`. The agent sees only `types.MemoryView`.

Public modules (imported on demand, not here: `import kagentbot.memory` must not import LanceDB,
numpy or pyarrow, which a cold `kagentbot ask` cannot afford before its first request):

- `types`: the values that cross the boundary (Audience, Passage, Turn, TaskRecord, Recall,
  DocumentInfo, AddResult) and `MemoryView`; `ConversationBuffer`, a process-local log.
- `contracts`: `KnowledgeBase`, `ConversationLog`, `TaskHistory`, `Maintenance`, and `Memory`,
  all of them, which `store.MemoryStore` and `startup.deferred.DeferredStore` implement.
- `store`: `MemoryStore` (open with `await MemoryStore.open(settings)`), `KnowledgeView`.
- `errors`: `StoreError`, `EmbedderMismatch`, `NotFound`.
- `embedders`: `Embedder`, `build_embedder`, `EmbedderError`.
- `ingest`: documents from text, files and URLs (`Document`, `IngestError`).
- `document_lock`: `DocumentLock`, the lock that keeps two processes from adding a document twice.
- `startup`: the start-up speed-ups (see its docstring).

Inside: `tables` (the LanceDB layout), `knowledge`, `conversation`, `tasks`, `maintenance`,
`pending`, `sandbox` and `archives` (parsing uploads safely)."""

__all__ = ["contracts", "document_lock", "embedders", "errors", "ingest", "startup", "store", "types"]
