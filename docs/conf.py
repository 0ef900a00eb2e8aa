"""Sphinx configuration of the edstomo documentation.

Built by ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors; the test
suite runs this build, tests/test_docs.py). Pages are Markdown (MyST); the API reference is
generated from the docstrings (autodoc + numpydoc) for every public module of ``edstomo`` and of
the built-in plugin packages; the CLI reference from the argument parser
(:func:`edstomo.cli.build_parser`, which includes the commands that plugins declare); the gallery
runs the scripts in ``examples/gallery`` (sphinx-gallery).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "edstomo"
author = "edstomo developers"
copyright = "edstomo developers, BSD-3-Clause"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "edstomo_reference",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "images/README*", "auto_examples/*.ipynb", "auto_examples/*.py"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # pages start at level-1 headings; deeper jumps are fine in prose

# API reference
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc shows the documented types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# Gallery: short scripts, executed at every build
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples" / "gallery"),
    "gallery_dirs": str(HERE / "auto_examples"),
    "filename_pattern": r"plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "run_stale_examples": True,
    "matplotlib_animations": False,
    "plot_gallery": "True",
}

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "Quantitative 3D chemical maps from STEM-EDS and HAADF tilt series"}
