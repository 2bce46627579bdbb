"""Measuring answer quality: KAgentBench's format and metric (`kagentbot eval run|score`) and
end-to-end task accuracy through the whole loop (`kagentbot eval e2e`)."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["cli", "e2e", "runner", "score"]
