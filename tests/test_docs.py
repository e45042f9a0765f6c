"""The documentation site builds offline with warnings as errors (Sphinx, MyST, autodoc,
sphinx-gallery: the README's command), running the four tutorials, and the result has what the
pages promise: an API reference with every public package's members, and each tutorial's pictures."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("sphinx", "myst_parser", "sphinx_gallery", "furo")
missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"the docs extra is not installed ({', '.join(missing)})")

TUTORIALS = sorted(p.stem for p in (ROOT / "docs" / "tutorials").glob("tutorial_*.py"))
API = ["distributions", "models", "fitting", "data", "kinematics", "synthesis", "style", "skeleton", "rotations"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", "docs", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    return out


def test_the_site_builds_with_an_api_reference_of_every_public_package(site):
    for name in API:
        page = (site / "api" / f"{name}.html").read_text()
        members = len(re.findall(r'class="sig-name descname"', page))
        assert members >= 5, f"probpose.{name}: {members} documented members"
    assert "load_model" in (site / "api" / "models.html").read_text()
    for page in ("index", "getting-started", "howto/fit", "priors", "benchmarks", "data", "changelog", "architecture"):
        assert (site / f"{page}.html").exists(), page


def test_the_four_tutorials_ran_and_drew_their_pictures(site):
    assert len(TUTORIALS) == 4
    images = site / "_images"
    for name in TUTORIALS:
        html = (site / "auto_tutorials" / f"{name}.html").read_text()
        drawn = list(images.glob(f"sphx_glr_{name}_0*.png"))
        assert drawn, f"{name} drew no figure"
        assert "Traceback" not in html
