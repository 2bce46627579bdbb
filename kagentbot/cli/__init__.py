"""The `kagentbot` command, the top layer: it sits on the bot and nothing imports it. `main`
builds the parser and runs a subcommand; each command group (`kb`, `persona`, `schedule`,
`tools`, `doctor`, `run`) has its own module here, imported only when its subcommand runs or
its parser is built, so `kagentbot ask` starts fast."""

from kagentbot.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
