"""The planning loop (loop), its LLM clients (llm, llm_meter), prompts and output parsing, the
fair LLM slot gate (slots) and the typed events a turn yields (events). Headless: never imports
the bot or the adapters. Submodules are imported one by one (the LLM clients are heavy)."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["events", "llm", "llm_meter", "loop", "parsing", "prompts", "slots"]
