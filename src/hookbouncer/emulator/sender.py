"""Send webhooks the way Copyleaks does, and forged ones, over HTTPS.

The sender POSTs realistic `completed`, `error`, `creditsChecked`,
`indexed`, new-result and export-completed webhooks with the field names
Copyleaks documents. It presents a self-signed client certificate (or
none), connects from a chosen loopback source address, and can override
the developerPayload, add headers or replace the whole body, so the same
tool produces genuine webhooks and each kind of forgery.

One `Sender` keeps one HTTP client, so successive sends reuse a keep-alive
connection; call `close()` or use it as a context manager.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

STATUS_EVENTS = ("completed", "error", "creditsChecked", "indexed")
EVENTS = (*STATUS_EVENTS, "new-result", "export-completed")
STATUS_CODES = {"completed": 0, "error": 1, "creditsChecked": 2, "indexed": 3}


def webhook_path(event: str, scan_id: str, prefix: str = "/copyleaks") -> str:
    """Return the path Copyleaks would call for `event` on `scan_id`.

    For export-completed, `scan_id` is the export id.
    """
    if event in STATUS_EVENTS:
        return f"{prefix}/{event}/{scan_id}"
    if event == "new-result":
        return f"{prefix}/new-result/{scan_id}"
    if event == "export-completed":
        return f"{prefix}/export/{scan_id}/completed"
    raise ValueError(f"unknown event {event!r}: use one of {', '.join(EVENTS)}")


def _result(index: int) -> dict[str, Any]:
    return {
        "id": f"result-{index}",
        "title": f"Matched source {index}",
        "introduction": "A short excerpt of the matched page.",
        "url": f"https://example.com/source/{index}",
        "matchedWords": 40 + index,
        "score": {
            "identicalWords": 30 + index,
            "minorChangedWords": 5,
            "relatedMeaningWords": 5,
            "aggregatedScore": 12.5,
        },
    }


def _scanned_document(scan_id: str) -> dict[str, Any]:
    return {
        "scanId": scan_id,
        "totalWords": 1200,
        "totalExcluded": 0,
        "credits": 2,
        "expectedCredits": 2,
        "creationTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        "metadata": {
            "finalUrl": None,
            "canonicalUrl": None,
            "publishDate": None,
            "creationDate": None,
            "lastModificationDate": None,
            "author": "Emulator",
            "organization": None,
            "filename": "essay.txt",
        },
    }


def build_payload(
    event: str, scan_id: str, developer_payload: str | None
) -> dict[str, Any]:
    """Return the JSON object Copyleaks sends for `event`.

    `developer_payload` None leaves the field out, as a forgery might.
    """
    payload: dict[str, Any]
    if event == "completed":
        payload = {
            "status": STATUS_CODES[event],
            "scannedDocument": _scanned_document(scan_id),
            "results": {
                "internet": [_result(1), _result(2)],
                "database": [],
                "batch": [],
                "repositories": [],
            },
            "notifications": {"alerts": []},
        }
    elif event == "error":
        payload = {
            "status": STATUS_CODES[event],
            "error": {"code": 25, "message": "Failed to read the submitted file."},
        }
    elif event == "creditsChecked":
        payload = {
            "status": STATUS_CODES[event],
            "credits": 2,
            "scannedDocument": _scanned_document(scan_id),
        }
    elif event == "indexed":
        payload = {"status": STATUS_CODES[event]}
    elif event == "new-result":
        payload = {
            "score": {"aggregatedScore": 12.5},
            "internet": [_result(1)],
            "database": [],
            "batch": [],
            "repositories": [],
        }
    elif event == "export-completed":
        payload = {
            "completed": True,
            "tasks": [
                {
                    "endpoint": "https://example.com/export/result",
                    "isHealthy": True,
                    "httpStatusCode": 200,
                }
            ],
        }
    else:
        raise ValueError(f"unknown event {event!r}: use one of {', '.join(EVENTS)}")
    if developer_payload is not None:
        payload["developerPayload"] = developer_payload
    return payload


def client_ssl_context(
    server_certificate: Path | None,
    client_certificate: Path | None = None,
    client_key: Path | None = None,
) -> ssl.SSLContext:
    """Build a client context that trusts `server_certificate` alone.

    The gateway's certificate is self-signed in tests and the demo, so it
    is loaded as the only CA; None trusts the system store instead.
    """
    if server_certificate is not None:
        context = ssl.create_default_context(cafile=str(server_certificate))
    else:
        context = ssl.create_default_context()
    if client_certificate is not None:
        context.load_cert_chain(str(client_certificate), str(client_key or ""))
    return context


class Sender:
    """POST webhooks to one gateway from one source address."""

    def __init__(
        self,
        base_url: str,
        *,
        server_certificate: Path | None = None,
        client_certificate: Path | None = None,
        client_key: Path | None = None,
        source: str | None = None,
        prefix: str = "/copyleaks",
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.prefix = prefix
        context: ssl.SSLContext | bool = True
        if self.base_url.startswith("https:"):
            context = client_ssl_context(
                server_certificate, client_certificate, client_key
            )
        transport = httpx.HTTPTransport(verify=context, local_address=source)
        self.client = httpx.Client(transport=transport, timeout=timeout)

    def send(
        self,
        event: str,
        scan_id: str,
        *,
        developer_payload: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        method: str = "POST",
        path: str | None = None,
    ) -> httpx.Response:
        """Send one webhook and return the gateway's response.

        `body` replaces the generated JSON (for duplicate-key or oversized
        forgeries); `path` replaces the generated path.
        """
        if body is None:
            payload = build_payload(event, scan_id, developer_payload)
            body = json.dumps(payload).encode("utf-8")
        url = self.base_url + (path or webhook_path(event, scan_id, self.prefix))
        request_headers = [("content-type", "application/json"), *headers]
        return self.client.request(method, url, content=body, headers=request_headers)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
