"""Copyleaks login: get a bearer token for the feed requests and cache it.

`POST {login.url}` with `{"email": ..., "key": ...}` returns
`{"access_token": ..., ".expires": ...}`; Copyleaks documents the token as
valid for 48 hours. The token is kept in memory and, when a cache file is
given, in that file with mode 0600 so that `hookbouncer sync` runs and the
gateway share one login. It is renewed `RENEW_BEFORE` seconds before it
expires, or at half its life when it lives shorter than twice that.
Neither the key nor the token is ever logged or put in a message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from hookbouncer.config import LoginConfig
from hookbouncer.feeds.model import FeedUpdateError

log = logging.getLogger("hookbouncer.feeds")

DEFAULT_LIFETIME = 48 * 3600.0
RENEW_BEFORE = 3600.0
# A login response is a small JSON object; anything longer is cut off here.
MAX_LOGIN_RESPONSE_BYTES = 64 * 1024


class LoginError(FeedUpdateError):
    """Login failed; `transient` is True when a retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__("login", message)
        self.transient = transient


class TokenSource:
    """A bearer token that is fetched on first use and renewed before expiry."""

    def __init__(
        self,
        login: LoginConfig,
        client: httpx.Client,
        *,
        clock: Callable[[], float] = time.time,
        cache_file: Path | None = None,
    ) -> None:
        self.login = login
        self.client = client
        self.clock = clock
        self.cache_file = cache_file
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued_at = 0.0
        self._expires_at = 0.0
        self._account = hashlib.sha256(
            f"{login.email}\n{login.url}".encode()
        ).hexdigest()

    def __repr__(self) -> str:
        return f"TokenSource(email={self.login.email!r}, url={self.login.url!r})"

    def token(self) -> str:
        """Return a token valid for at least `RENEW_BEFORE` more seconds."""
        with self._lock:
            if self._token is None or not self._fresh():
                self._load_cache()
            if self._token is None or not self._fresh():
                self._issued_at = self.clock()
                self._token, self._expires_at = self._request()
                self._save_cache()
            return self._token

    def invalidate(self) -> None:
        """Forget the token, so the next `token()` logs in again."""
        with self._lock:
            self._token = None
            self._issued_at = self._expires_at = 0.0
            if self.cache_file is not None:
                self.cache_file.unlink(missing_ok=True)

    def _fresh(self) -> bool:
        # A token that lives shorter than 2 * RENEW_BEFORE is renewed at
        # half its life, so it is never renewed on every request.
        lifetime = self._expires_at - self._issued_at
        margin = min(RENEW_BEFORE, lifetime / 2)
        return self._expires_at - self.clock() > margin

    def _request(self) -> tuple[str, float]:
        url = self.login.url
        payload = {
            "email": self.login.email,
            "key": self.login.api_key.reveal().decode("utf-8"),
        }
        try:
            with self.client.stream("POST", url, json=payload) as response:
                status = response.status_code
                body = _read_limited(response, MAX_LOGIN_RESPONSE_BYTES)
        except httpx.HTTPError as error:
            raise LoginError(
                f"login at {url} failed ({type(error).__name__})", transient=True
            ) from None

        if status != 200:
            raise LoginError(
                f"login at {url} returned status {status}: check"
                " feeds.login.email and the API key",
                transient=status >= 500 or status == 429,
            )
        issued = self.clock()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            document = {}
        token = document.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise LoginError(
                f"login at {url} returned no access_token", transient=False
            )

        expires_at = _parse_expiry(document.get(".expires"), issued)
        log.info(
            "logged in to %s; token valid for %.1fh",
            url,
            (expires_at - issued) / 3600,
            extra={"login_url": url},
        )
        return token, expires_at

    def _load_cache(self) -> None:
        if self.cache_file is None:
            return
        try:
            cached = json.loads(self.cache_file.read_text("utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(cached, dict) or cached.get("account") != self._account:
            return
        token = cached.get("access_token")
        issued_at = cached.get("issued_at")
        expires_at = cached.get("expires_at")
        if (
            isinstance(token, str)
            and isinstance(issued_at, (int, float))
            and isinstance(expires_at, (int, float))
        ):
            self._token = token
            self._issued_at = float(issued_at)
            self._expires_at = float(expires_at)

    def _save_cache(self) -> None:
        if self.cache_file is None or self._token is None:
            return
        document = {
            "account": self._account,
            "access_token": self._token,
            "issued_at": self._issued_at,
            "expires_at": self._expires_at,
        }
        temporary = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}")
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.unlink(missing_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.cache_file)
        except OSError as error:
            # The in-memory token still works; only sharing is lost.
            log.warning(
                "could not cache the login token in %s: %s",
                self.cache_file,
                error.strerror,
            )


def _parse_expiry(value: Any, issued: float) -> float:
    """Return the expiry time, assuming the documented 48 h if unreadable."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        # .NET writes seven fractional digits; datetime accepts up to six.
        head, dot, rest = text.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = head + "." + rest[: min(digits, 6)] + rest[digits:]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            expires = moment.timestamp()
            if issued < expires <= issued + 7 * 86400:
                return expires
    return issued + DEFAULT_LIFETIME


def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        received += len(chunk)
        if received > limit:
            break
    return b"".join(chunks)[:limit]
