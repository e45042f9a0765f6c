"""The package type-checks: mypy (pinned in setup.cfg's test extra, configured in its [mypy]
section) finds no error in probpose/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error_in_the_package(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Success: no issues found" in run.stdout


def test_mypy_would_catch_an_optional_used_as_a_number(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int | None) -> int:\n    return x + 1\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "setup.cfg"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(bad),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 1 and "Unsupported operand types" in run.stdout, run.stdout
