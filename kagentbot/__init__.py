"""kagentbot: a KwaiAgents-style planning agent in team chat."""

__version__ = "0.1.0"
