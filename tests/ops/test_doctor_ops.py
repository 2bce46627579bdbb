"""`kagentbot doctor` on running as a service: the ops endpoint and the container's volume."""

from __future__ import annotations

import io
import socket
from pathlib import Path

from rich.console import Console

from kagentbot.cli.doctor import diagnose
from kagentbot.ops.checks import check_ops, check_volume
from tests.ops.test_endpoints import free_port

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/l
23 22 0:22 / /proc rw,nosuid - proc proc rw
31 22 8:1 /var/lib/docker/volumes/kagentbot-data/_data /data rw,relatime - ext4 /dev/sda1 rw
32 22 8:1 /srv/my\\040files /mnt/my\\040files rw,relatime - ext4 /dev/sda1 rw
"""


def container(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".dockerenv").touch()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    return root, mountinfo


async def test_ops_endpoint_off_free_or_taken(make_settings):
    off = await check_ops(make_settings())
    assert off.level == "ok" and "KAGENTBOT_OPS__PORT" in off.message
    port = free_port()
    free = await check_ops(make_settings(ops={"port": port}))
    assert free.level == "ok" and free.message == f"`kagentbot run` will serve /healthz, /readyz and /metrics at http://127.0.0.1:{port}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()  # accepts, never answers
        busy = await check_ops(make_settings(ops={"port": port, "check_timeout": 0.3}))
    assert busy.level == "fail" and busy.fix == "set KAGENTBOT_OPS__PORT to a free port"


def test_data_directory_on_a_volume_in_a_container(make_settings, tmp_path):
    root, mountinfo = container(tmp_path)
    (found,) = check_volume(make_settings(data_dir=Path("/data/kagentbot")), root, mountinfo)
    assert found.level == "ok" and "mounted at /data" in found.message
    (spaced,) = check_volume(make_settings(data_dir=Path("/mnt/my files/bot")), root, mountinfo)
    assert spaced.level == "ok" and "mounted at /mnt/my files" in spaced.message


def test_data_directory_in_the_container_layer_is_a_warning(make_settings, tmp_path):
    root, mountinfo = container(tmp_path)
    (found,) = check_volume(make_settings(data_dir=Path("/home/kagentbot/data")), root, mountinfo)
    assert found.level == "warn" and "lost when the container is removed" in found.message
    assert "mount a volume at /home/kagentbot/data" in found.fix


def test_outside_a_container_nothing_is_said(make_settings, tmp_path):
    root = tmp_path / "host"
    root.mkdir()
    assert check_volume(make_settings(data_dir=Path("/home/x")), root, tmp_path / "none") == []


async def test_doctor_reports_the_ops_endpoint(make_settings, fake_ollama):
    out = io.StringIO()
    port = free_port()
    await diagnose(make_settings(llm={"host": fake_ollama.url}, ops={"port": port}), Console(file=out, width=200))
    assert f"ops endpoint: `kagentbot run` will serve /healthz, /readyz and /metrics at http://127.0.0.1:{port}" in out.getvalue()
