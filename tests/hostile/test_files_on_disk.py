"""The data directory is private to the bot's OS user even under a permissive umask: the
directory and its folders 0700, every file 0600, LanceDB's own files included."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from kagentbot.bot.services import Services

ROOT = Path(__file__).resolve().parents[2]


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kagentbot.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, umask=0o022)


def test_the_cli_keeps_the_data_directory_private_under_umask_022(tmp_path, weights_dir):
    data = tmp_path / "data"
    (data / "personas").mkdir(parents=True)
    data.chmod(0o755)
    (data / "personas" / "selections.json").write_text('{"users": {}, "chats": {}}')
    (data / "personas" / "selections.json").chmod(0o644)  # as an earlier version left it
    notes = tmp_path / "notes.txt"
    notes.write_text("The door code is 4711.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGENTBOT_") and k != "OLLAMA_HOST"}
    env.update(KAGENTBOT_DATA_DIR=str(data), KAGENTBOT_EMBED__WEIGHTS_DIR=str(weights_dir), PYTHONPATH=str(ROOT))
    added = run_cli(env, "kb", "add", str(notes), "--user", "ann", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    chose = run_cli(env, "persona", "use", "research", "--user", "ann", cwd=tmp_path)
    assert chose.returncode == 0, chose.stderr
    found = modes(data)
    assert any(name.startswith("lancedb/") and name.endswith(".lance") for name in found)  # LanceDB wrote files
    assert "personas/audit.jsonl" in found  # a file written after the walk, by the second run
    loose = {name: oct(mode) for name, mode in found.items()
             if mode != (0o700 if (data / name).is_dir() else 0o600)}
    assert loose == {}


async def test_services_make_an_existing_data_directory_private(make_settings, tmp_path):
    settings = make_settings()
    (settings.data_dir / "schedules").mkdir(parents=True)
    settings.data_dir.chmod(0o755)
    (settings.data_dir / "schedules" / "jobs.json").write_text("{}")
    (settings.data_dir / "schedules" / "jobs.json").chmod(0o644)
    async with await Services.open(settings):
        pass
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((settings.data_dir / "schedules").stat().st_mode) == 0o700
    assert stat.S_IMODE((settings.data_dir / "schedules" / "jobs.json").stat().st_mode) == 0o600
