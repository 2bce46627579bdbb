"""The leader's platform duties through the real adapters: of two replicas of one Telegram bot
only the leader polls (Telegram refuses a second getUpdates), and the next leader starts when
the first stops; Discord's slash commands are synced by the leader alone. And a single bot
(cluster off) never loads the Redis client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from kagentbot.adapters.telegram_adapter import TelegramAdapter
from kagentbot.bot.app import Bot
from kagentbot.bot.services import Services
from tests.discord.conftest import discord_bot  # noqa: F401  (the real DiscordAdapter on dpytest's fake)
from tests.telegram import updates as tg
from tests.telegram.fake_bot_api import FakeBotAPI


@pytest.fixture
async def api():
    async with FakeBotAPI(username=tg.BOT_USERNAME, bot_id=tg.BOT_ID) as server:
        yield server


async def telegram_replica(name: str, api, make_settings, cluster_settings, tmp_path) -> tuple[Bot, TelegramAdapter]:
    cluster = cluster_settings.model_copy(update={"replica_id": f"replica-{name}", "lease_seconds": 1.5}).model_dump()
    telegram = {"token": api.token, "base_url": api.base_url, "send_interval": 0, "edit_interval": 0}
    settings = make_settings(data_dir=tmp_path / name, telegram=telegram, cluster=cluster)
    adapter = TelegramAdapter(settings)
    bot = Bot(await Services.open(settings), [adapter])
    await bot.start()
    return bot, adapter


async def test_only_the_leader_polls_telegram_and_the_next_one_takes_over(api, make_settings, cluster_settings,
                                                                          redis_client, tmp_path):
    a, adapter_a = await telegram_replica("a", api, make_settings, cluster_settings, tmp_path)
    b, adapter_b = await telegram_replica("b", api, make_settings, cluster_settings, tmp_path)
    try:
        assert adapter_a.polling() and not adapter_b.polling()
        assert await adapter_b.connected()  # a follower is ready: polling is the leader's
        await a.stop(grace=0)
        started = time.monotonic()
        while not adapter_b.polling():
            assert time.monotonic() - started < 1.5 + 1, "the follower did not take polling over"
            await asyncio.sleep(0.05)
    finally:
        for bot in (a, b):
            if bot._running:
                await bot.stop(grace=0)


def test_a_single_bot_does_not_load_the_redis_client(make_settings, tmp_path):
    """Cluster off: the bot starts, keeps its state in files, and never imports redis."""
    script = (
        "import asyncio, sys\n"
        "from kagentbot.bot.app import Bot\n"
        "from kagentbot.bot.services import Services\n"
        "from kagentbot.config.settings import load_settings\n"
        "async def main():\n"
        f"    settings = load_settings(environ={{}}, data_dir={str(tmp_path / 'single')!r})\n"
        "    bot = Bot(await Services.open(settings, defer_memory=True), [])\n"
        "    await bot.start()\n"
        "    await bot.services.personas.select_persona('console:me', 'users', 'console:me', 'research')\n"
        "    await bot.stop(grace=0)\n"
        "    assert not [m for m in sys.modules if m == 'redis' or m.startswith('redis.')], 'redis imported'\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=120)
    assert (tmp_path / "single" / "personas" / "selections.json").exists()


async def test_only_the_leader_syncs_discord_commands(discord_bot, cluster_settings, redis_client):
    """Another replica leads when this one logs in: no sync then; it syncs when it takes over."""
    from kagentbot.cluster.shared import open_shared

    other = await open_shared(cluster_settings.model_copy(update={"replica_id": "replica-other"}))

    async def nothing() -> None:
        return None

    elsewhere = other.leadership(nothing, nothing)
    await elsewhere.start()
    try:
        cluster = cluster_settings.model_copy(update={"replica_id": "replica-discord", "lease_seconds": 1.5})
        harness = await discord_bot(cluster=cluster.model_dump())
        assert harness.http.synced_commands == []
        await elsewhere.stop()  # frees the lock: this replica leads at its next round
        started = time.monotonic()
        while not harness.http.synced_commands:
            assert time.monotonic() - started < 1.5, "the new leader did not sync the commands"
            await asyncio.sleep(0.05)
        assert "kb" in [command["name"] for command in harness.http.synced_commands]
    finally:
        await elsewhere.stop()
        await other.close()


def test_a_replica_that_cannot_reach_redis_at_start_says_so_and_does_not_start(tmp_path, monkeypatch, capsys):
    from kagentbot.cli import main
    from tests.fakes.redis_server import free_port

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGENTBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAGENTBOT_CLUSTER__ENABLED", "true")
    monkeypatch.setenv("KAGENTBOT_CLUSTER__REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("KAGENTBOT_CLUSTER__CONNECT_TIMEOUT", "0.3")
    assert main(["schedule", "list"]) == 2
    error = capsys.readouterr().err
    assert "cluster.enabled is on, but Redis does not answer" in error and "KAGENTBOT_CLUSTER__REDIS_URL" in error
    assert "hunter2" not in error
    assert not (tmp_path / "data" / "schedules.json").exists()
