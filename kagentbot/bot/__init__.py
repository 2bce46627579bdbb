"""The bot: its lifecycle, queues and error handling (app), the wiring of every part (services),
chat commands, sharing rules and the scheduler. The only package below the command line
(kagentbot.cli) that knows every other one."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["app", "services", "schedule", "sharing", "kb_commands", "persona_commands", "schedule_commands"]
