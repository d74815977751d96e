"""Copyleaks submission `properties` that route webhooks to hookbouncer.

The dict returned by `submission_properties` has the shape the official
`copyleaks` SDK (5.1.0) serialises from `ScanProperties` and
`SubmitWebhooks`, so it can be merged into a submission made with or
without the SDK. Header values here often carry secrets: the caller sends
them to Copyleaks and must not log them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from hookbouncer.routes import is_valid_id
from hookbouncer.tokens import MAX_TOKEN_CHARS

STATUS_PLACEHOLDER = "{STATUS}"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def webhook_urls(
    base_url: str, scan_id: str, prefix: str = "/copyleaks"
) -> tuple[str, str]:
    """Build the status and new-result webhook URLs for one scan.

    `base_url` is the gateway's public origin such as
    `https://hooks.example.com`; `prefix` is `server.prefix`. The status
    URL keeps Copyleaks' `{STATUS}` placeholder.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"base URL {base_url!r} is invalid: use https://HOST")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(
            f"base URL {base_url!r} is invalid: give only the origin and put the"
            " path in the prefix"
        )
    if not is_valid_id(scan_id):
        raise ValueError(
            f"scan id {scan_id!r} is invalid: use letters, digits, '-', '_' and"
            " '.', at most 100 characters"
        )
    origin = f"{parts.scheme}://{parts.netloc}{prefix}"
    return (
        f"{origin}/{STATUS_PLACEHOLDER}/{scan_id}",
        f"{origin}/new-result/{scan_id}",
    )


def submission_properties(
    *,
    status_url: str,
    new_result_url: str | None = None,
    developer_payload: str | None = None,
    status_headers: Sequence[tuple[str, str]] = (),
    new_result_headers: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Build the `properties` part of a Copyleaks submission.

    Raise `ValueError` for a status URL without `{STATUS}`, a
    developerPayload that is empty or over 512 characters, or a header
    that is not a valid name and single-line value.
    """
    if STATUS_PLACEHOLDER not in status_url.replace("{status}", STATUS_PLACEHOLDER):
        raise ValueError(
            f"status URL {status_url!r} is invalid: it must contain {{STATUS}},"
            " which Copyleaks replaces with the event name"
        )
    for url in (status_url, new_result_url):
        if url is not None and urlsplit(url).scheme not in {"http", "https"}:
            raise ValueError(f"webhook URL {url!r} is invalid: use https://")
    webhooks: dict[str, Any] = {"status": status_url}
    if new_result_url is not None:
        webhooks["newResult"] = new_result_url
    if status_headers:
        webhooks["statusHeaders"] = _header_pairs(status_headers)
    if new_result_headers:
        webhooks["newResultHeaders"] = _header_pairs(new_result_headers)
    properties: dict[str, Any] = {"webhooks": webhooks}
    if developer_payload is not None:
        if not developer_payload or len(developer_payload) > MAX_TOKEN_CHARS:
            raise ValueError(
                f"developerPayload has {len(developer_payload)} characters:"
                f" Copyleaks accepts 1 to {MAX_TOKEN_CHARS}"
            )
        properties["developerPayload"] = developer_payload
    return properties


def _header_pairs(headers: Sequence[tuple[str, str]]) -> list[list[str]]:
    pairs: list[list[str]] = []
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is invalid: use an HTTP token")
        if any(char in value for char in "\r\n\x00"):
            # The value is not echoed: it is usually a secret.
            raise ValueError(f"header {name} has a line break or NUL in its value")
        pairs.append([name, value])
    return pairs
