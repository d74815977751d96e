"""The parse benchmark still runs (with a small feed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "feeds_parse.py"


def test_bench_runs_small() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--entries", "400", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ranges: parse_ranges" in result.stdout
    assert "pins: parse_thumbprints" in result.stdout
