"""Sphinx configuration of probpose's documentation (``python3 -m sphinx -W -b html docs docs/_build/html``).

Sphinx (with MyST for Markdown pages, autodoc for the API reference and sphinx-gallery for the
executed tutorials) because it is what Pyro, zuko and PyTorch document themselves with: the API
reference comes from the same docstrings ``help()`` shows, and the tutorials are plain Python
scripts that the build runs, so a tutorial that breaks fails the build (and ``tests/test_docs.py``).
Nothing is fetched from the network: no intersphinx, no remote images, the theme is a package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import probpose  # noqa: E402

project = "probpose"
author = "the probpose authors"
copyright = "2026, the probpose authors"  # noqa: A001
release = probpose.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "tutorials", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autoclass_content = "both"
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Our docstrings are prose with double-backquoted names (not cross-references): keep them literal.
default_role = "literal"
nitpicky = False

# The tutorials: each script is run by the build (small settings) with its figures kept.
sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["auto_tutorials"],
    "filename_pattern": r"/tutorial_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "run_stale_examples": True,  # every build runs every tutorial: a tutorial the code broke fails the build
    "write_computation_times": False,
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
    "reset_modules": ("matplotlib",),
}
os.environ.setdefault("PROBPOSE_DOCS_BUILD", "1")

html_theme = "furo"
html_title = f"probpose {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
