"""Submission properties match what the official copyleaks SDK sends."""

import json

import pytest
from copyleaks.models.submit.properties.scan_properties import ScanProperties
from copyleaks.models.submit.properties.submit_webhooks import SubmitWebhooks

from hookbouncer.submission import submission_properties, webhook_urls


def sdk_dict(properties: ScanProperties) -> dict[str, object]:
    # The SDK serialises models with json.dumps(default=lambda o: o.__dict__).
    return json.loads(json.dumps(properties, default=lambda o: o.__dict__))


def test_properties_match_sdk() -> None:
    status_url, new_result_url = webhook_urls("https://hooks.example.com", "scan-1")
    headers = [("Authorization", "Bearer abc"), ("X-Tenant", "t1")]
    ours = submission_properties(
        status_url=status_url,
        new_result_url=new_result_url,
        developer_payload="hb1.token",
        status_headers=headers,
        new_result_headers=headers[:1],
    )
    sdk = ScanProperties(status_url)
    webhooks = SubmitWebhooks()
    webhooks.set_status(status_url)
    webhooks.set_new_result(new_result_url)
    webhooks.set_status_headers([list(pair) for pair in headers])
    webhooks.set_new_result_headers([list(headers[0])])
    sdk.set_webhooks(webhooks)
    sdk.set_developer_payload("hb1.token")
    assert ours == sdk_dict(sdk)


def test_minimal_properties_match_sdk() -> None:
    url = "https://hooks.example.com/copyleaks/{STATUS}/s"
    assert submission_properties(status_url=url) == sdk_dict(ScanProperties(url))


def test_webhook_urls() -> None:
    status_url, new_result_url = webhook_urls(
        "https://hooks.example.com:8443", "scan-1", "/hooks"
    )
    assert status_url == "https://hooks.example.com:8443/hooks/{STATUS}/scan-1"
    assert new_result_url == "https://hooks.example.com:8443/hooks/new-result/scan-1"


@pytest.mark.parametrize(
    ("base", "scan_id"),
    [
        ("hooks.example.com", "s"),
        ("ftp://hooks.example.com", "s"),
        ("https://hooks.example.com/path", "s"),
        ("https://hooks.example.com?x=1", "s"),
        ("https://hooks.example.com", "a/b"),
        ("https://hooks.example.com", ""),
    ],
)
def test_webhook_urls_invalid(base: str, scan_id: str) -> None:
    with pytest.raises(ValueError):
        webhook_urls(base, scan_id)


@pytest.mark.parametrize(
    "changes",
    [
        {"status_url": "https://h/copyleaks/completed/s"},
        {"new_result_url": "javascript:alert(1)"},
        {"developer_payload": ""},
        {"developer_payload": "x" * 513},
        {"status_headers": [("Bad Name", "v")]},
        {"status_headers": [("X-Ok", "line\r\nInjected: 1")]},
    ],
)
def test_submission_properties_invalid(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {"status_url": "https://h/c/{STATUS}/s", **changes}
    with pytest.raises(ValueError):
        submission_properties(**arguments)  # type: ignore[arg-type]


def test_lowercase_status_placeholder_accepted() -> None:
    url = "https://h/c/{status}/s"
    assert submission_properties(status_url=url)["webhooks"]["status"] == url
