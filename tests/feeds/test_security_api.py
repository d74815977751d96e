"""The emulator's security API as a client sees it over real TLS."""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hookbouncer.config import Config
from hookbouncer.emulator.security_api import PATHS, SecurityAPI
from hookbouncer.feeds.manager import FeedManager


def client(api: SecurityAPI) -> httpx.Client:
    context = ssl.create_default_context(cadata=api.ca_pem.decode())
    return httpx.Client(verify=context, base_url=api.url)


def test_feed_answers_304_for_matching_etag(api: SecurityAPI) -> None:
    with client(api) as http:
        first = http.get(PATHS["ranges"])
        again = http.get(
            PATHS["ranges"], headers={"If-None-Match": first.headers["ETag"]}
        )
    assert first.status_code == 200
    assert first.json() == ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]
    assert again.status_code == 304
    assert again.content == b""


def test_failure_with_times_recovers_by_itself(api: SecurityAPI) -> None:
    api.fail("thumbprints", "error", times=2)
    with client(api) as http:
        statuses = [http.get(PATHS["thumbprints"]).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_unknown_failure_is_rejected(api: SecurityAPI) -> None:
    with pytest.raises(ValueError, match="unknown failure"):
        api.fail("ranges", "explode")  # type: ignore[arg-type]


def test_login_rejects_wrong_key(api: SecurityAPI) -> None:
    api.require_login("ops@example.com", b"right")
    with client(api) as http:
        wrong = http.post(
            "/v3/account/login/api", json={"email": "ops@example.com", "key": "x"}
        )
        right = http.post(
            "/v3/account/login/api", json={"email": "ops@example.com", "key": "right"}
        )
        token = right.json()["access_token"]
        feed = http.get(PATHS["ranges"], headers={"Authorization": f"Bearer {token}"})
        anonymous = http.get(PATHS["ranges"])
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert right.json()[".expires"].endswith("Z")
    assert feed.status_code == 200
    assert anonymous.status_code == 401


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_serves_on_ipv6_loopback(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    try:
        api = SecurityAPI(host="::1").start()
    except OSError:
        pytest.skip("::1 is not configured")
    try:
        api.set_ranges(["2001:db8::/32"])
        api.set_thumbprints(["ab" * 20])
        ca = api.credentials.write_ca(tmp_path / "ca6.pem")
        manager = FeedManager(make_config(api_base=api.url, ca_bundle=ca))
        assert api.url.startswith("https://[::1]:")
        assert manager.refresh().ok
        assert "2001:db8::1" in manager.snapshot().allowlist
        manager.close()
    finally:
        api.stop()


def test_server_certificate_from_trustme(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    import trustme

    from hookbouncer.emulator.tls import ServerCredentials

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    credentials = ServerCredentials(
        ca_pem=ca.cert_pem.bytes(),
        certificate_pem=b"".join(blob.bytes() for blob in leaf.cert_chain_pems),
        private_key_pem=leaf.private_key_pem.bytes(),
    )
    with SecurityAPI(credentials=credentials) as api:
        api.set_ranges(["192.0.2.0/24"])
        api.set_thumbprints(["ab" * 20])
        bundle = tmp_path / "trustme-ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        manager = FeedManager(make_config(api_base=api.url, ca_bundle=bundle))
        assert manager.refresh().ok
        manager.close()


def test_feed_answers_304_for_if_modified_since(api: SecurityAPI) -> None:
    with client(api) as http:
        first = http.get(PATHS["thumbprints"])
        since = first.headers["Last-Modified"]
        again = http.get(PATHS["thumbprints"], headers={"If-Modified-Since": since})
        stale = http.get(
            PATHS["thumbprints"],
            headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
        )
    assert again.status_code == 304
    assert stale.status_code == 200


def test_manager_uses_last_modified_without_etag(
    api: SecurityAPI, make_manager: Callable[..., FeedManager]
) -> None:
    manager = make_manager()
    manager.refresh()
    stored = manager.store.read("ranges")
    assert stored is not None
    path = manager.store.path("ranges")
    path.write_bytes(dataclasses.replace(stored, etag=None).to_json())
    fresh = make_manager()
    fresh.load_from_disk()

    outcome = fresh.refresh()

    assert outcome["ranges"].outcome == "not_modified"
    sent = [r for r in api.requests if r.path == PATHS["ranges"]][-1]
    assert "If-None-Match" not in sent.headers
    assert "If-Modified-Since" in sent.headers
