"""The installed commands together: `emulate`, `serve`, `emulate send`.

The emulated security API serves 127.0.0.1/32 and the client's thumbprint;
the gateway has no extra ranges or pins, so it accepts only after fetching
both feeds from the emulator over HTTPS.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.support import (
    HOOKBOUNCER,
    PKI,
    GatewayProcess,
    base_config,
    free_port,
    make_pki,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def emulator(pki: PKI, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            HOOKBOUNCER,
            "emulate",
            "--listen",
            f"127.0.0.1:{port}",
            "--range",
            "127.0.0.1/32",
            "--thumbprint-of",
            str(pki.client.certificate),
            "--ca-out",
            str(tmp_path / "emulator-ca.pem"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().decode()
        assert banner.startswith("security API at https://")
        yield f"https://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()


def send(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKBOUNCER, "emulate", "send", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )


def test_gateway_accepts_after_fetching_feeds(
    pki: PKI, emulator: str, tmp_path: Path
) -> None:
    port = free_port()
    admin_port = free_port()
    document = base_config(pki, tmp_path / "state", listen=[f"127.0.0.1:{port}"])
    document["admin"]["listen"] = f"127.0.0.1:{admin_port}"
    document["feeds"] = {
        "api_base": emulator,
        "ca_bundle": tmp_path / "emulator-ca.pem",
    }
    config = write_config(tmp_path / "config.toml", document)
    gateway = GatewayProcess(config, admin_port, tmp_path / "serve.log")
    common = [
        "--url",
        f"https://127.0.0.1:{port}",
        "--server-cert",
        str(pki.server.certificate),
        "--client-cert",
        str(pki.client.certificate),
        "--seal-with",
        str(pki.keys_file),
    ]
    try:
        gateway.start()
        ready = wait_for(lambda: gateway.admin("/readyz").status_code == 200)
        genuine = send(*common, "--event", "completed", "--scan-id", "cli-1")
        forged = send(
            *common, "--event", "indexed", "--scan-id", "cli-2", "--source", "127.0.0.2"
        )
    finally:
        gateway.kill()
    assert ready, gateway.log()
    assert genuine.returncode == 0, genuine.stderr
    assert genuine.stdout.startswith('200 {"status":"accepted"}')
    assert forged.returncode == 1
    assert forged.stdout.startswith('403 {"error":"forbidden"}')


def test_send_reports_unreachable_gateway(pki: PKI) -> None:
    result = send("--url", f"https://127.0.0.1:{free_port()}", "--scan-id", "nowhere")
    assert result.returncode == 1
    assert "sending to https://127.0.0.1:" in result.stderr


def test_certs_prints_thumbprints(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            HOOKBOUNCER,
            "emulate",
            "certs",
            "--dir",
            str(tmp_path),
            "--name",
            "copyleaks",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "copyleaks.pem").is_file()
    assert (tmp_path / "copyleaks.key").stat().st_mode & 0o077 == 0
    sha1_line = next(
        line for line in result.stdout.splitlines() if line.startswith("sha1")
    )
    assert len(sha1_line.split()[1]) == 40


def test_serve_config_error_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nmode = "tls"\n')
    result = subprocess.run(
        [HOOKBOUNCER, "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "server.certificate" in result.stderr


def test_sigterm_drains_and_exits_0(pki: PKI, tmp_path: Path) -> None:
    port = free_port()
    admin_port = free_port()
    document = base_config(pki, tmp_path / "state", listen=[f"127.0.0.1:{port}"])
    document["admin"]["listen"] = f"127.0.0.1:{admin_port}"
    config = write_config(tmp_path / "config.toml", document)
    gateway = GatewayProcess(config, admin_port, tmp_path / "serve.log")
    try:
        gateway.start()
        code = gateway.terminate()
    finally:
        gateway.kill()
    log = gateway.log()
    assert code == 0, log
    assert "draining" in log
    assert "stopped relay, feeds and inbox" in log


def test_workers_share_listener(pki: PKI, tmp_path: Path) -> None:
    port = free_port()
    admin_port = free_port()
    document = base_config(pki, tmp_path / "state", listen=[f"127.0.0.1:{port}"])
    document["admin"]["listen"] = f"127.0.0.1:{admin_port}"
    config = write_config(tmp_path / "config.toml", document)
    gateway = GatewayProcess(
        config, admin_port, tmp_path / "serve.log", ("--workers", "2")
    )
    statuses = []
    try:
        gateway.start()
        both_ready = wait_for(lambda: gateway.log().count("]: ready") == 2)
        for number in range(6):
            scan_id = f"worker-{number}"
            # A new sender per webhook opens a new connection each time.
            with pki.sender(
                f"https://127.0.0.1:{port}", certificate=pki.client
            ) as sender:
                response = sender.send(
                    "indexed", scan_id, developer_payload=pki.seal(scan_id)
                )
            statuses.append(response.status_code)
        code = gateway.terminate()
    finally:
        gateway.kill()
    log = gateway.log()
    assert both_ready, log
    assert statuses == [200] * 6
    assert code == 0, log
    assert "all workers stopped" in log


def test_readyz_503_without_pins(pki: PKI, tmp_path: Path) -> None:
    port = free_port()
    admin_port = free_port()
    document = base_config(pki, tmp_path / "state", listen=[f"127.0.0.1:{port}"])
    document["admin"]["listen"] = f"127.0.0.1:{admin_port}"
    document["feeds"]["extra_thumbprints"] = []
    config = write_config(tmp_path / "config.toml", document)
    gateway = GatewayProcess(config, admin_port, tmp_path / "serve.log")
    try:
        gateway.start()
        response = gateway.admin("/readyz")
        with pki.sender(f"https://127.0.0.1:{port}", certificate=pki.client) as sender:
            webhook = sender.send(
                "indexed", "no-pins", developer_payload=pki.seal("no-pins")
            )
    finally:
        gateway.kill()
    assert response.status_code == 503
    assert response.json()["failed"] == ["feeds_not_loaded"]
    # Not a forgery but a gateway without its lists: the sender should retry.
    assert webhook.status_code == 503
