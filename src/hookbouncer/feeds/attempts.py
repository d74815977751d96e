"""The last refresh attempt of each feed, as kept in status.json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from hookbouncer.feeds.model import Outcome


@dataclass(frozen=True)
class Attempt:
    """The last refresh attempt of one feed and the last error it had.

    `last_error` stays after later successes, so `status` can show what
    went wrong most recently and when.
    """

    at: float | None = None
    outcome: Outcome | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "last_attempt_at": self.at,
            "last_outcome": self.outcome,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    @classmethod
    def from_json(cls, value: Any) -> Attempt:
        """Read a status.json entry, ignoring fields of the wrong type."""
        if not isinstance(value, dict):
            return cls()
        outcome = value.get("last_outcome")
        return cls(
            at=_optional_number(value.get("last_attempt_at")),
            outcome=outcome if outcome in get_args(Outcome) else None,
            last_error=_optional_text(value.get("last_error")),
            last_error_at=_optional_number(value.get("last_error_at")),
        )


def _optional_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
