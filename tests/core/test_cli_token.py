"""The `hookbouncer token` commands through the installed CLI."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

HOOKBOUNCER = str(Path(sys.executable).with_name("hookbouncer"))


def run(*arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKBOUNCER, "token", *arguments],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    result = run("keygen", "--keys-file", str(path))
    assert result.returncode == 0, result.stderr
    return path


def test_keygen_creates_private_file(keys_file: Path) -> None:
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert json.loads(keys_file.read_text())["format"] == "hookbouncer-keyring"


def test_keygen_keeps_existing_file(keys_file: Path) -> None:
    before = keys_file.read_bytes()
    result = run("keygen", "--keys-file", str(keys_file))
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert keys_file.read_bytes() == before


def test_seal_rotate_open(keys_file: Path) -> None:
    sealed = run(
        "seal",
        "--scan-id",
        "scan-1",
        "--context",
        "order=9",
        "--keys-file",
        str(keys_file),
    )
    assert sealed.returncode == 0, sealed.stderr
    token = sealed.stdout.strip()
    assert token.startswith("hb1.")
    assert run("rotate", "--keys-file", str(keys_file)).returncode == 0
    opened = run(
        "open",
        "-",
        "--scan-id",
        "scan-1",
        "--keys-file",
        str(keys_file),
        stdin=token + "\n",
    )
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["context"] == "order=9"


def test_open_wrong_scan_fails(keys_file: Path) -> None:
    token = run(
        "seal", "--scan-id", "scan-1", "--keys-file", str(keys_file)
    ).stdout.strip()
    opened = run("open", token, "--scan-id", "scan-2", "--keys-file", str(keys_file))
    assert opened.returncode == 1
    assert "token_wrong_scan" in opened.stderr
    assert token not in opened.stderr


def test_seal_too_long_context_fails(keys_file: Path) -> None:
    result = run(
        "seal", "--scan-id", "s", "--context", "x" * 400, "--keys-file", str(keys_file)
    )
    assert result.returncode == 1
    assert "512" in result.stderr


def test_readable_key_ring_rejected(keys_file: Path) -> None:
    os.chmod(keys_file, 0o644)
    result = run("seal", "--scan-id", "s", "--keys-file", str(keys_file))
    assert result.returncode == 1
    assert "chmod 600" in result.stderr


def test_missing_keys_file_is_usage_error() -> None:
    result = run("seal", "--scan-id", "s")
    assert result.returncode == 2
    assert "--keys-file" in result.stderr
