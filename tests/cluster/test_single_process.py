"""One process (cluster off, the default) keeps redis out: the bot, its adapters and the ops
endpoint import nothing of it, so a bot without Redis installed runs as before."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import kagentbot.bot.app, kagentbot.bot.services, kagentbot.cli.runner, kagentbot.ops.server
import kagentbot.adapters.slack_adapter, kagentbot.adapters.telegram_adapter, kagentbot.adapters.discord_adapter
print(sorted(m for m in sys.modules if m == "redis" or m.startswith(("redis.", "kagentbot.cluster"))))
"""


def test_the_bot_in_one_process_imports_no_redis():
    found = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
