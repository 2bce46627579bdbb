"""`kagentbot doctor`: find what stops the bot from working, and say how to fix each thing."""

from __future__ import annotations

import os
import re
import tempfile
from rich.console import Console

from kagentbot.agent.llm import LLMError, ModelNotFound, make_client
from kagentbot.config.settings import Settings
from kagentbot.ops.checks import Finding, Level

MARKS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}


async def diagnose(settings: Settings, console: Console | None = None) -> int:
    console = console or Console(highlight=False)
    from kagentbot.ops.checks import check_ops, check_volume

    findings = [*(await check_llm(settings)), check_data_dir(settings), *check_volume(settings),
                *check_platforms(settings), await check_ops(settings)]
    for finding in findings:
        console.print(f"{MARKS[finding.level]} [bold]{finding.topic}[/]: {finding.message}")
        if finding.fix:
            console.print(f"    fix: {finding.fix}")
    failed = sum(f.level == "fail" for f in findings)
    console.print(f"\n{failed} problem(s) found." if failed else "\nAll checks passed.")
    return 1 if failed else 0


async def check_llm(settings: Settings) -> list[Finding]:
    llm = settings.llm
    client = make_client(llm)
    try:
        try:
            models = await client.list_models()
        except LLMError as exc:  # unreachable, or a 404 for the model list itself: a wrong host or path
            fix = "" if "KAGENTBOT_LLM__HOST" in str(exc) else _host_fix(settings)
            return [Finding("fail", "LLM server", f"{exc} (at {client.host})", fix)]
        count = f"{len(models)} model{'' if len(models) == 1 else 's'}"
        found = [Finding("ok", "LLM server", f"{llm.backend} server at {client.host} answers ({count})")]
        try:
            info = await client.describe(llm.model)
        except ModelNotFound as exc:
            has = f"it has: {', '.join(models[:8])}" if models else "it has none yet"
            return [*found, Finding("fail", "model", str(exc), f"KAGENTBOT_LLM__MODEL names the model to use; {has}")]
        except LLMError as exc:
            return [*found, Finding("fail", "model", str(exc))]
    finally:
        await client.close()
    return found + _model_findings(settings, info.context_length, info.supports_tools)


def _host_fix(settings: Settings) -> str:
    if settings.llm.backend == "openai":
        return "point KAGENTBOT_LLM__HOST at the server's OpenAI-compatible base URL (e.g. http://host:8000/v1)"
    return "point KAGENTBOT_LLM__HOST (or OLLAMA_HOST) at an Ollama server, e.g. http://host:11434"


def _model_findings(settings: Settings, context: int | None, tools: bool | None) -> list[Finding]:
    llm = settings.llm
    found = [Finding("ok", "model", f"{llm.model} is available (mode: {llm.mode})")]
    if tools is False and llm.mode == "native":
        found.append(Finding("fail", "tool calling", f"{llm.model} does not support tool calling",
                             "set KAGENTBOT_LLM__MODE=kagent (the JSON planning protocol works with any model)"))
    elif tools is not None:
        found.append(Finding("ok", "tool calling", "supported" if tools else "not supported (fine in kagent mode)"))
    if context is None:
        found.append(Finding("warn", "context length", "the server does not report it"))
    elif context < llm.num_ctx:
        found.append(Finding("warn", "context length", f"the model holds {context} tokens but num_ctx is {llm.num_ctx}",
                             f"set KAGENTBOT_LLM__NUM_CTX={context}"))
    else:
        found.append(Finding("ok", "context length", f"{context} tokens (using {llm.num_ctx})"))
    return found


def check_data_dir(settings: Settings) -> Finding:
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Finding("fail", "data directory", f"{path} is not writable: {exc.strerror}",
                       "set KAGENTBOT_DATA_DIR to a writable directory")
    free_mb = _free_mb(path)
    level: Level = "warn" if free_mb < 500 else "ok"
    return Finding(level, "data directory", f"{path} is writable ({free_mb:,} MB free)")


def _free_mb(path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize // 1_000_000


TOKEN_SHAPES = {
    ("slack", "bot_token"): (r"^xoxb-", "a bot token starts with xoxb-"),
    ("slack", "app_token"): (r"^xapp-", "an app-level token starts with xapp-"),
    ("telegram", "token"): (r"^\d+:[\w-]{20,}$", "a bot token looks like 123456:ABC-DEF..."),
    ("discord", "token"): (r"^[\w-]{20,}\.[\w-]{4,}\.[\w-]{20,}$", "a bot token has three dot-separated parts"),
}


def check_platforms(settings: Settings) -> list[Finding]:
    found = []
    for (platform, key), (pattern, shape) in TOKEN_SHAPES.items():
        secret = getattr(getattr(settings, platform), key)
        env = f"KAGENTBOT_{platform.upper()}__{key.upper()}"
        if secret is None:
            continue
        if not re.match(pattern, secret.get_secret_value()):
            found.append(Finding("fail", platform, f"{env} does not look right: {shape}", f"copy it again into {env}"))
        else:
            found.append(Finding("ok", platform, f"{key} is set"))
    if settings.slack.bot_token and settings.slack.mode == "socket" and not settings.slack.app_token:
        found.append(Finding("fail", "slack", "Socket Mode needs an app-level token",
                             "set KAGENTBOT_SLACK__APP_TOKEN (xapp-...), or KAGENTBOT_SLACK__MODE=http"))
    if settings.slack.bot_token and settings.slack.mode == "http" and not settings.slack.signing_secret:
        found.append(Finding("fail", "slack", "HTTP mode needs the signing secret", "set KAGENTBOT_SLACK__SIGNING_SECRET"))
    if not found:
        found.append(Finding("warn", "platforms", "no Slack, Discord or Telegram credentials are set",
                             "see the README's 'Connect a chat platform'; `kagentbot chat` works without any"))
    return found
