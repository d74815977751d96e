"""End to end through `hookbouncer serve`: real TLS, real sockets, real inbox.

One gateway process serves the whole module. Each test sends genuine or
forged webhooks with the emulator's sender and reads the outcome from the
response, the inbox and the rejection records.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hookbouncer.inbox import Inbox, open_inbox_url
from tests.gateway.support import (
    EXPORT_SECRET,
    PKI,
    GatewayProcess,
    base_config,
    free_port,
    make_pki,
    read_until_closed,
    tls_socket,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def gateway(
    pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("serve")
    port = free_port()
    port6 = free_port("::1")
    admin_port = free_port()
    document = base_config(
        pki, directory / "state", listen=[f"127.0.0.1:{port}", f"[::1]:{port6}"]
    )
    document["admin"]["listen"] = f"127.0.0.1:{admin_port}"
    config = write_config(directory / "config.toml", document)
    process = GatewayProcess(config, admin_port, directory / "serve.log")
    process.port = port  # type: ignore[attr-defined]
    process.port6 = port6  # type: ignore[attr-defined]
    process.state_dir = directory / "state"  # type: ignore[attr-defined]
    try:
        yield process.start()
    finally:
        process.kill()


@pytest.fixture(scope="module")
def inbox(gateway: GatewayProcess) -> Iterator[Inbox]:
    state_dir: Path = gateway.state_dir  # type: ignore[attr-defined]
    opened = open_inbox_url(f"sqlite:///{state_dir / 'inbox.db'}")
    try:
        yield opened
    finally:
        opened.close()


def url(gateway: GatewayProcess, host: str = "127.0.0.1") -> str:
    if host == "::1":
        return f"https://[::1]:{gateway.port6}"  # type: ignore[attr-defined]
    return f"https://{host}:{gateway.port}"  # type: ignore[attr-defined]


def last_rejection_id(inbox: Inbox) -> int:
    newest = inbox.list_rejections(limit=1)
    return newest[0].id if newest else 0


def rejection_reasons(inbox: Inbox, client: str, after: int) -> tuple[str, ...]:
    """Wait for a rejection from `client` newer than `after`; return its reasons."""

    def newest() -> tuple[str, ...]:
        for rejection in inbox.list_rejections(limit=20):
            if rejection.client_address == client and rejection.id > after:
                return rejection.reasons
        return ()

    reasons: tuple[str, ...] = wait_for(newest)
    return reasons


def stored_scan_ids(inbox: Inbox) -> list[str]:
    return [webhook.scan_id for webhook in inbox.list(limit=500)]


@pytest.mark.parametrize(
    "event", ["completed", "error", "creditsChecked", "indexed", "new-result"]
)
def test_genuine_webhook_recorded(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox, event: str
) -> None:
    scan_id = f"genuine-{event}"
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send(event, scan_id, developer_payload=pki.seal(scan_id))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    stored = [w for w in inbox.list(limit=500) if w.scan_id == scan_id]
    assert len(stored) == 1
    assert stored[0].client_address == "127.0.0.1"
    assert stored[0].thumbprint is not None


def test_genuine_webhook_over_ipv6(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    with pki.sender(url(gateway, "::1"), certificate=pki.client) as sender:
        response = sender.send(
            "indexed", "over-v6", developer_payload=pki.seal("over-v6")
        )
    assert response.status_code == 200
    assert "over-v6" in stored_scan_ids(inbox)


def test_repeated_delivery_stored_once(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    token = pki.seal("repeated")
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        first = sender.send("completed", "repeated", developer_payload=token, body=None)
        body = first.request.content
        second = sender.send("completed", "repeated", body=body)
    assert first.status_code == 200
    assert second.status_code == 200
    assert stored_scan_ids(inbox).count("repeated") == 1


def test_wrong_source_address_rejected(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    sender = pki.sender(url(gateway), certificate=pki.client, source="127.0.0.2")
    with sender:
        response = sender.send(
            "completed", "from-2", developer_payload=pki.seal("from-2")
        )
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden"}
    assert rejection_reasons(inbox, "127.0.0.2", mark) == ("not_in_allowlist",)
    assert "from-2" not in stored_scan_ids(inbox)


def test_spoofed_forwarded_for_ignored(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    sender = pki.sender(url(gateway), certificate=pki.client, source="127.0.0.3")
    with sender:
        response = sender.send(
            "completed",
            "spoofed-xff",
            developer_payload=pki.seal("spoofed-xff"),
            headers=[("X-Forwarded-For", "127.0.0.1"), ("Forwarded", "for=127.0.0.1")],
        )
    assert response.status_code == 403
    assert rejection_reasons(inbox, "127.0.0.3", mark) == ("not_in_allowlist",)


def test_missing_certificate_rejected(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    with pki.sender(url(gateway, "::1"), certificate=None) as sender:
        response = sender.send(
            "indexed", "no-cert", developer_payload=pki.seal("no-cert")
        )
    assert response.status_code == 403
    assert rejection_reasons(inbox, "::1", mark) == ("certificate_missing",)


def test_unpinned_certificate_rejected(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    sender = pki.sender(url(gateway, "::1"), certificate=pki.unpinned)
    with sender:
        response = sender.send(
            "indexed", "unpinned", developer_payload=pki.seal("unpinned")
        )
    assert response.status_code == 403
    assert rejection_reasons(inbox, "::1", mark) == ("certificate_not_pinned",)
    recorded = next(r for r in inbox.list_rejections(limit=5) if r.id > mark)
    assert recorded.thumbprint == pki.unpinned.sha1.lower()


def test_wrong_developer_payload_rejected(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("completed", "bad-token", developer_payload="hb1.forged")
    assert response.status_code == 403
    assert rejection_reasons(inbox, "127.0.0.1", mark) == ("token_malformed",)


def test_token_for_another_scan_rejected(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send(
            "completed", "scan-b", developer_payload=pki.seal("scan-a")
        )
    assert response.status_code == 403
    assert rejection_reasons(inbox, "127.0.0.1", mark) == ("token_wrong_scan",)
    assert "scan-b" not in stored_scan_ids(inbox)


def test_duplicate_keys_answered_400(gateway: GatewayProcess, pki: PKI) -> None:
    token = json.dumps(pki.seal("dup-keys"))
    body = f'{{"status": 0, "developerPayload": {token}, "status": 1}}'.encode()
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("completed", "dup-keys", body=body)
    assert response.status_code == 400


def test_not_json_answered_400(gateway: GatewayProcess, pki: PKI) -> None:
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("completed", "not-json", body=b"status=0")
    assert response.status_code == 400


def test_oversized_body_answered_413(gateway: GatewayProcess, pki: PKI) -> None:
    body = b'{"pad": "' + b"x" * 70_000 + b'"}'
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("completed", "too-big", body=body)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


def test_oversized_length_answered_before_body(
    gateway: GatewayProcess, pki: PKI
) -> None:
    # The header block claims 10 MB and only 10 bytes follow: a 413 that
    # arrives anyway proves the gateway did not wait for the body.
    with tls_socket(pki, gateway.port, pki.client) as sock:  # type: ignore[attr-defined]
        sock.sendall(
            b"POST /copyleaks/completed/big HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
            b"0123456789"
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_chunked_body_cut_at_limit(gateway: GatewayProcess, pki: PKI) -> None:
    with tls_socket(pki, gateway.port, pki.client) as sock:  # type: ignore[attr-defined]
        sock.sendall(
            b"POST /copyleaks/completed/chunked HTTP/1.1\r\nHost: localhost\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 16384
        for _ in range(5):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_wrong_method_answered_405(gateway: GatewayProcess, pki: PKI) -> None:
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("completed", "get", method="GET")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_unknown_path_answered_404(gateway: GatewayProcess, pki: PKI) -> None:
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("completed", "x", path="/copyleaks/finished/x")
    assert response.status_code == 404


def test_event_case_ignored(gateway: GatewayProcess, pki: PKI, inbox: Inbox) -> None:
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send(
            "creditsChecked",
            "lower-case",
            developer_payload=pki.seal("lower-case"),
            path="/copyleaks/creditschecked/lower-case",
        )
    assert response.status_code == 200
    assert "lower-case" in stored_scan_ids(inbox)


def test_export_with_header_secret_accepted(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send(
            "export-completed",
            "export-7",
            headers=[("Authorization", f"Bearer {EXPORT_SECRET}")],
        )
    assert response.status_code == 200
    assert "export-7" in stored_scan_ids(inbox)


def test_export_without_header_secret_rejected(
    gateway: GatewayProcess, pki: PKI, inbox: Inbox
) -> None:
    mark = last_rejection_id(inbox)
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        response = sender.send("export-completed", "export-8")
    assert response.status_code == 403
    assert rejection_reasons(inbox, "127.0.0.1", mark) == ("header_missing",)


def test_tls_1_2_client_accepted(gateway: GatewayProcess, pki: PKI) -> None:
    context = ssl.create_default_context(cafile=str(pki.server.certificate))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(pki.client.certificate), str(pki.client.private_key))
    response = httpx.post(
        f"{url(gateway)}/copyleaks/indexed/tls12",
        json={"status": 3, "developerPayload": pki.seal("tls12")},
        verify=context,
    )
    assert response.status_code == 200


def test_readyz_reports_ready(gateway: GatewayProcess) -> None:
    response = gateway.admin("/readyz")
    assert response.status_code == 200
    document = response.json()
    assert document["ready"] is True
    assert document["failed"] == []


def test_healthz_alive(gateway: GatewayProcess) -> None:
    assert gateway.admin("/healthz").status_code == 200


def test_metrics_count_requests(gateway: GatewayProcess, pki: PKI) -> None:
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        sender.send("indexed", "metrics", developer_payload=pki.seal("metrics"))
    text = gateway.admin("/metrics").text
    assert 'hookbouncer_requests_total{decision="accepted",route="status"}' in text
    assert "hookbouncer_feed_ranges 2.0" in text
    assert "hookbouncer_feed_pins 1.0" in text
    assert "hookbouncer_inbox_pending" in text
    assert "hookbouncer_request_duration_seconds_bucket" in text


def test_access_log_hides_token(gateway: GatewayProcess, pki: PKI) -> None:
    token = pki.seal("log-check")
    with pki.sender(url(gateway), certificate=pki.client) as sender:
        sender.send("indexed", "log-check", developer_payload=token)
    log = gateway.log()
    assert token not in log
    assert "hookbouncer.access" in log
