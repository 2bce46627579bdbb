"""Running kagentbot as a service: the figures it keeps (metrics), its JSON log lines (logs),
and the /healthz, /readyz and /metrics endpoint (server). A leaf: the bot, the adapters and the
agent report into it; it imports only the settings. Nothing here is needed for a turn to work:
with the endpoint off, the hooks cost a flag test."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["checks", "image", "logs", "metrics", "server", "slots"]
