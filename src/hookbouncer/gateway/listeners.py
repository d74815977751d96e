"""Listening sockets: TCP on IPv4 and IPv6, unix sockets, TLS and PROXY.

TCP sockets are created here and handed to the reactor with
`adoptStreamPort`, because Twisted's `listenTCP` cannot set IPV6_V6ONLY:
without it, on Linux, `[::]:8443` also takes the IPv4 port and the
default `0.0.0.0:8443` entry next to it fails with "address in use".
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory

from hookbouncer.config import parse_listen_address
from hookbouncer.gateway.http import HTTPProtocol
from hookbouncer.gateway.proxy import ProxyProtocolFactory
from hookbouncer.gateway.tls import ServerConnectionCreator

BACKLOG = 1024


class HTTPFactory(Factory):
    """Build one `HTTPProtocol` per connection and track the connected ones.

    A protocol joins `open` when its connection is made, which behind a
    PROXY header is only once the header was read.
    """

    def __init__(self, build: Callable[[], HTTPProtocol]) -> None:
        self.build = build
        self.open: set[HTTPProtocol] = set()

    def buildProtocol(self, addr: Any) -> Protocol:
        protocol = self.build()
        protocol.factory = self
        protocol.on_open = self.open.add
        protocol.on_close = self.open.discard
        return protocol


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind and listen on a TCP socket; IPv6 sockets take IPv6 only."""
    family = socket.AF_INET
    if host != "localhost" and ipaddress.ip_address(host).version == 6:
        family = socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def remove_stale_socket(path: Path) -> None:
    """Remove a unix socket file left by an earlier run; refuse other files."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; remove it or pick another")
    os.unlink(path)


def bind_unix(path: Path) -> socket.socket:
    """Bind and listen on a unix socket, readable and writable by the group."""
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o660)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind(address: str) -> socket.socket:
    """Bind the listening socket for one `server.listen` or `admin.listen` entry.

    Binding is separate from serving so that `serve --workers N` can bind
    once and let every worker process accept on the same sockets.
    """
    parsed = parse_listen_address(address, "listen", "<listen>")
    try:
        if isinstance(parsed, Path):
            return bind_unix(parsed)
        host, port = parsed
        return bind_tcp("127.0.0.1" if host == "localhost" else host, port)
    except OSError as error:
        reason = error.strerror or str(error)
        raise OSError(
            error.errno,
            f"cannot listen on {address}: {reason.lower()}; stop the other"
            " process or choose another address in the config",
        ) from None


def listen(
    reactor: Any,
    sock: socket.socket,
    factory: Factory,
    *,
    tls: ServerConnectionCreator | None,
    proxy_protocol: bool,
    proxy_timeout: float,
) -> Any:
    """Serve on a bound socket and return the port object (see `bound_address`).

    The reactor works on its own duplicate of the descriptor, so the caller
    may close `sock` afterwards. The wrapping order is PROXY header, then
    TLS, then HTTP: a load balancer writes the PROXY header in clear before
    the TLS handshake.
    """
    outer: Any = factory
    if tls is not None:
        outer = TLSMemoryBIOFactory(tls, False, outer)  # type: ignore[arg-type]
    if proxy_protocol:
        outer = ProxyProtocolFactory(outer, reactor, proxy_timeout)
    return reactor.adoptStreamPort(sock.fileno(), sock.family, outer)


def bound_address(port: Any) -> str:
    """Return `HOST:PORT`, `[HOST]:PORT` or `unix:PATH` for a started port."""
    host = port.getHost()
    name = getattr(host, "name", None)
    if name is not None:
        text = name.decode() if isinstance(name, bytes) else str(name)
        return f"unix:{text}"
    if ":" in host.host:
        return f"[{host.host}]:{host.port}"
    return f"{host.host}:{host.port}"
