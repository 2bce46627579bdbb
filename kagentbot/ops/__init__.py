"""Running kagentbot as a service: the figures it keeps (metrics), its JSON log lines (logs),
the turn watch the bot calls once per turn (turns), and the /healthz, /readyz and /metrics
endpoint (server). Nothing here is needed for a turn to work: with the endpoint off, the
hooks cost a flag test."""
