"""The demo through the installed command: every outcome must be right."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_command_passes() -> None:
    command = shutil.which("hookbouncer", path=str(Path(sys.executable).parent))
    assert command is not None, "the hookbouncer command is not installed in the venv"
    result = subprocess.run(
        [command, "demo"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo passed" in result.stdout
    assert "WRONG" not in result.stdout
    assert "application received 6 signed webhooks" in result.stdout
