"""The README's code blocks, then the documentation pages' (``PAGES``, in that order), run top to
bottom in one fresh folder, as a newcomer would paste them.

Each fenced ``bash`` or ``python`` block runs after the ones before it (they share the folder), so
every file an example needs must come from an earlier example or ship with probpose. A block may be
preceded by a marker, ``<!-- readme-test {...} -->`` with JSON:

- ``{"skip": "why"}``: not run (it needs something a test machine cannot have, such as an AMASS tree);
- ``{"needs": "module"}``: run only where that module imports (the reason is printed otherwise);
- ``{"replace": [["old", "new"], ...]}``: run with smaller settings (long jobs), text replaced;
- ``{"same_as": "README.md"}``: not run again, because that file holds the same block verbatim
  (checked), where it runs.

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

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The pages whose examples run, in this order, after the README's (each may use the files an
# earlier one made). Every Markdown page under docs/ with a bash or python block must be listed.
PAGES = [
    "README.md",
    "docs/getting-started.md",
    "docs/howto/import.md",
    "docs/priors.md",
    "docs/howto/train.md",
    "docs/howto/evaluate.md",
    "docs/howto/sample.md",
    "docs/howto/synth.md",
    "docs/howto/style.md",
    "docs/howto/fit.md",
    "docs/howto/bench.md",
    "docs/conventions.md",
    "docs/contributing.md",
]
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
    assert sum(len(blocks((ROOT / page).read_text())) for page in PAGES) >= 15


def test_every_page_with_examples_is_run_and_duplicates_are_verbatim():
    pages_with_blocks = {
        str(p.relative_to(ROOT)) for p in [README, *sorted((ROOT / "docs").rglob("*.md"))] if blocks(p.read_text())
    }
    pages_with_blocks -= {p for p in pages_with_blocks if "/_build/" in p or "auto_tutorials" in p}
    assert pages_with_blocks <= set(PAGES), f"pages whose examples no test runs: {pages_with_blocks - set(PAGES)}"
    for page in PAGES:
        for block in blocks((ROOT / page).read_text()):
            if "same_as" in block["marker"]:
                other = (ROOT / block["marker"]["same_as"]).read_text()
                assert block["code"] in other, f"{page} line {block['line']}: not in {block['marker']['same_as']}"


def test_the_readme_and_the_pages_run_top_to_bottom(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    ran, skipped = 0, []
    for page in PAGES:
        for block in blocks((ROOT / page).read_text()):
            marker = block["marker"]
            where = f"{page} line {block['line']}"
            if "skip" in marker or "same_as" in marker:
                skipped.append(f"{where}: {marker.get('skip', 'run in ' + str(marker.get('same_as')))}")
                continue
            if "needs" in marker and importlib.util.find_spec(marker["needs"]) is None:
                skipped.append(f"{where}: needs {marker['needs']}")
                continue
            code = _prepared(block)
            cmd = ["bash", "-c", code] if block["lang"] == "bash" else [sys.executable, "-c", code]
            proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, (
                f"block at {where} failed (rc {proc.returncode}):\n{code}\n"
                f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
            )
            ran += 1
    print(f"ran {ran} blocks; skipped: {skipped}")
    assert ran >= 10
