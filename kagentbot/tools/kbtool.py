"""`kb_search`: the knowledge base as a tool the model can call on purpose, besides the
automatic retrieval every planning step does."""

from __future__ import annotations

from kagentbot.tools.framing import as_data
from kagentbot.tools.registry import ToolContext, ToolError, ToolOutput, tool
from kagentbot.tools.webapi import output_budget


@tool
async def kb_search(query: str, *, context: ToolContext) -> ToolOutput:
    """Search the knowledge base (documents this user or chat added) for passages about a subject.

    Args:
        query: what to look for, as keywords or a question
    """
    if context.knowledge is None:
        raise ToolError("no knowledge base is attached to this conversation; documents are added with /kb add")
    if not query.strip():
        raise ToolError("query is empty: say what to look for")
    limit = context.settings.memory.top_k if context.settings is not None else 4
    passages = list(await context.knowledge.search_knowledge(query.strip(), limit))
    if not passages:
        return ToolOutput(text=f"the knowledge base has nothing about {query!r}", display=f"📂 nothing in the knowledge base for “{query}”")
    lines = [f"[{i}] ({p.source}) {' '.join(p.text.split())}" for i, p in enumerate(passages, 1)]
    sources = sorted({p.source for p in passages})
    display = f"📂 {len(passages)} passages from " + ", ".join(sources[:4])
    return ToolOutput(text=as_data("the knowledge base", "\n".join(lines), output_budget(context)), display=display)
