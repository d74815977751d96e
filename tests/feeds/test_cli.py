"""The installed `hookbouncer sync` and `status` commands, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hookbouncer.cli.main import main
from hookbouncer.emulator.security_api import SecurityAPI

from .conftest import RANGES, write_toml

HOOKBOUNCER = str(Path(sys.executable).with_name("hookbouncer"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKBOUNCER, *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def config_path(tmp_path: Path, api: SecurityAPI, ca_file: Path) -> Path:
    return write_toml(tmp_path / "hookbouncer.toml", api.url, ca_file)


def test_sync_success_exits_0(config_path: Path) -> None:
    result = run("sync", "--config", str(config_path))

    assert result.returncode == 0, result.stderr
    assert "ranges: updated, 3 entries (3 added, 0 removed)" in result.stdout
    assert "thumbprints: updated, 2 entries" in result.stdout
    assert "ranges feed updated to generation 1" in result.stderr
    state = config_path.parent / "state" / "feeds"
    assert json.loads((state / "ranges.json").read_text())["entries"] == RANGES


def test_sync_html_page_exits_1(api: SecurityAPI, config_path: Path) -> None:
    assert run("sync", "--config", str(config_path)).returncode == 0
    api.fail("ranges", "html")

    result = run("sync", "--config", str(config_path))

    assert result.returncode == 1
    assert "the ranges feed was not updated (html)" in result.stderr
    assert "ERROR hookbouncer.feeds: ranges feed update failed (html)" in result.stderr
    assert "the previous list stays in force" in result.stderr


def test_sync_zero_prefix_exits_1(api: SecurityAPI, config_path: Path) -> None:
    api.fail("ranges", "zero_prefix")

    result = run("sync", "--config", str(config_path))

    assert result.returncode == 1
    assert "'0.0.0.0/0' covers every address" in result.stderr


def test_sync_server_down_exits_1(tmp_path: Path, ca_file: Path) -> None:
    config_path = write_toml(tmp_path / "down.toml", "https://127.0.0.1:1", ca_file)

    result = run("sync", "--config", str(config_path))

    assert result.returncode == 1
    assert "(network)" in result.stderr


def test_sync_missing_config_exits_2(tmp_path: Path) -> None:
    result = run("sync", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_sync_json_output(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--config", str(config_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["feeds"]["ranges"]["outcome"] == "updated"
    assert document["feeds"]["ranges"]["added"] == RANGES


def test_status_json_after_sync(config_path: Path) -> None:
    assert run("sync", "--config", str(config_path)).returncode == 0

    result = run("status", "--config", str(config_path), "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    ranges = document["feeds"]["ranges"]
    assert ranges["feed_count"] == 3
    assert ranges["extra_count"] == 0
    assert ranges["last_outcome"] == "updated"
    assert ranges["last_error"] is None
    assert ranges["age"] >= 0
    assert document["health"]["ready"] is True
    assert "inbox" in document


def test_status_text_shows_last_error(
    api: SecurityAPI, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["sync", "--config", str(config_path)])
    api.fail("thumbprints", "empty")
    main(["sync", "--config", str(config_path)])
    capsys.readouterr()

    assert main(["status", "--config", str(config_path)]) == 0

    out = capsys.readouterr().out
    assert "ranges: 3 in force (3 from the feed, 0 extra)" in out
    assert "thumbprints: 2 in force (2 from the feed, 0 extra)" in out
    assert "failed" in out
    assert "the thumbprints feed list is empty" in out
    assert "last error:   20" in out
    assert "health: ok" in out
    assert "inbox:" in out


def test_status_before_any_sync_exits_1(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config", str(config_path)]) == 1
    out = capsys.readouterr().out
    assert "fetched:      never" in out
    assert "no sender ranges loaded" in out
    assert "inbox: no inbox database" in out


def test_status_shows_inbox_counts(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hookbouncer.config import load_config
    from hookbouncer.inbox import open_inbox

    open_inbox(load_config(config_path)).close()

    main(["status", "--config", str(config_path), "--json"])

    inbox = json.loads(capsys.readouterr().out)["inbox"]
    assert "error" not in inbox
    assert inbox["pending"] == 0
    assert inbox["accepted"] == 0


def test_status_keeps_last_error_after_success(
    api: SecurityAPI, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["sync", "--config", str(config_path)])
    api.fail("ranges", "glued")
    main(["sync", "--config", str(config_path)])
    api.recover()
    main(["sync", "--config", str(config_path)])
    capsys.readouterr()

    main(["status", "--config", str(config_path), "--json"])

    ranges = json.loads(capsys.readouterr().out)["feeds"]["ranges"]
    assert ranges["last_outcome"] == "not_modified"
    assert "not one JSON document" in ranges["last_error"]
    assert ranges["last_error_at"] <= ranges["last_attempt_at"]


def test_sync_quiet_prints_nothing_on_success(config_path: Path) -> None:
    result = run("sync", "--quiet", "--config", str(config_path))

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == ""


def test_sync_quiet_still_reports_failure(api: SecurityAPI, config_path: Path) -> None:
    api.fail("thumbprints", "shape")

    result = run("sync", "--quiet", "--config", str(config_path))

    assert result.returncode == 1
    assert "thumbprints: failed (shape)" in result.stdout
    assert "the thumbprints feed was not updated (shape)" in result.stderr
    assert "INFO" not in result.stderr


def test_sync_feeds_only_config(
    tmp_path: Path, api: SecurityAPI, ca_file: Path
) -> None:
    """An edge owner's config has no server or check secrets, only feeds."""
    path = tmp_path / "edge.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[feeds]\napi_base = "{api.url}"\nca_bundle = "{ca_file}"\n'
    )

    result = run("sync", "--config", str(path))

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "state" / "feeds" / "ranges.txt").read_text().endswith("\n")
    assert run("status", "--config", str(path)).returncode == 0
