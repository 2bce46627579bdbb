"""The container files cannot be built here (no container daemon), so what can go wrong in them
without a build is checked: every variable they set is a setting, the paths they copy and the
entry point exist, the image installs the package as the README does, and the two steps the
image runs (baking the embedder's weights, the health check) work."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import pytest
import yaml

from kagentbot.config.settings import SettingsError, load_settings
from kagentbot.memory.embedders import _resources
from kagentbot.memory.startup.use_weights import load_cached
from kagentbot.ops import image

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\b(KAGENTBOT_[A-Z0-9_]*[A-Z0-9])\b")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def env_values() -> dict[str, str]:
    """Every KAGENTBOT_ variable the container files set, commented-out examples included."""
    found: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#?\s*(KAGENTBOT_[A-Z0-9_]+)=(.*)$", line.strip())
        if match:
            found[match[1]] = match[2]
    for instruction, args in dockerfile():
        if instruction == "ENV":
            found.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    for service in yaml.safe_load((ROOT / "compose.yaml").read_text())["services"].values():
        found.update({k: str(v) for k, v in (service.get("environment") or {}).items() if k.startswith("KAGENTBOT_")})
    return {k: v for k, v in found.items() if k.startswith("KAGENTBOT_")}


def test_every_variable_they_set_is_a_setting(make_settings, monkeypatch):
    values = env_values()
    assert {"KAGENTBOT_OPS__PORT", "KAGENTBOT_LOG__FORMAT", "KAGENTBOT_EMBED__WEIGHTS_DIR",
            "KAGENTBOT_DATA_DIR", "KAGENTBOT_SLACK__BOT_TOKEN", "KAGENTBOT_TOOLS__SEARXNG_URL"} <= set(values)
    make_settings()  # clears the developer's KAGENTBOT_ variables
    for name, value in values.items():
        value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)  # compose's ${VAR:-default}
        monkeypatch.setenv(name, value)
        try:
            load_settings()  # read from the environment, as in the container
        except SettingsError as exc:
            pytest.fail(f"{name}={value}: {exc}")
        monkeypatch.delenv(name)
    every_mention = set(VARIABLE.findall((ROOT / "compose.yaml").read_text() + (ROOT / "docs/deploy.md").read_text()))
    for name in every_mention:
        assert _is_setting(name), f"{name} is not a setting"


def _is_setting(name: str) -> bool:
    from pydantic import BaseModel

    from kagentbot.config.settings import Settings

    model = Settings
    parts = name.removeprefix("KAGENTBOT_").lower().split("__")
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return False
        model = field.annotation
    return parts[-1] in model.model_fields


def test_the_image_installs_the_package_as_the_readme_does_and_runs_kagentbot():
    steps = dockerfile()
    runs = [args for instruction, args in steps if instruction == "RUN"]
    assert "pip install ." in runs  # the README: `pip install -e .` from the repository
    assert "pip install -e ." in (ROOT / "README.md").read_text()
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _ = shlex.split(args)
            assert all((ROOT / source).exists() for source in sources), args
    assert ("ENTRYPOINT", '["kagentbot"]') in steps and ("CMD", '["run"]') in steps
    assert 'kagentbot = "kagentbot.cli:main"' in (ROOT / "pyproject.toml").read_text()
    assert ("USER", "kagentbot") in steps and ("VOLUME", '["/data"]') in steps
    (healthcheck,) = [args for instruction, args in steps if instruction == "HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["python", "-m", "kagentbot.ops.image", "health"]')
    assert "python -m kagentbot.ops.image bake-weights" in " ".join(runs)
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot = compose["services"]["kagentbot"]
    assert bot["build"] == "." and bot["env_file"] == ".env" and "kagentbot-data:/data" in bot["volumes"]
    assert (ROOT / compose["services"]["searxng"]["volumes"][0].split(":")[0]).is_file()
    assert "json" in yaml.safe_load((ROOT / "deploy/searxng/settings.yml").read_text())["search"]["formats"]


def test_baked_weights_are_what_the_embedder_loads(make_settings, weights_dir):
    settings = make_settings(embed={"weights_dir": weights_dir})
    assert image.bake_weights(settings) == f"builtin embedder (pooled) ready in {weights_dir}"
    assert load_cached(weights_dir / "use-multilingual-v3", _resources() / "weights.npz") is not None


async def test_the_health_check_asks_the_running_bot(make_settings, monkeypatch):
    from tests.ops.test_endpoints import free_port

    port = free_port()
    settings = make_settings(ops={"port": port})
    assert await asyncio.to_thread(image.health, settings, 1.0) == 1  # nothing listens yet
    from aiohttp import web

    async def healthz(request):
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        assert await asyncio.to_thread(image.health, settings, 1.0) == 0
    finally:
        await runner.cleanup()
    assert image.health(make_settings()) == 1  # no port set: nothing to ask
