"""Outbound HTTP both memory (`/kb add URL`) and tools (browse_website) use: one SSRF-guarded
fetcher (guard), so neither has to import the other."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["guard"]
