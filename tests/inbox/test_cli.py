"""`hookbouncer inbox` list, show and redeliver against a real SQLite inbox."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hookbouncer.cli.main import main
from hookbouncer.config import load_config
from hookbouncer.inbox import Inbox, open_inbox
from tests.inbox.conftest import make_webhook

SECRET = "whsec_" + base64.b64encode(b"cli-test-key-of-32-bytes-long!!!").decode()


def _write_config(tmp_path: Path, relay_url: str = "http://127.0.0.1:9/") -> Path:
    (tmp_path / "relay.secret").write_text(SECRET + "\n")
    config = tmp_path / "hookbouncer.toml"
    config.write_text(
        f"""
state_dir = "{tmp_path / "state"}"

[server]
mode = "plain"
listen = ["127.0.0.1:0"]

[routes.status]
checks = ["source_ip"]
[routes.new_result]
checks = ["source_ip"]
[routes.export]
checks = ["source_ip"]

[relay]
url = "{relay_url}"
signing_secret_file = "relay.secret"
backoff_initial = "10ms"
backoff_max = "50ms"
"""
    )
    return config


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return _write_config(tmp_path)


@pytest.fixture
def inbox(config_path: Path) -> Iterator[Inbox]:
    inbox = open_inbox(load_config(config_path))
    yield inbox
    inbox.close()


def test_list_prints_table(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    first = inbox.record_accepted(make_webhook(1)).id
    second = inbox.record_accepted(make_webhook(2)).id
    assert main(["inbox", "list", "--config", str(config_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "TRIES"]
    assert lines[1].split()[:2] == [str(second), "pending"]
    assert lines[2].split()[:2] == [str(first), "pending"]
    assert "scan-2" in lines[1]


def test_list_json_filters_state(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox.record_accepted(make_webhook(1))
    dead = inbox.record_accepted(make_webhook(2)).id
    inbox.mark_attempt_failed(dead, "HTTP 500", None)
    code = main(
        ["inbox", "list", "--config", str(config_path), "--state", "dead", "--json"]
    )
    assert code == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in listed] == [dead]
    assert listed[0]["last_error"] == "HTTP 500"
    assert "body" not in listed[0]


def test_list_empty_inbox(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inbox", "list", "--config", str(config_path)]) == 0
    assert capsys.readouterr().out == "no webhooks recorded\n"


def test_list_missing_database_not_created(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inbox", "list", "--config", str(config_path)]) == 1
    assert "no inbox database at" in capsys.readouterr().err
    assert not (config_path.parent / "state" / "inbox.db").exists()


def test_show_prints_metadata_not_body(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook_id = inbox.record_accepted(make_webhook(1, body=b'{"secret": 1}')).id
    assert main(["inbox", "show", "--config", str(config_path), str(webhook_id)]) == 0
    output = capsys.readouterr().out
    fields = dict(line.split(None, 1) for line in output.splitlines()[:8])
    assert fields["id"] == str(webhook_id)
    assert fields["state"] == "pending"
    assert fields["received_at"] == "2023-11-14 22:13:21 UTC"
    assert "content-type: application/json" in output
    assert '"secret"' not in output


def test_show_body_writes_raw_bytes(config_path: Path, inbox: Inbox) -> None:
    body = b'{"status": 0}\n\xff'
    webhook_id = inbox.record_accepted(make_webhook(1, body=body)).id
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hookbouncer",
            "inbox",
            "show",
            "--config",
            str(config_path),
            str(webhook_id),
            "--body",
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == body


def test_show_unknown_id(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inbox", "show", "--config", str(config_path), "77"]) == 1
    assert "no webhook with id 77" in capsys.readouterr().err


def test_redeliver_ids(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    inbox.mark_attempt_failed(webhook_id, "HTTP 500", None)
    assert (
        main(["inbox", "redeliver", "--config", str(config_path), str(webhook_id)]) == 0
    )
    assert "1 webhook(s) pending again" in capsys.readouterr().out
    stored = inbox.get(webhook_id)
    assert stored is not None
    assert stored.state == "pending"
    assert stored.attempts == 0


def test_redeliver_unknown_id_fails(
    config_path: Path, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inbox", "redeliver", "--config", str(config_path), "404"]) == 1
    assert "no webhook with id 404" in capsys.readouterr().err


def test_redeliver_needs_ids_or_dead(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inbox", "redeliver", "--config", str(config_path)]) == 2
    assert "give one or more IDs, or --dead" in capsys.readouterr().err


def test_redeliver_dead_now_delivers(tmp_path: Path) -> None:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        port = server.server_address[1]
        config_path = _write_config(tmp_path, f"http://127.0.0.1:{port}/hooks")
        inbox = open_inbox(load_config(config_path))
        dead = [inbox.record_accepted(make_webhook(n)).id for n in range(3)]
        delivered = inbox.record_accepted(make_webhook(9)).id
        for webhook_id in dead:
            inbox.mark_attempt_failed(webhook_id, "HTTP 500", None)
        inbox.mark_delivered(delivered, 1_700_000_000.0)
        code = main(
            ["inbox", "redeliver", "--config", str(config_path), "--dead", "--now"]
        )
        assert code == 0
        for webhook_id in dead:
            stored = inbox.get(webhook_id)
            assert stored is not None
            assert stored.state == "delivered"
        assert sorted(received) == sorted(make_webhook(n).body for n in range(3))
        inbox.close()
    finally:
        server.shutdown()
        server.server_close()


def test_installed_command_lists(config_path: Path, inbox: Inbox) -> None:
    inbox.record_accepted(make_webhook(1))
    command = Path(sys.executable).parent / "hookbouncer"
    result = subprocess.run(
        [str(command), "inbox", "list", "--config", str(config_path), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [entry["scan_id"] for entry in json.loads(result.stdout)] == ["scan-1"]


def test_bad_config_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["inbox", "list", "--config", str(missing)]) == 2
    assert "not found" in capsys.readouterr().err
