"""Sphinx configuration of the dynmem documentation.

Build (needs the ``docs`` extra: ``python -m pip install '.[docs]'``)::

    python -m sphinx -W -b html docs docs/_build/html

The API pages are rendered from the numpydoc docstrings (``numpydoc``); the
mathematics page is Markdown (``myst_parser``).
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

project = "dynmem"
author = "the dynmem authors"
try:
    from dynmem.version import __version__ as release
except Exception:  # building from a checkout without the package metadata
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
# Docstrings cite one another in prose ("see Notes") and name array shapes in their type lines;
# those are not cross-references.
numpydoc_xref_param_type = False
nitpicky = False
# The docstrings cite their sources as "[WLL]" in prose and keep a References list per module; numpydoc
# renames those citations per page, so a citation defined on a module's page and cited from a function's
# page is "not found", and one listed but cited only in prose is "not referenced".  Re-exported result
# classes (dynmem.kernel.ConvergenceResult) have two documented paths.  Neither is a broken link.
suppress_warnings = ["myst.header", "ref.citation", "ref.python"]
html_theme = "alabaster"
html_title = f"dynmem {release}"
