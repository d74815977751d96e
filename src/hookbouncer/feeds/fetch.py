"""Fetch one feed over HTTPS with limits, retries and conditional requests.

The fetcher returns a `FetchResult` only for a complete 200 or 304
response from an HTTPS URL whose certificate verified. Everything else
raises `FeedUpdateError`: a redirect (unless `feeds.follow_redirects`),
any other status, a body larger than `feeds.max_response_bytes`, a body
shorter than its Content-Length, a timeout, a TLS or network error.
Network errors, timeouts, 408, 429 and 5xx are retried with exponential
backoff and jitter. The caller validates the body.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from hookbouncer.config import FeedsConfig
from hookbouncer.feeds.login import LoginError, TokenSource
from hookbouncer.feeds.model import FailureReason, FeedUpdateError, FetchResult
from hookbouncer.feeds.parse import preview, summarize_response

log = logging.getLogger("hookbouncer.feeds")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "hookbouncer-feeds"


@dataclass(frozen=True)
class Validators:
    """The ETag and Last-Modified of the list in force, for a 304."""

    etag: str | None = None
    last_modified: str | None = None


def ssl_context(feeds: FeedsConfig) -> ssl.SSLContext:
    """Build the client TLS context: `feeds.ca_bundle`, or the system CAs.

    Raise `OSError` or `ssl.SSLError` when the bundle cannot be loaded.
    """
    if feeds.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(feeds.ca_bundle))
    return ssl.create_default_context()


def build_client(
    feeds: FeedsConfig,
    context: ssl.SSLContext,
    transport: httpx.BaseTransport | None = None,
    environ: Mapping[str, str] = os.environ,
) -> httpx.Client:
    """Create the HTTPS client with the given TLS context, timeouts and hooks.

    The client ignores the environment (`trust_env=False`), so `.netrc`
    credentials and `SSL_CERT_FILE` never change what is trusted, except
    that an `HTTPS_PROXY` URL is used as the proxy. The TLS session runs
    through the proxy's tunnel and is verified as usual.
    """
    proxy = environ.get("HTTPS_PROXY") or environ.get("https_proxy") or None
    return httpx.Client(
        verify=context,
        transport=transport,
        proxy=proxy,
        timeout=httpx.Timeout(
            connect=feeds.connect_timeout,
            read=feeds.read_timeout,
            write=feeds.read_timeout,
            pool=feeds.connect_timeout,
        ),
        follow_redirects=feeds.follow_redirects,
        max_redirects=5,
        # Identity encoding keeps a small compressed body from expanding
        # far past max_response_bytes inside one decoded chunk.
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        },
        event_hooks={"request": [_require_https]},
        trust_env=False,
    )


def _require_https(request: httpx.Request) -> None:
    # Runs for every redirect hop too, so a redirect cannot downgrade.
    if request.url.scheme != "https":
        raise FeedUpdateError(
            "insecure_url",
            f"plain HTTP request to {request.url} rejected: feeds are"
            " fetched over HTTPS only",
        )


class Fetcher:
    """Fetch feed URLs with retries; one instance per manager."""

    def __init__(
        self,
        feeds: FeedsConfig,
        client: httpx.Client,
        tokens: TokenSource | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.feeds = feeds
        self.client = client
        self.tokens = tokens
        self.sleep = sleep
        self.monotonic = monotonic
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not secrecy)

    def fetch(self, feed: str, url: str, validators: Validators) -> FetchResult:
        """Fetch `url`, retrying transient failures, or raise the last error."""
        if not url.startswith("https://"):
            raise FeedUpdateError(
                "insecure_url",
                f"plain HTTP URL {url} rejected: set an https:// URL in feeds.api_base",
            )
        attempts = self.feeds.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(url, validators)
            except _Transient as transient:
                error = transient.error
                if attempt == attempts:
                    raise error from None
                delay = self.backoff(attempt, transient.retry_after)
                log.warning(
                    "feed %s attempt %d of %d failed (%s); retrying in %.1fs",
                    feed,
                    attempt,
                    attempts,
                    error.message,
                    delay,
                    extra={
                        "feed": feed,
                        "attempt": attempt,
                        "next_delay": delay,
                        "reason": error.reason,
                    },
                )
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the delay before retry `attempt`: exponential, jittered.

        The delay is drawn between half and all of
        `backoff_initial * 2 ** (attempt - 1)`, capped at `backoff_max`. A
        Retry-After from the server lengthens it, up to `backoff_max`.
        """
        growth: float = 2.0 ** (attempt - 1)
        ceiling = min(self.feeds.backoff_max, self.feeds.backoff_initial * growth)
        delay = ceiling / 2 + self.rng.random() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.feeds.backoff_max))
        return delay

    def _attempt(self, url: str, validators: Validators) -> FetchResult:
        try:
            return self._attempt_once(url, validators)
        except LoginError as error:
            if error.transient:
                raise _Transient(error) from None
            raise

    def _attempt_once(self, url: str, validators: Validators) -> FetchResult:
        headers = self._headers(validators)
        try:
            result = self._get(url, headers)
        except _Unauthorized:
            if self.tokens is None:
                raise FeedUpdateError(
                    "http_status",
                    f"{url} returned 401 Unauthorized: configure feeds.login",
                ) from None
            # The cached token may have been revoked: log in again once.
            self.tokens.invalidate()
            headers = self._headers(validators)
            try:
                result = self._get(url, headers)
            except _Unauthorized:
                raise FeedUpdateError(
                    "http_status",
                    f"{url} returned 401 Unauthorized with a fresh login token",
                ) from None
        return result

    def _headers(self, validators: Validators) -> dict[str, str]:
        headers: dict[str, str] = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        if self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens.token()}"
        return headers

    def _get(self, url: str, headers: dict[str, str]) -> FetchResult:
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                return self._read(url, response)
        except FeedUpdateError:
            raise
        except httpx.TimeoutException as error:
            raise _Transient(
                FeedUpdateError("timeout", f"{url} timed out ({_name(error)})")
            ) from None
        except httpx.TooManyRedirects:
            raise FeedUpdateError(
                "redirect", f"{url} redirected too many times"
            ) from None
        except httpx.RemoteProtocolError as error:
            raise _Transient(
                FeedUpdateError(
                    "truncated", f"{url} sent an incomplete response ({error})"
                )
            ) from None
        except httpx.ConnectError as error:
            reason: FailureReason = "tls" if _is_tls(error) else "network"
            raise _Transient(
                FeedUpdateError(reason, f"connecting to {url} failed ({error})")
            ) from None
        except httpx.HTTPError as error:
            raise _Transient(
                FeedUpdateError("network", f"fetching {url} failed ({error})")
            ) from None

    def _read(self, url: str, response: httpx.Response) -> FetchResult:
        status = response.status_code
        content_type = response.headers.get("Content-Type", "")
        if status == 401:
            raise _Unauthorized()
        if 300 <= status < 400 and status != 304:
            location = response.headers.get("Location", "no Location header")
            location_text = preview(location.encode("utf-8", "replace"), 200)
            raise FeedUpdateError(
                "redirect",
                f"{url} redirected ({status}) to {location_text}: redirects"
                " are failures unless feeds.follow_redirects is true",
            )
        if status not in (200, 304):
            body = self._read_body(url, response, limit=256, strict=False)
            error = FeedUpdateError(
                "http_status",
                f"{url} returned {summarize_response(status, content_type, body)}",
            )
            if status in RETRY_STATUSES:
                raise _Transient(error, _retry_after(response))
            raise error
        body = b"" if status == 304 else self._read_body(url, response)
        return FetchResult(
            url=str(response.url),
            status=status,
            body=body,
            content_type=content_type,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )

    def _read_body(
        self,
        url: str,
        response: httpx.Response,
        limit: int | None = None,
        strict: bool = True,
    ) -> bytes:
        """Read the body, counting decoded bytes against the size limit.

        `feeds.read_timeout` bounds each read and also the whole body, so
        a server that drips a byte at a time cannot hold a refresh open.
        """
        maximum = self.feeds.max_response_bytes if limit is None else limit
        declared = _content_length(response)
        if strict and declared is not None and declared > maximum:
            raise FeedUpdateError(
                "too_large",
                f"{url} declares {declared} bytes, over feeds.max_response_bytes"
                f" ({maximum})",
            )
        deadline = self.monotonic() + self.feeds.read_timeout
        chunks: list[bytes] = []
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            chunks.append(chunk)
            if received > maximum:
                if not strict:
                    break
                raise FeedUpdateError(
                    "too_large",
                    f"{url} sent more than feeds.max_response_bytes ({maximum})",
                )
            if self.monotonic() > deadline:
                raise _Transient(
                    FeedUpdateError(
                        "timeout",
                        f"{url} body took longer than feeds.read_timeout"
                        f" ({self.feeds.read_timeout:g}s)",
                    )
                )
        body = b"".join(chunks)
        identity = response.headers.get("Content-Encoding", "identity") == "identity"
        if strict and identity and declared is not None and declared != len(body):
            raise _Transient(
                FeedUpdateError(
                    "truncated",
                    f"{url} sent {len(body)} bytes but declared {declared}",
                )
            )
        return body[:maximum]


class _Transient(Exception):
    """A failure worth retrying, wrapping the error to raise at the end."""

    def __init__(self, error: FeedUpdateError, retry_after: float | None = None):
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class _Unauthorized(Exception):
    pass


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    if not value.isdigit():
        raise FeedUpdateError(
            "truncated", f"invalid Content-Length header {value[:40]!r}"
        )
    return int(value)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _is_tls(error: Exception) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(error) or "certificate" in str(error)


def _name(error: Exception) -> str:
    return type(error).__name__
