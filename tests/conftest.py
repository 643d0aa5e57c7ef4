"""Shared test configuration: hypothesis profiles and the matplotlib backend."""

import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# numba compiles on first use, so the first example of a property can take
# seconds: no deadlines.  "ci" is the default; "dev" is quicker.
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("DYNMEM_HYPOTHESIS_PROFILE", "ci"))

# The catalogue under test is the one next to the dynmem being tested.  An editable install of another
# checkout maps `dynmem.theory` to *its* theory/ folder, so a worktree importing its own dynmem (through
# PYTHONPATH) would silently run a different catalogue; register the sibling folder first.
import importlib.util  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import dynmem  # noqa: E402

_theory_dir = Path(dynmem.__file__).resolve().parent.parent / "theory"
if "dynmem.theory" not in sys.modules and (_theory_dir / "_claim.py").exists():
    _spec = importlib.util.spec_from_file_location("dynmem.theory", _theory_dir / "__init__.py",
                                                   submodule_search_locations=[str(_theory_dir)])
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["dynmem.theory"] = _module
    _spec.loader.exec_module(_module)


import pytest  # noqa: E402


@pytest.fixture
def patch_experiment(monkeypatch):
    """``patch_experiment(name, run=..., plot=...)``: the registered record of ``name`` with those members replaced.

    Records are frozen, so the test swaps a copy of the record into the module
    the registry reads it from, for the test's duration.  The copy skips the
    record's checks (a test double needs no docstring).
    """
    import copy
    import importlib

    from dynmem.experiments import REGISTRY, get_experiment

    def patch(name, **members):
        module, attr = REGISTRY[name].split(":")
        mod = importlib.import_module(f"dynmem.experiments.{module}")
        rec = copy.copy(get_experiment(name))
        for key, value in members.items():
            object.__setattr__(rec, key, value)
        monkeypatch.setattr(mod, attr, rec)

    return patch
