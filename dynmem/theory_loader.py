"""Import the theorem catalogue as ``dynmem.theory``.

An installed dynmem ships ``theory/`` as the subpackage ``dynmem.theory``
(package-dir mapping in pyproject.toml).  In a source checkout that was not
installed, ``theory/`` sits next to ``dynmem/``; this loader registers it
under the same name so the CLI and the tests work in both layouts.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def load_theory():
    try:
        return importlib.import_module("dynmem.theory")
    except ModuleNotFoundError:
        pass
    root = Path(__file__).resolve().parent.parent / "theory"
    init = root / "__init__.py"
    if not init.exists():
        raise ImportError("the theorem catalogue (dynmem.theory) is not installed and no theory/ folder was found")
    spec = importlib.util.spec_from_file_location("dynmem.theory", init, submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["dynmem.theory"] = module
    spec.loader.exec_module(module)
    return module
