"""One module per platform, each keeping the Adapter protocol (kagentbot.chat.adapter): they
turn platform events into IncomingMessage and send what the renderer asks. They never reach
memory or tools. Submodules are imported one by one, so a platform's SDK loads only when used."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["console_adapter", "discord_adapter", "slack_adapter", "telegram_adapter"]
