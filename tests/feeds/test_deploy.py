"""The scheduling examples under deploy/ run the real sync command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYNC = "hookbouncer sync --config /etc/hookbouncer/hookbouncer.toml"


def test_systemd_service_runs_sync() -> None:
    assert SYNC in (DEPLOY / "systemd" / "hookbouncer-sync.service").read_text()


def test_cron_runs_quiet_sync() -> None:
    text = (DEPLOY / "cron" / "hookbouncer-sync").read_text()
    assert SYNC.replace("sync", "sync --quiet") in text


def test_cronjob_runs_sync_once_at_a_time() -> None:
    text = (DEPLOY / "kubernetes" / "hookbouncer-sync-cronjob.yaml").read_text()
    assert 'args: ["sync", "--config", "/etc/hookbouncer/hookbouncer.toml"]' in text
    assert "concurrencyPolicy: Forbid" in text
    assert "restartPolicy: Never" in text
    assert "\t" not in text


def test_cron_line_has_six_fields_before_command() -> None:
    lines = [
        line
        for line in (DEPLOY / "cron" / "hookbouncer-sync").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split()
    assert fields[5] == "hookbouncer"
    assert "%" not in lines[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd")
def test_systemd_units_verify(tmp_path: Path) -> None:
    hookbouncer = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hookbouncer"
    for name in ("hookbouncer-sync.service", "hookbouncer-sync.timer"):
        text = (DEPLOY / "systemd" / name).read_text()
        text = text.replace("/usr/local/bin/hookbouncer", str(hookbouncer))
        # The example's user does not exist on a test machine.
        text = "\n".join(
            line
            for line in text.splitlines()
            if not line.startswith(("User=", "Group="))
        )
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(tmp_path.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
