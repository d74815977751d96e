"""A gateway killed with SIGKILL loses no webhook it answered 2xx.

Senders post genuine webhooks from several threads while the gateway
process is killed. After a restart on the same state directory, every
webhook that got a 2xx must be in the inbox and delivered by the relay to
a small HTTP application run by the test.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import httpx
import pytest

from hookbouncer.inbox import open_inbox_url
from tests.gateway.support import (
    PKI,
    GatewayProcess,
    Receiver,
    base_config,
    free_port,
    make_pki,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

SENDERS = 4
ACCEPTED_BEFORE_KILL = 40


def send_until_stopped(
    pki: PKI, url: str, name: str, stop: threading.Event, accepted: list[bytes]
) -> None:
    number = 0
    with pki.sender(url, certificate=pki.client) as sender:
        while not stop.is_set():
            number += 1
            scan_id = f"{name}-{number}"
            try:
                response = sender.send(
                    "completed", scan_id, developer_payload=pki.seal(scan_id)
                )
            except httpx.TransportError:
                continue
            if 200 <= response.status_code < 300:
                accepted.append(response.request.content)


def test_sigkill_loses_no_acknowledged_webhook(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    (tmp_path / "relay-secret").write_text(secret + "\n")
    port = free_port()
    admin_port = free_port()
    with Receiver() as receiver:
        document = base_config(pki, tmp_path / "state", listen=[f"127.0.0.1:{port}"])
        document["admin"]["listen"] = f"127.0.0.1:{admin_port}"
        document["relay"] = {
            "url": f"http://127.0.0.1:{receiver.port}/copyleaks",
            "signing_secret_file": tmp_path / "relay-secret",
            # NOTE: a webhook the killed relay had claimed stays hidden for
            # the claim's lease, batch size x timeout + 60 s, so a short
            # timeout keeps this test near one minute.
            "timeout": "0.2s",
            "backoff_initial": "0.1s",
            "backoff_max": "0.5s",
        }
        config = write_config(tmp_path / "config.toml", document)
        first = GatewayProcess(config, admin_port, tmp_path / "first.log")
        second = GatewayProcess(config, admin_port, tmp_path / "second.log")
        stop = threading.Event()
        accepted: list[bytes] = []
        senders = [
            threading.Thread(
                target=send_until_stopped,
                args=(pki, f"https://127.0.0.1:{port}", f"s{i}", stop, accepted),
            )
            for i in range(SENDERS)
        ]
        try:
            first.start()
            for thread in senders:
                thread.start()
            wait_for(lambda: len(accepted) >= ACCEPTED_BEFORE_KILL, attempts=2000)
            first.kill()
            stop.set()
            for thread in senders:
                thread.join()
            second.start()
            acknowledged = set(accepted)
            delivered = wait_for(
                lambda: acknowledged <= set(receiver.bodies()), attempts=3000
            )
        finally:
            stop.set()
            first.kill()
            second.kill()
        inbox = open_inbox_url(f"sqlite:///{tmp_path / 'state' / 'inbox.db'}")
        try:
            stored = {
                webhook.body for webhook in inbox.list(limit=10_000, include_body=True)
            }
        finally:
            inbox.close()
    assert len(acknowledged) >= ACCEPTED_BEFORE_KILL
    assert acknowledged <= stored
    assert delivered
