"""What `kagentbot doctor` says about running as a service: the ops endpoint (off, free to
serve, or a running bot answering there) and, inside a container, whether the data directory
is on a volume (otherwise everything users added dies with the container)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kagentbot.config.settings import Settings

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One thing `kagentbot doctor` reports: how it stands, and how to fix it where it fails."""

    level: Level
    topic: str
    message: str
    fix: str = ""


ENDPOINTS = "/healthz, /readyz and /metrics"


async def check_ops(settings: Settings) -> Finding:
    ops = settings.ops
    if ops.port is None:
        return Finding("ok", "ops endpoint", f"off (set KAGENTBOT_OPS__PORT to serve {ENDPOINTS})")
    host = "127.0.0.1" if ops.listen in ("0.0.0.0", "::", "") else ops.listen
    url = f"http://{host}:{ops.port}"
    answer = await _get_json(f"{url}/readyz", ops.check_timeout)
    if answer is not None:
        if answer.get("ready"):
            return Finding("ok", "ops endpoint", f"a running bot answers at {url}: ready")
        return Finding("warn", "ops endpoint", f"a running bot answers at {url}: not ready "
                       f"({answer.get('reason', 'no reason given')})")
    if _bindable(ops.listen, ops.port):
        return Finding("ok", "ops endpoint", f"`kagentbot run` will serve {ENDPOINTS} at {url}")
    return Finding("fail", "ops endpoint", f"{ops.listen}:{ops.port} is taken by another program",
                   "set KAGENTBOT_OPS__PORT to a free port")


async def _get_json(url: str, timeout: float) -> dict | None:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(url) as response:
                body = json.loads(await response.text())
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
        return None
    return body if isinstance(body, dict) and "ready" in body else None


def _bindable(listen: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET6 if ":" in listen else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((listen, port))
    except OSError:
        return False
    return True


def in_container(root: Path = Path("/")) -> bool:
    """Docker marks its containers with /.dockerenv, Podman with /run/.containerenv."""
    return (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists()


def check_volume(settings: Settings, root: Path = Path("/"),
                 mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Finding]:
    """Inside a container: is the data directory on a mount of its own (a volume or a bind
    mount), or in the container's writable layer?"""
    if not in_container(root):
        return []
    data = settings.data_dir.resolve()
    mount = _mount_of(data, _mount_points(mountinfo))
    if mount is None or mount == Path("/"):
        return [Finding("warn", "container volume", f"the data directory {data} is in the container's own layer: "
                        "what users added is lost when the container is removed",
                        f"mount a volume at {data} (compose.yaml mounts kagentbot-data at /data)")]
    return [Finding("ok", "container volume", f"the data directory {data} is on a volume (mounted at {mount})")]


def _mount_points(mountinfo: Path) -> list[Path]:
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [Path(_unescape(line.split()[4])) for line in lines if len(line.split()) > 4]


def _unescape(field: str) -> str:
    """mountinfo writes a space as \\040, a tab as \\011 (octal escapes)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _mount_of(path: Path, mounts: list[Path]) -> Path | None:
    holding = [m for m in mounts if path == m or m in path.parents]
    return max(holding, key=lambda m: len(m.parts)) if holding else None
