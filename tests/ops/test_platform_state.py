"""/readyz asks each adapter whether its connection is up: the real Slack adapter against the
fake Slack (Telegram's: test_platform_state_telegram.py, its fixtures share a name)."""

from __future__ import annotations

import pytest

from kagentbot.adapters.slack_adapter import SlackAdapter
from tests.slack.test_slack_adapter import api, slack_settings  # noqa: F401 (fixtures)


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_slack_is_connected_between_start_and_stop(api, slack_settings, mode):
    adapter = SlackAdapter(slack_settings(mode=mode))
    assert await adapter.connected() is False
    await adapter.start(lambda adapter, message: None)
    try:
        assert await adapter.connected() is True
        await adapter.stop_receiving()
        assert await adapter.connected() is False
    finally:
        await adapter.stop()
