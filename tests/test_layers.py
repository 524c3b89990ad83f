"""Imports run one way (DESIGN.md): worker, admin_ui → services → activities → store → workflows →
definitions → parcours, and activities and the store know the workflow only by its contract. The
contracts live in pyproject.toml ([tool.importlinter]); import-linter checks the real import graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_runs_up_the_layers() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout
