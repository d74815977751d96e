"""`hookbouncer serve` stops with a configuration error before it starts."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.gateway.support import HOOKBOUNCER, PKI, base_config, make_pki, write_config


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path / "pki")


def serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKBOUNCER, "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("change", "named", "fix"),
    [
        ("missing_certificate", "server.certificate", "does not exist"),
        ("empty_certificate", "server.certificate", "PEM certificate"),
        ("other_key", "server.private_key", "does not match"),
    ],
)
def test_bad_server_files_exit_2(
    tmp_path: Path, pki: PKI, change: str, named: str, fix: str
) -> None:
    server: dict[str, object] = {}
    if change == "missing_certificate":
        server["certificate"] = tmp_path / "absent.pem"
    elif change == "empty_certificate":
        (tmp_path / "empty.pem").write_text("")
        server["certificate"] = tmp_path / "empty.pem"
    else:
        server["private_key"] = pki.unpinned.private_key
    config = write_config(
        tmp_path / "config.toml", base_config(pki, tmp_path / "state", **server)
    )

    result = serve(config)

    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert fix in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "inbox.db").exists()


def test_port_in_use_names_address(tmp_path: Path, pki: PKI) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        document = base_config(pki, tmp_path / "state", listen=[address])
        result = serve(write_config(tmp_path / "config.toml", document))

    assert result.returncode == 1
    assert f"cannot listen on {address}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_encrypted_key_fails_without_prompt(tmp_path: Path, pki: PKI) -> None:
    key = serialization.load_pem_private_key(
        pki.server.private_key.read_bytes(), password=None
    )
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    document = base_config(pki, tmp_path / "state", private_key=encrypted)

    result = serve(write_config(tmp_path / "config.toml", document))

    assert result.returncode == 2
    assert "server.private_key" in result.stderr
    assert "unencrypted PEM private key" in result.stderr


def test_bad_key_with_workers_is_one_message(tmp_path: Path, pki: PKI) -> None:
    document = base_config(pki, tmp_path / "state", private_key=tmp_path / "absent")
    config = write_config(tmp_path / "config.toml", document)

    result = subprocess.run(
        [HOOKBOUNCER, "serve", "--config", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.count("server.private_key") == 1
    assert "Traceback" not in result.stderr
