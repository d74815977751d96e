"""Logging setup for `serve`: text or one JSON object per line.

Two loggers matter: `hookbouncer.gateway` for lifecycle and errors, and
`hookbouncer.access` for one line per request. Access lines carry their
fields as `extra`, so the JSON format shows them as keys and the text
format shows the message alone. Nothing logged here contains a body, a token,
a secret or an Authorization header: callers pass only the fields below.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]

# Fields an access line or a lifecycle line may carry as `extra`.
FIELDS = (
    "method",
    "route",
    "status",
    "decision",
    "reasons",
    "client",
    "thumbprint",
    "duration_ms",
    "pid",
    "address",
    "ranges",
    "pins",
    "age_seconds",
)


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, log_format: LogFormat = "text") -> None:
    """Send hookbouncer's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
            )
        )
    root = logging.getLogger("hookbouncer")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
