"""The bot: its lifecycle, queues and error handling (app), the wiring of every part (services,
runner), chat commands, sharing rules, the scheduler and `kagentbot doctor`. The only package that
knows every other one."""

# Public modules (imported on demand, not here: importing the package stays free).
__all__ = ["app", "runner", "services", "doctor", "schedule", "sharing", "kb_commands", "persona_commands", "schedule_commands"]
