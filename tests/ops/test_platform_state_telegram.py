"""/readyz asks each adapter whether its connection is up: the real Telegram adapter against
the fake Bot API."""

from __future__ import annotations

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from tests.telegram.test_telegram_adapter import api, telegram_settings  # noqa: F401 (fixtures)


async def test_telegram_is_connected_while_it_fetches_updates(api, telegram_settings):
    adapter = TelegramAdapter(telegram_settings())
    assert await adapter.connected() is False
    await adapter.start(lambda adapter, message: None)
    try:
        assert await adapter.connected() is True
        await adapter.stop_receiving()
        assert await adapter.connected() is False
    finally:
        await adapter.stop()
