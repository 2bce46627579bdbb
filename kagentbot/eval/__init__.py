"""Measuring answer quality: KAgentBench's format and metric (`kagentbot eval run|score`) and
end-to-end task accuracy through the whole loop (`kagentbot eval e2e`)."""
