"""deploy/compose.cluster.yaml cannot be started here (no container daemon): what can go wrong in
it without one is checked. Each replica's environment is read as the settings it would start with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kagentbot.config.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.cluster.yaml"


def replicas() -> dict[str, dict]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {name: service for name, service in services.items() if name.startswith("kagentbot-")}


def replica_settings(service: dict, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value)))  # ${VAR:-default}
    try:
        return load_settings()
    except SettingsError as exc:
        pytest.fail(f"{COMPOSE.name}: {exc}")


def test_three_replicas_share_redis_and_the_bucket_and_split_the_discord_shards(make_settings, monkeypatch):
    make_settings()  # clears the developer's KAGENTBOT_ variables
    found = {name: replica_settings(service, monkeypatch) for name, service in replicas().items()}
    assert len(found) == 3
    for name, settings in found.items():
        assert settings.cluster.enabled and settings.cluster.replica_id == name
        assert settings.cluster.redis_url.get_secret_value() == "redis://redis:6379/0"
        assert settings.memory_uri == "s3://kagentbot/memory"
        assert settings.memory.storage_options["aws_endpoint"].get_secret_value() == "http://minio:9000"
    shards = sorted(shard for settings in found.values() for shard in settings.discord.shard_ids)
    assert shards == list(range(3)) and {s.discord.shard_count for s in found.values()} == {3}
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "local/kagentbot" in " ".join(services["minio-bucket"]["entrypoint"])  # the bucket memory.uri names
    for service in replicas().values():
        assert service["build"] == ".." and service["env_file"] == "../.env"
        assert (COMPOSE.parent / service["build"] / "Dockerfile").is_file()
