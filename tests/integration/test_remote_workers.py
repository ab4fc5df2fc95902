"""pytest-xdist workers on other hosts: every finding reaches the controller, none through
files both sides must see.

A remote host is simulated on this machine: each worker is an execnet socket server
(``python -m execnet.script.socketserver``) started in its own mount namespace
(``unshare -m``) with an empty tmpfs mounted over the controller's output folder, so the
workers can read the QC data (as a shared data mount would offer it) but cannot see what
the controller writes. The run with two such workers must give what a run without
workers gives.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import checkout_pythonpath, write_qc

QC = ("--pyargs", "segqc.qc_tests")


def _can_make_mount_namespaces() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_make_mount_namespaces(), reason="needs root and unshare -m (Linux mount namespaces)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"socket server on port {port} exited: {process.stdout.read()!r}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"socket server on port {port} did not start")


@pytest.fixture
def remote_hosts(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """Two socket servers that cannot see ``<tmp_path>/hidden``; yields their ``--tx``
    specs and that folder (the controller's output folder)."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    servers: list[subprocess.Popen[bytes]] = []
    specs: list[str] = []
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    try:
        for index in range(2):
            home = tmp_path / f"host{index}"
            home.mkdir()
            port = _free_port()
            script = (
                f"mount -t tmpfs tmpfs {hidden} && exec {sys.executable} "
                f"-m execnet.script.socketserver 127.0.0.1:{port}"
            )
            server = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                cwd=home,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            servers.append(server)
            _wait_for(port, server)
            specs.append(f"socket=127.0.0.1:{port}")
        yield specs, hidden
    finally:
        for server in servers:
            server.kill()
            server.wait()


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _comparable(summary: dict) -> dict:
    """summary.json without what differs between two runs by design: times, paths."""

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {
                k: strip(v)
                for k, v in value.items()
                if k not in ("created", "seconds", "figure", "prediction_file")
                and not (isinstance(v, str) and "/" in v)
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(summary)  # type: ignore[return-value]


def test_workers_on_other_hosts_deliver_every_image(tmp_path, remote_hosts):
    specs, hidden = remote_hosts
    qc = write_qc(tmp_path / "qc", 6, dropped=(0, 4, 0, 2, 0, 1))
    groups = tmp_path / "groups.csv"
    groups.write_text(
        "image,group\n" + "".join(f"img{i:02d}.tif,{'a' if i < 3 else 'b'}\n" for i in range(6))
    )
    # Paths in the '=' form: xdist rewrites path arguments of remote workers relative to
    # its rsync roots; absolute, because a remote worker runs in another folder.
    common = (
        *QC,
        f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}",
        f"--qc-groups={groups}",
    )
    local = tmp_path / "local"
    alone = _pytest(tmp_path, *common, f"--qc-output={local}")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    tx = [arg for spec in specs for arg in ("--tx", spec)]
    remote = _pytest(tmp_path, *common, "-d", *tx, f"--qc-output={hidden}")
    output = remote.stdout + remote.stderr
    assert remote.returncode == 0, output
    assert "6 of 6 QC images evaluated" in output
    assert "INTERNALERROR" not in output and "Traceback" not in output

    assert (hidden / "metrics.csv").read_bytes() == (local / "metrics.csv").read_bytes()
    with open(hidden / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["false negative"]) for row in rows] == [0, 4, 0, 2, 0, 1]
    with_workers = json.loads((hidden / "summary.json").read_text())
    without = json.loads((local / "summary.json").read_text())
    assert [g["group"] for g in with_workers["subgroups"]["image_groups"]] == ["a", "b"]
    assert _comparable(with_workers) == _comparable(without)
    report = (hidden / "report.html").read_text(encoding="utf-8")
    # every image's four panels were drawn on the workers and came through the channel
    assert report.count('class="segqc-visual"') == 6
    assert report.count("data:image/png") == (local / "report.html").read_text(
        encoding="utf-8"
    ).count("data:image/png")
