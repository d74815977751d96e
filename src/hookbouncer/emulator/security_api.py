"""The emulator's Copyleaks security API: the two feeds and a login.

A real HTTPS server on loopback, run in a daemon thread. The caller sets
its responses, and it can produce every failure a feed client must survive.
It serves:

- `GET /v1/security/servers/ips`: the sender ranges, a JSON array.
- `GET /v2/security/client-certificates`: the thumbprints, a JSON array.
- `POST /v3/account/login/api`: `{"email", "key"}` returns
  `{"access_token", ".issued", ".expires"}`.

Usage::

    api = SecurityAPI()            # 127.0.0.1, a free port, a fresh CA
    api.start()
    api.set_ranges(["192.0.2.0/24"])
    api.set_thumbprints(["AB12…"])
    api.ca_pem                     # trust this (feeds.ca_bundle)
    api.url                        # https://127.0.0.1:PORT (feeds.api_base)
    api.fail("ranges", "error")    # every failure kind is in FAILURES
    api.fail("both", "hang", times=1)
    api.recover()
    api.require_login("ops@example.com", b"key")
    api.hits("ranges")             # GET requests seen for a feed
    api.stop()

Also: `set_body(feed, body, content_type)` serves exact bytes for shape
tests. `credentials.write_ca(path)` writes the CA bundle. `login_url`,
`revoke_tokens()`, the `logins` count and `token_lifetime` (48 hours)
cover the login. `requests` holds the newest requests seen, and
`slow_delay` sets the pause between bytes of the "slow" failure. The class
is also a context manager that starts and stops the server.

Every 200 carries an ETag and Last-Modified. A request whose
If-None-Match matches, or whose If-Modified-Since is not older than the
contents, gets 304 unless `etags` is False.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Literal, get_args

from hookbouncer.emulator.tls import ServerCredentials, make_server_credentials

Feed = Literal["ranges", "thumbprints"]
Target = Literal["ranges", "thumbprints", "both"]
Failure = Literal[
    "error",  # 500 with a JSON error body
    "unavailable",  # 503 with Retry-After: 1
    "unauthorized",  # 401, as for a revoked token
    "hang",  # accept the request, never respond until released
    "html",  # 200 with a bot-challenge HTML page
    "empty",  # 200 with []
    "zero_prefix",  # the list plus 0.0.0.0/0
    "redirect",  # 302 to another path on this server
    "redirect_http",  # 302 to a plain http:// URL
    "slow",  # the body one byte at a time, `slow_delay` apart
    "huge",  # an endless valid-looking array without Content-Length
    "huge_declared",  # Content-Length far above any sane limit
    "glued",  # two JSON arrays back to back
    "truncated",  # Content-Length larger than the bytes sent
    "invalid_entry",  # the list plus one malformed entry
    "shape",  # a JSON object the parsers do not accept
]
FAILURES: tuple[str, ...] = get_args(Failure)

PATHS: dict[Feed, str] = {
    "ranges": "/v1/security/servers/ips",
    "thumbprints": "/v2/security/client-certificates",
}
LOGIN_PATH = "/v3/account/login/api"
HANG_LIMIT = 120.0
REQUEST_LOG_SIZE = 10_000

CHALLENGE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body>Checking your browser before accessing the site.</body></html>"
)


@dataclass
class _FeedState:
    body: bytes = b"[]"
    content_type: str = "application/json; charset=utf-8"
    entries: list[str] = field(default_factory=list)
    modified: float = field(default_factory=time.time)
    failure: Failure | None = None
    failures_left: int | None = None
    hits: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


class SecurityAPI:
    """The Copyleaks security endpoints on loopback, for tests and the demo."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        credentials: ServerCredentials | None = None,
    ) -> None:
        self.host = host
        self.credentials = credentials or make_server_credentials()
        self.etags = True
        self.slow_delay = 0.2
        self.token_lifetime = timedelta(hours=48)
        # The newest requests, bounded so a long `hookbouncer emulate` run
        # does not grow without limit.
        self.requests: deque[RecordedRequest] = deque(maxlen=REQUEST_LOG_SIZE)
        self._feeds: dict[Feed, _FeedState] = {
            "ranges": _FeedState(),
            "thumbprints": _FeedState(),
        }
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._login: tuple[str, bytes] | None = None
        self._tokens: set[str] = set()
        self.logins = 0
        self._server = _Server(self, (host, port))
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def login_url(self) -> str:
        return self.url + LOGIN_PATH

    @property
    def ca_pem(self) -> bytes:
        return self.credentials.ca_pem

    def start(self) -> SecurityAPI:
        self._release.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="security-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> SecurityAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- contents ----------------------------------------------------------

    def set_ranges(self, entries: list[str]) -> None:
        self._set_entries("ranges", entries)

    def set_thumbprints(self, entries: list[str]) -> None:
        self._set_entries("thumbprints", entries)

    def set_body(
        self, feed: Feed, body: bytes, content_type: str = "application/json"
    ) -> None:
        """Serve exactly `body` for `feed`."""
        with self._lock:
            state = self._feeds[feed]
            state.body = body
            state.content_type = content_type
            state.modified = time.time()

    def _set_entries(self, feed: Feed, entries: list[str]) -> None:
        with self._lock:
            state = self._feeds[feed]
            state.entries = list(entries)
            state.body = json.dumps(entries).encode("utf-8")
            state.content_type = "application/json; charset=utf-8"
            state.modified = time.time()

    def fail(self, target: Target, failure: Failure, times: int | None = None) -> None:
        """Make requests for `target` fail as `failure`, `times` times or always."""
        if failure not in FAILURES:
            raise ValueError(f"unknown failure {failure!r}: use one of {FAILURES}")
        with self._lock:
            for feed in self._targets(target):
                self._feeds[feed].failure = failure
                self._feeds[feed].failures_left = times

    def recover(self, target: Target = "both") -> None:
        """Stop failing, and release any request that hangs."""
        with self._lock:
            for feed in self._targets(target):
                self._feeds[feed].failure = None
        self._release.set()
        self._release = threading.Event()

    def require_login(self, email: str, key: bytes) -> None:
        """Require a bearer token from the login endpoint on feed requests."""
        self._login = (email, key)

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    def hits(self, feed: Feed) -> int:
        return self._feeds[feed].hits

    @staticmethod
    def _targets(target: Target) -> tuple[Feed, ...]:
        return ("ranges", "thumbprints") if target == "both" else (target,)

    # -- request handling, called from server threads ----------------------

    def _take_failure(self, feed: Feed) -> tuple[_FeedState, Failure | None]:
        with self._lock:
            state = self._feeds[feed]
            state.hits += 1
            failure = state.failure
            if failure is not None and state.failures_left is not None:
                state.failures_left -= 1
                if state.failures_left <= 0:
                    state.failure = None
            return state, failure

    def _authorized(self, header: str | None) -> bool:
        if self._login is None:
            return True
        if header is None or not header.startswith("Bearer "):
            return False
        presented = header[len("Bearer ") :].encode()
        return any(
            hmac.compare_digest(presented, token.encode())
            for token in list(self._tokens)
        )

    def _issue_token(self, body: bytes) -> tuple[int, bytes]:
        try:
            document = json.loads(body)
            email, key = document["email"], document["key"]
        except (ValueError, KeyError, TypeError):
            return 400, b'{"error": "email and key are required"}'
        if (
            self._login is None
            or not isinstance(email, str)
            or not isinstance(key, str)
        ):
            return 401, b'{"error": "invalid credentials"}'
        email_ok = hmac.compare_digest(email.encode(), self._login[0].encode())
        key_ok = hmac.compare_digest(key.encode(), self._login[1])
        if not (email_ok and key_ok):
            return 401, b'{"error": "invalid credentials"}'
        token = secrets.token_urlsafe(32)
        self._tokens.add(token)
        self.logins += 1
        issued = datetime.now(UTC)
        answer = {
            "access_token": token,
            ".issued": issued.isoformat().replace("+00:00", "Z"),
            ".expires": (issued + self.token_lifetime)
            .isoformat()
            .replace("+00:00", "Z"),
        }
        return 200, json.dumps(answer).encode()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: SecurityAPI, address: tuple[str, int]) -> None:
        self.api = api
        self.context = api.credentials.server_context()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, peer = super().get_request()
        # The handshake runs in the handler thread, so a stalled client
        # cannot block the accept loop.
        wrapped = self.context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, peer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30.0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        # A client that gives up mid-response is expected in failure modes.
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            super().handle()

    def do_POST(self) -> None:
        api = self.server.api
        self._record()
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit():
            self._send(400, b'{"error": "invalid Content-Length"}')
            return
        body = self.rfile.read(min(int(length_text), 65536))
        if self.path != LOGIN_PATH:
            self._send(404, b'{"error": "not found"}')
            return
        status, answer = api._issue_token(body)
        self._send(status, answer)

    def do_GET(self) -> None:
        api = self.server.api
        self._record()
        feed = next((name for name, path in PATHS.items() if path == self.path), None)
        if feed is None:
            self._send(404, b'{"error": "not found"}')
            return
        state, failure = api._take_failure(feed)
        if not api._authorized(self.headers.get("Authorization")):
            self._send(401, b'{"error": "unauthorized"}')
            return
        if failure is not None:
            self._fail(failure, state)
            return
        etag = '"' + hashlib.sha256(state.body).hexdigest()[:16] + '"'
        modified = formatdate(state.modified, usegmt=True)
        if api.etags and self._not_modified(etag, state.modified):
            self._send(304, b"", etag=etag, modified=modified)
            return
        self._send(200, state.body, state.content_type, etag=etag, modified=modified)

    def _not_modified(self, etag: str, modified: float) -> bool:
        # If-None-Match takes precedence over If-Modified-Since (RFC 9110).
        match = self.headers.get("If-None-Match")
        if match is not None:
            return match == etag
        since = self.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            return int(modified) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False

    def _record(self) -> None:
        self.server.api.requests.append(
            RecordedRequest(self.command, self.path, dict(self.headers.items()))
        )

    def _fail(self, failure: Failure, state: _FeedState) -> None:
        api = self.server.api
        if failure == "error":
            self._send(500, b'{"error": "internal server error"}')
        elif failure == "unavailable":
            self._send(503, b'{"error": "unavailable"}', retry_after="1")
        elif failure == "unauthorized":
            self._send(401, b'{"error": "unauthorized"}')
        elif failure == "hang":
            api._release.wait(HANG_LIMIT)
        elif failure == "html":
            self._send(200, CHALLENGE_PAGE, "text/html; charset=utf-8")
        elif failure == "empty":
            self._send(200, b"[]")
        elif failure == "zero_prefix":
            self._send(200, json.dumps([*state.entries, "0.0.0.0/0"]).encode())
        elif failure == "invalid_entry":
            self._send(200, json.dumps([*state.entries, "10.0.0.1/8"]).encode())
        elif failure == "shape":
            self._send(200, b'{"status": "ok", "count": 2}')
        elif failure == "redirect":
            self._redirect(api.url + "/moved" + self.path)
        elif failure == "redirect_http":
            self._redirect(f"http://127.0.0.1:{api.port}{self.path}")
        elif failure == "glued":
            self._send(200, state.body + state.body)
        elif failure == "truncated":
            self._send_head(200, "application/json", len(state.body) + 100)
            self.wfile.write(state.body)
        elif failure == "slow":
            self._send_head(200, "application/json", len(state.body))
            for byte in state.body:
                if api._release.wait(api.slow_delay):
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif failure == "huge":
            self._send_head(200, "application/json", None)
            self.wfile.write(b"[")
            chunk = b'"192.0.2.0/24",' * 4096
            for _ in range(100_000):
                self.wfile.write(chunk)
        elif failure == "huge_declared":
            self._send_head(200, "application/json", 1 << 40)
            self.wfile.write(b'["192.0.2.0/24"')
        self.close_connection = True

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def _send_head(self, status: int, content_type: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        *,
        etag: str | None = None,
        modified: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        if etag is not None:
            self.send_header("ETag", etag)
        if modified is not None:
            self.send_header("Last-Modified", modified)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Connection", "close")
        self.end_headers()
        if status != 304:
            self.wfile.write(body)
        self.close_connection = True
