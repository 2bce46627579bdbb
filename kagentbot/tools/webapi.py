"""What the network tools share: their settings, an HTTP session and a JSON GET whose
failures become ToolErrors naming the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from kagentbot.tools.registry import ToolContext, ToolError

if TYPE_CHECKING:
    import aiohttp

    from kagentbot.config.settings import ToolsSettings
# aiohttp (~0.1 s to import) is imported by the functions that make requests, so building the
# tool catalogue at start does not pay for it.


def tool_settings(context: ToolContext) -> ToolsSettings:
    """The `tools` settings section, or its defaults when a caller built a bare context."""
    if context.settings is not None:
        return context.settings.tools
    from kagentbot.config.settings import ToolsSettings

    return ToolsSettings()


def output_budget(context: ToolContext) -> int:
    """Characters a tool may fill: its own budget, kept under the agent's cut so a frame's
    closing line is never cut off."""
    budget = tool_settings(context).output_chars
    if context.settings is not None:
        budget = min(budget, context.settings.agent.tool_output_chars - 20)
    return max(200, budget)


@asynccontextmanager
async def api_session(context: ToolContext) -> AsyncIterator[aiohttp.ClientSession]:
    """The caller's shared session, or a short-lived one when there is none."""
    if context.http is not None:
        yield context.http
        return
    import aiohttp

    headers = {"User-Agent": tool_settings(context).user_agent}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    service: str,
    timeout: float,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    user_agent: str = "",
) -> Any:
    import aiohttp

    if user_agent and "User-Agent" not in session.headers:  # Wikimedia refuses anonymous clients
        headers = {"User-Agent": user_agent} | (headers or {})
    try:
        async with session.get(url, params=params, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status >= 400:
                raise ToolError(f"{service} answered HTTP {response.status}{await _reason(response)}")
            return await response.json(content_type=None)
    except (TimeoutError, asyncio.TimeoutError):
        raise ToolError(f"{service} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ToolError(f"{service} is unreachable: {exc}") from None
    except ValueError:
        raise ToolError(f"{service} sent something that is not JSON") from None


async def _reason(response: aiohttp.ClientResponse) -> str:
    """Open-Meteo and others explain a 400 in a JSON `reason`; pass it on to the model."""
    import aiohttp

    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    reason = body.get("reason") or body.get("error") if isinstance(body, dict) else None
    return f": {reason}" if isinstance(reason, str) else ""
