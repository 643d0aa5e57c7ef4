"""The engine's results equal those from before issue 24 moved it into ``dynmem/ode/``.

``tests/fixtures/engine_identity.npz`` was written by
``tests/fixtures/make_engine_identity.py`` from main at 0ca63db (``dynmem/odeint.py``).
On the machine that wrote it, today's code reproduced every array bit for bit.
On another CPU numba's code generation (FMA contraction, vector width) moves
the last bits, so the test compares with bounds measured for that, by
recomputing the fixture with ``NUMBA_CPU_NAME`` set to ``generic``, ``haswell``,
``skylake-avx512``, ``icelake-server`` and ``znver3`` on a znver4 machine:

- step, evaluation, accept and reject counts of the smooth (tanh) cases: exactly;
- their floating-point arrays: within ``SMOOTH_RTOL`` = 1e-11 of the array's
  largest entry (measured: at most 8.2e-14; the solves'
  tolerances are 1e-6 to 1e-10, so a changed algorithm shows far above it);
- the kinked (relu) cases, where a last-bit change moves a step across the kink
  and the controller takes another path: states and gradients within
  ``KINK_RTOL`` = 1e-4 (measured: at most 2.0e-6, generic target), counts not
  compared (measured: 1,861 forward evaluations against 1,933).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).with_name("fixtures")
SMOOTH_RTOL = 1e-11
KINK_RTOL = 1e-4
#: keys whose arrays end with [loss, nfev_forward, nfev_backward]
_ENDS_WITH_COUNTS = ("relu/adj/", "run/")


def _maker():
    spec = importlib.util.spec_from_file_location("make_engine_identity", FIXTURES / "make_engine_identity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def outputs():
    return _maker().cases()


def _split(key, a):
    """(floats, counts) of one fixture array."""
    a = np.asarray(a)
    if key.endswith("nfev") or "counts" in key:
        return np.empty(0), a.ravel()
    if key.startswith(_ENDS_WITH_COUNTS):
        return a[:-2], a[-2:]
    if key.startswith("clg/"):
        return a[:-3], a[-3:]
    return a, np.empty(0, dtype=int)


def _rel(a, b):
    scale = np.max(np.abs(a)) if a.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if a.size and scale > 0 else float(np.max(np.abs(a - b), initial=0.0))


def compare(ref, outputs):
    """List of (key, what, value, bound) for every array outside its bound."""
    bad = []
    for k in ref.files:
        a, b = np.asarray(ref[k]), np.asarray(outputs[k])
        if a.shape != b.shape:
            bad.append((k, "shape", b.shape, a.shape))
            continue
        kinked = k.startswith(("relu/", "mem/relu"))
        fa, ca = _split(k, a)
        fb, cb = _split(k, b)
        rel = _rel(fa, fb)
        bound = KINK_RTOL if kinked else SMOOTH_RTOL
        if not np.isfinite(rel) or rel > bound:
            bad.append((k, "relative difference", rel, bound))
        if not kinked and not np.array_equal(ca, cb):
            bad.append((k, "counts", cb.tolist(), ca.tolist()))
    return bad


def test_engine_outputs_match_fixture(outputs):
    ref = np.load(FIXTURES / "engine_identity.npz")
    assert sorted(ref.files) == sorted(outputs)
    bad = compare(ref, outputs)
    assert not bad, f"{len(bad)} of {len(ref.files)} arrays differ from the fixture: {bad[:10]}"


def test_compare_catches_a_changed_result(outputs):
    """The comparison fails on a change just above each bound and on a changed count."""
    ref = np.load(FIXTURES / "engine_identity.npz")
    for key, bump in (("sim/dopri5/1e-08/h", 20 * SMOOTH_RTOL), ("relu/sim/dopri5", 2 * KINK_RTOL)):
        changed = dict(outputs)
        a = np.array(ref[key], dtype=float)
        a.flat[0] += bump * np.max(np.abs(a))
        changed[key] = a
        assert [b[0] for b in compare(ref, changed)] == [key]
    changed = dict(outputs)
    changed["batch/dopri5/counts"] = np.asarray(ref["batch/dopri5/counts"]) + 1
    assert [b[:2] for b in compare(ref, changed)] == [("batch/dopri5/counts", "counts")]
