"""`serve --workers N`: several processes accepting on the same sockets.

One Python process is bound by its interpreter lock to about one core.
So the parent binds every listening socket, then forks N workers. Each
runs a reactor, a feed manager and an inbox connection and accepts on the
inherited sockets. The kernel wakes whichever worker is waiting, so the
split of connections is not even: under load one busy worker was seen
taking all 32 keep-alive connections of a benchmark. Only
worker 0 runs the relay and the admin listener. The feed manager already
lets one process fetch while the others load the snapshot from disk, and
the inbox serialises writers from several processes.

The parent forwards SIGTERM and SIGINT to the workers and waits for them.
If a worker exits on its own, the parent stops the others and exits 1, so
the service manager restarts the whole group.

The parent forks before importing the reactor or starting any thread,
because neither survives a fork.

TODO: one SO_REUSEPORT socket per worker would spread connections, but
with SQLite the workers then contend for the database lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from types import FrameType

from hookbouncer.config import Config
from hookbouncer.gateway.listeners import bind

log = logging.getLogger("hookbouncer.gateway")


def bind_all(config: Config) -> dict[str, socket.socket]:
    """Bind every webhook listener and the admin listener; close all on error."""
    addresses = list(config.server.listen)
    if config.admin.listen:
        addresses.append(config.admin.listen)
    bound: dict[str, socket.socket] = {}
    try:
        for address in addresses:
            bound[address] = bind(address)
    except OSError:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def supervise(
    config: Config,
    workers: int,
    run_worker: Callable[[Config, Mapping[str, socket.socket], int], int],
) -> int:
    """Fork `workers` processes running `run_worker`; return the exit code."""
    bound = bind_all(config)
    children: dict[int, int] = {}
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_worker(config, bound, index)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
    for sock in bound.values():
        sock.close()
    log.info("started %d workers: %s", workers, sorted(children))
    stopping = False

    def forward(number: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        exit_code = os.waitstatus_to_exitcode(status)
        if not stopping:
            log.error(
                "worker %d (pid %d) exited with %d; stopping the others",
                index,
                pid,
                exit_code,
            )
            stopping = True
            code = 1
            for other in children:
                _signal(other, signal.SIGTERM)
        elif exit_code != 0:
            code = 1
    log.info("all workers stopped")
    return code


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)
