"""The README's code blocks run, top to bottom, in one fresh folder, as a newcomer would paste them.

Each fenced ``bash`` or ``python`` block runs after the ones before it (they share the folder), so
every file an example needs must come from an earlier example or ship with probpose. A block may be
preceded by a marker, ``<!-- readme-test {...} -->`` with JSON:

- ``{"skip": "why"}``: not run (it needs something a test machine cannot have, such as an AMASS tree);
- ``{"needs": "module"}``: run only where that module imports (the reason is printed otherwise);
- ``{"replace": [["old", "new"], ...]}``: run with smaller settings (long jobs), text replaced.

``pip install`` lines are not run (the suite runs on an installed probpose). Markers must name
text that exists, so a stale replacement fails instead of silently running the long job.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(
    r"(?:<!-- readme-test (?P<marker>\{.*?\}) -->\s*\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)


def blocks(text: str) -> list[dict]:
    """The README's bash and python blocks in order, each with its marker (or ``{}``)."""
    found = []
    for m in FENCE.finditer(text):
        marker = json.loads(m["marker"]) if m["marker"] else {}
        line = text.count("\n", 0, m.start("code")) + 1
        found.append({"lang": m["lang"], "code": m["code"], "marker": marker, "line": line})
    return found


def _prepared(block: dict) -> str:
    code = block["code"]
    for old, new in block["marker"].get("replace", []):
        assert old in code, f"README line {block['line']}: the marker replaces {old!r}, which the block lacks"
        code = code.replace(old, new)
    if block["lang"] == "bash":
        kept = [ln for ln in code.splitlines() if not re.match(r"\s*(python3 -m )?pip install", ln)]
        code = "set -euo pipefail\n" + "\n".join(kept)
    return code


def test_the_marker_parser_sees_every_block_and_can_fail():
    sample = 'a\n```bash\necho 1\n```\n<!-- readme-test {"replace": [["2", "3"]]} -->\n```python\nprint(2)\n```\n'
    found = blocks(sample)
    assert [b["lang"] for b in found] == ["bash", "python"]
    assert _prepared(found[1]) == "print(3)\n"
    with pytest.raises(AssertionError, match="lacks"):
        _prepared({"code": "x", "marker": {"replace": [["y", "z"]]}, "lang": "python", "line": 1})
    assert len(blocks(README.read_text())) >= 10


def test_the_readme_runs_top_to_bottom(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    ran, skipped = 0, []
    for block in blocks(README.read_text()):
        marker = block["marker"]
        if "skip" in marker:
            skipped.append(f"line {block['line']}: {marker['skip']}")
            continue
        if "needs" in marker and importlib.util.find_spec(marker["needs"]) is None:
            skipped.append(f"line {block['line']}: needs {marker['needs']}")
            continue
        code = _prepared(block)
        cmd = ["bash", "-c", code] if block["lang"] == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (
            f"README block at line {block['line']} failed (rc {proc.returncode}):\n{code}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
        ran += 1
    print(f"ran {ran} README blocks; skipped: {skipped}")
    assert ran >= 10
