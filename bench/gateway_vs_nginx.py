"""hookbouncer against nginx terminating the same mutual TLS, in one run.

Usage::

    apt-get update && apt-get install -y nginx     # once, as root
    .venv/bin/python bench/gateway_vs_nginx.py [--seconds 5] [--clients 4]
        [--connections 8] [--idle 1000] [--cores 0,1] [--workers 1]
        [--nginx-workers 2] [--synchronous full] [--normal-row]

Both servers run pinned to the same cores (`taskset`), with the same
self-signed ECDSA P-256 server certificate and the same self-signed
client certificate:

- hookbouncer: `hookbouncer serve`, TLS with `client_certificate =
  "request"`, every check on (source address, pinned thumbprint, sealed
  developerPayload), each webhook committed to the SQLite inbox with
  `synchronous = "full"` before the 200.
- nginx: `ssl_verify_client optional_no_ca`, proxying `/copyleaks/` over
  keep-alive HTTP/1.1 to a minimal Python application (asyncio and h11,
  one process, also pinned) that answers 200 without looking at anything.

Three measurements, each bounded by `--seconds`:

1. full handshakes per second: a new TCP connection and a full TLS
   handshake with the client certificate (no session resumption), then one
   `GET /none` answered 404 by the server itself, then close;
2. verified webhooks per second on keep-alive connections: `POST
   /copyleaks/completed/{unique id}` with a sealed token;
3. resident memory (RSS, summed over the server's processes) with `--idle`
   TLS connections open and idle after one request each.

TODO: keep-alive webhooks reach about 0.27x nginx against a 0.8x target;
docs/benchmarks.md says where the time goes.

The load generator is `--clients` Python processes using `ssl`, on the same
machine and loopback only. It shares the CPU with the servers, so the
absolute numbers understate both servers; the ratios are the point. Both
sides get the same client processes, connections and request bodies, and
the summary prints the CPU each side spent per webhook (servers, and the
load generator) so an unequal client share would show.

`--normal-row` adds a hookbouncer run with `inbox.synchronous = "normal"`
in each round, measuring keep-alive webhooks only, to show how much of the
gap the per-commit fsync explains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h11

from hookbouncer.emulator.certs import CertificateFiles, make_self_signed
from hookbouncer.tokens import KeyRing

VENV_BIN = Path(sys.executable).parent


# -- the minimal application behind nginx -----------------------------------


class MinimalApp(asyncio.Protocol):
    """Answer 200 to every request; parse with h11 and nothing else."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.parser = h11.Connection(h11.SERVER)

    def data_received(self, data: bytes) -> None:
        self.parser.receive_data(data)
        while True:
            event = self.parser.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self.parser.our_state is h11.DONE:
                    self.parser.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.EndOfMessage):
                body = b'{"status":"accepted"}'
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(body))),
                ]
                self.transport.write(
                    self.parser.send(h11.Response(status_code=200, headers=headers))
                    + self.parser.send(h11.Data(data=body))
                    + self.parser.send(h11.EndOfMessage())
                )
                if self.parser.our_state is h11.MUST_CLOSE:
                    self.transport.close()
                    return
                self.parser.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return


def run_minimal_app(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(MinimalApp, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- servers ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def wait_for_port(port: int) -> None:
    for _ in range(400):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def started(
    command: list[str], log: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=output, preexec_fn=raise_file_limit
        )
    try:
        try:
            wait_for_port(port)
        except RuntimeError:
            print(log.read_text(errors="replace"), file=sys.stderr)
            raise
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def hookbouncer_config(
    directory: Path,
    port: int,
    admin_port: int,
    server: CertificateFiles,
    client: CertificateFiles,
    keys_file: Path,
    synchronous: str,
) -> Path:
    config = directory / "hookbouncer.toml"
    (directory / "export-secret").write_text("bench-export-secret\n")
    config.write_text(
        f"""
state_dir = "{directory / "state"}"
log_level = "WARNING"

[server]
listen = ["127.0.0.1:{port}"]
certificate = "{server.certificate}"
private_key = "{server.private_key}"
client_certificate = "request"
idle_timeout = "300s"
header_timeout = "60s"

[admin]
listen = "127.0.0.1:{admin_port}"

[feeds]
api_base = "https://127.0.0.1:1"
retries = 0
extra_ranges = ["127.0.0.1/32"]
extra_thumbprints = ["{client.sha1}"]

[developer_payload]
mode = "sealed"
keys_file = "{keys_file}"

[header_secret]
secrets_file = "{directory / "export-secret"}"

[inbox]
synchronous = "{synchronous}"
"""
    )
    return config


def nginx_config(
    directory: Path, port: int, app_port: int, server: CertificateFiles, workers: int
) -> Path:
    config = directory / "nginx.conf"
    config.write_text(
        f"""
worker_processes {workers};
daemon off;
master_process on;
pid {directory / "nginx.pid"};
error_log {directory / "nginx-error.log"} warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {directory / "nginx-body"};
    proxy_temp_path {directory / "nginx-proxy"};
    fastcgi_temp_path {directory / "nginx-fastcgi"};
    uwsgi_temp_path {directory / "nginx-uwsgi"};
    scgi_temp_path {directory / "nginx-scgi"};
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {server.certificate};
        ssl_certificate_key {server.private_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client optional_no_ca;
        ssl_session_cache off;
        ssl_session_tickets on;
        client_max_body_size 16m;
        location /copyleaks/ {{
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_pass http://app;
        }}
        location / {{ return 404; }}
    }}
}}
"""
    )
    return config


# -- load generator ---------------------------------------------------------


def client_context(directory: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=f"{directory}/server.pem")
    context.load_cert_chain(f"{directory}/client.pem", f"{directory}/client.key")
    return context


def read_response(sock: ssl.SSLSocket, buffer: bytearray) -> int:
    """Read one response with a Content-Length body; return its status."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    while len(buffer) < end + length:
        buffer += sock.recv(65536)
    del buffer[: end + length]
    return int(head[9:12])


def handshake_worker(directory: str, port: int, seconds: float, results: Any) -> None:
    context = client_context(directory)
    done = 0
    errors = 0
    deadline = time.perf_counter() + seconds
    request = b"GET /none HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    while time.perf_counter() < deadline:
        try:
            raw = socket.create_connection(("127.0.0.1", port))
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(request)
                if read_response(sock, bytearray()) == 404:
                    done += 1
                else:
                    errors += 1
        except OSError:
            errors += 1
    results.put((done, errors))


def webhook_worker(
    directory: str,
    port: int,
    seconds: float,
    name: str,
    connections: int,
    results: Any,
) -> None:
    """Keep one request in flight on each of `connections` connections."""
    context = client_context(directory)
    keyring = KeyRing.load(Path(directory) / "payload-keys.json")
    token = keyring.seal("bench", now=time.time())
    done = 0
    errors = 0
    sockets = []
    for _ in range(connections):
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(context.wrap_socket(raw, server_hostname="localhost"))
    buffers = [bytearray() for _ in sockets]
    sent = 0

    def request() -> bytes:
        nonlocal sent
        sent += 1
        # The token is bound to scan "bench"; the "n" field makes every
        # body unique, so no request is a stored duplicate.
        body = json.dumps(
            {"status": 0, "developerPayload": token, "n": f"{name}-{sent}"}
        ).encode()
        return (
            b"POST /copyleaks/completed/bench HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            for sock in sockets:
                sock.sendall(request())
            for sock, buffer in zip(sockets, buffers, strict=True):
                if read_response(sock, buffer) == 200:
                    done += 1
                else:
                    errors += 1
    finally:
        for sock in sockets:
            sock.close()
    results.put((done, errors))


def openssl_handshakes(
    directory: Path, port: int, clients: int, seconds: float
) -> float:
    """Full handshakes per second from `clients` parallel `openssl s_time -new`.

    s_time is a C client, so this figure is less bounded by the load
    generator than the Python one. Each connection fetches `/none` (404).
    """
    command = [
        "openssl",
        "s_time",
        "-connect",
        f"127.0.0.1:{port}",
        "-new",
        "-cert",
        str(directory / "client.pem"),
        "-key",
        str(directory / "client.key"),
        "-CAfile",
        str(directory / "server.pem"),
        "-time",
        str(max(1, int(seconds))),
        "-www",
        "/none",
    ]
    started_at = time.perf_counter()
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(clients)
    ]
    total = 0
    for process in processes:
        output, _ = process.communicate()
        for line in output.decode().splitlines():
            if "connections in" in line and "real seconds" in line:
                total += int(line.split()[0])
    return total / (time.perf_counter() - started_at)


def run_workers(
    target: Callable[..., None], count: int, arguments: Callable[[int], tuple[Any, ...]]
) -> tuple[int, int]:
    """Run `count` load processes; return the requests done and the errors."""
    results: Any = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=target, args=(*arguments(index), results))
        for index in range(count)
    ]
    for process in processes:
        process.start()
    totals = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return sum(done for done, _ in totals), sum(errors for _, errors in totals)


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids: list[int]) -> float:
    """Return the user plus system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """Return the CPU time of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_pids(pid: int) -> list[int]:
    output = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(line) for line in output.split()]


def idle_connections_rss(
    directory: str, port: int, count: int, pids: Callable[[], list[int]]
) -> tuple[int, int]:
    """Open `count` TLS connections, one request each, and measure RSS."""
    raise_file_limit()
    context = client_context(directory)
    before = rss_kib(pids())
    sockets = []
    request = b"GET /none HTTP/1.1\r\nHost: localhost\r\n\r\n"
    try:
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", port))
            sock = context.wrap_socket(raw, server_hostname="localhost")
            sock.sendall(request)
            read_response(sock, bytearray())
            sockets.append(sock)
        time.sleep(1.0)
        during = rss_kib(pids())
    finally:
        for sock in sockets:
            sock.close()
    return before, during


# -- driver -----------------------------------------------------------------


def measure_webhooks(
    directory: Path,
    port: int,
    cpu_pids: Callable[[], list[int]],
    args: argparse.Namespace,
) -> dict[str, float]:
    """Measure keep-alive webhooks/s and the CPU both sides spent per webhook.

    `cpu_pids` are every process that serves the requests (for nginx, the
    application behind it too). The load generator's CPU comes from
    RUSAGE_CHILDREN, so the figures show whether it weighs the same on
    both sides.
    """
    shared = str(directory)
    pids = cpu_pids()
    server_before = cpu_seconds(pids)
    clients_before = children_cpu_seconds()
    webhooks, webhook_errors = run_workers(
        webhook_worker,
        args.clients,
        lambda index: (shared, port, args.seconds, f"w{index}", args.connections),
    )
    server_cpu = cpu_seconds(pids) - server_before
    clients_cpu = children_cpu_seconds() - clients_before
    per_webhook = 1e6 / max(webhooks, 1)
    return {
        "webhooks_per_second": webhooks / args.seconds,
        "webhook_errors": webhook_errors,
        "server_cpu_us_per_webhook": server_cpu * per_webhook,
        "client_cpu_us_per_webhook": clients_cpu * per_webhook,
    }


def measure(
    label: str,
    directory: Path,
    port: int,
    pids: Callable[[], list[int]],
    cpu_pids: Callable[[], list[int]],
    args: argparse.Namespace,
) -> dict[str, float]:
    shared = str(directory)
    handshakes, handshake_errors = run_workers(
        handshake_worker, args.clients, lambda _: (shared, port, args.seconds)
    )
    s_time = openssl_handshakes(directory, port, args.clients, args.seconds)
    webhooks = measure_webhooks(directory, port, cpu_pids, args)
    before, during = idle_connections_rss(shared, port, args.idle, pids)
    result = {
        "handshakes_per_second": handshakes / args.seconds,
        "handshake_errors": handshake_errors,
        "s_time_handshakes_per_second": s_time,
        **webhooks,
        "rss_before_kib": before,
        "rss_idle_kib": during,
    }
    print(f"{label}: {json.dumps(result)}", flush=True)
    return result


def run_hookbouncer(
    directory: Path,
    server: CertificateFiles,
    client: CertificateFiles,
    keys_file: Path,
    taskset: list[str],
    args: argparse.Namespace,
    synchronous: str,
    webhooks_only: bool = False,
) -> dict[str, float]:
    shutil.rmtree(directory / "state", ignore_errors=True)
    port = free_port()
    config = hookbouncer_config(
        directory, port, free_port(), server, client, keys_file, synchronous
    )
    command = [
        *taskset,
        str(VENV_BIN / "hookbouncer"),
        "serve",
        "--config",
        str(config),
        "--workers",
        str(args.workers),
    ]
    with started(command, directory / "hookbouncer.log", port) as process:

        def pids() -> list[int]:
            return [process.pid, *child_pids(process.pid)]

        if webhooks_only:
            result = measure_webhooks(directory, port, pids, args)
            label = f"hookbouncer, synchronous {synchronous}"
            print(f"{label}: {json.dumps(result)}", flush=True)
            return result
        return measure("hookbouncer", directory, port, pids, pids, args)


def run_nginx(
    directory: Path,
    nginx: str,
    server: CertificateFiles,
    taskset: list[str],
    args: argparse.Namespace,
) -> dict[str, float]:
    app_port = free_port()
    app = multiprocessing.Process(target=run_minimal_app, args=(app_port,))
    app.start()
    assert app.pid is not None
    os.sched_setaffinity(app.pid, {int(core) for core in args.cores.split(",")})
    try:
        wait_for_port(app_port)
        port = free_port()
        config = nginx_config(directory, port, app_port, server, args.nginx_workers)
        command = [
            *taskset,
            nginx,
            "-c",
            str(config),
            "-e",
            str(directory / "nginx-error.log"),
        ]
        with started(command, directory / "nginx.log", port) as process:

            def pids() -> list[int]:
                return [process.pid, *child_pids(process.pid)]

            assert app.pid is not None
            app_pid = app.pid
            return measure(
                "nginx",
                directory,
                port,
                pids,
                lambda: [*pids(), app_pid],
                args,
            )
    finally:
        app.terminate()
        app.join()


def best_of(results: list[dict[str, float]]) -> dict[str, float]:
    """Keep the highest rate and the lowest memory and CPU seen over the rounds."""
    best = dict(results[0])
    for result in results[1:]:
        for key, value in result.items():
            lowest = key.startswith("rss") or key.endswith(("errors", "per_webhook"))
            best[key] = (min if lowest else max)(best[key], value)
    return best


def spread(results: list[dict[str, float]], key: str) -> str:
    values = sorted(result[key] for result in results)
    return f"{values[0]:.0f}-{values[-1]:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of each measurement"
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="load generator processes"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="keep-alive connections per client process, one request in flight each",
    )
    parser.add_argument(
        "--idle", type=int, default=1000, help="idle TLS connections for the RSS figure"
    )
    parser.add_argument(
        "--cores", default="0,1", help="CPU list both servers are pinned to"
    )
    parser.add_argument(
        "--synchronous",
        choices=("full", "normal"),
        default="full",
        help="hookbouncer inbox.synchronous (default: full, fsync per commit)",
    )
    parser.add_argument(
        "--nginx-workers", type=int, default=2, help="nginx worker_processes"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="hookbouncer serve --workers"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds; the best counts"
    )
    parser.add_argument(
        "--normal-row",
        action="store_true",
        help="also measure hookbouncer's keep-alive webhooks with"
        ' inbox.synchronous = "normal" (no fsync per commit) in each round',
    )
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print(
            "nginx not found: apt-get update && apt-get install -y nginx",
            file=sys.stderr,
        )
        return 2
    raise_file_limit()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, cores {args.cores}"
    )
    print(
        f"{args.clients} client processes, {args.seconds:g}s per measurement,"
        f" {args.idle} idle connections"
    )
    with tempfile.TemporaryDirectory(prefix="hookbouncer-bench-") as temporary:
        directory = Path(temporary)
        server = make_self_signed(directory, "server", server=True)
        client = make_self_signed(directory, "client")
        keys_file = directory / "payload-keys.json"
        KeyRing.generate(time.time()).save(keys_file)
        taskset = ["taskset", "-c", args.cores]
        ours: list[dict[str, float]] = []
        normal: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        # Rounds alternate the two servers, so a burst of other load on
        # the machine hits both rather than one.
        for _ in range(args.rounds):
            ours.append(
                run_hookbouncer(
                    directory,
                    server,
                    client,
                    keys_file,
                    taskset,
                    args,
                    args.synchronous,
                )
            )
            if args.normal_row:
                normal.append(
                    run_hookbouncer(
                        directory,
                        server,
                        client,
                        keys_file,
                        taskset,
                        args,
                        "normal",
                        webhooks_only=True,
                    )
                )
            theirs.append(run_nginx(directory, nginx, server, taskset, args))

    best_ours = best_of(ours)
    best_theirs = best_of(theirs)
    print()
    print(f"{'':34}{'hookbouncer':>14}{'nginx + app':>14}{'ratio':>8}")
    rows = [
        ("full handshakes/s (Python)", "handshakes_per_second"),
        ("full handshakes/s (s_time)", "s_time_handshakes_per_second"),
        (f"keep-alive webhooks/s ({args.synchronous})", "webhooks_per_second"),
        ("  server CPU µs per webhook", "server_cpu_us_per_webhook"),
        ("  client CPU µs per webhook", "client_cpu_us_per_webhook"),
        (f"RSS, {args.idle} idle (MiB)", "rss_idle_kib"),
    ]
    for title, key in rows:
        ours_value = best_ours[key] / (1024 if "rss" in key else 1)
        theirs_value = best_theirs[key] / (1024 if "rss" in key else 1)
        ratio = ours_value / theirs_value if theirs_value else float("nan")
        print(f"{title:34}{ours_value:>14.1f}{theirs_value:>14.1f}{ratio:>8.2f}")
    if normal:
        ours_value = best_of(normal)["webhooks_per_second"]
        ratio = ours_value / best_theirs["webhooks_per_second"]
        title = "keep-alive webhooks/s (normal)"
        print(f"{title:34}{ours_value:>14.1f}{'':>14}{ratio:>8.2f}")
    key = "webhooks_per_second"
    print(
        f"webhooks/s over the rounds: hookbouncer {spread(ours, key)},"
        f" nginx {spread(theirs, key)}"
    )
    print(
        "Every 200 from hookbouncer follows a commit to SQLite (synchronous as"
        " labelled); the application behind nginx stores nothing."
    )
    print(
        "nginx RSS excludes the application behind it; its server CPU"
        " includes the application."
    )
    print(f"best of {args.rounds} alternating rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
