"""Count the outcomes of the fuzz suite's cases per category (issue 16's before/after numbers).

Runs every deterministic case of ``tests/test_fuzz.py`` against whichever ``dynmem`` is imported (put
another checkout first on ``PYTHONPATH`` to measure it) and prints one line per category:

* ``refused``   - a clear error (ValueError/TypeError naming the argument, or FloatingPointError /
  SimulationError / a dynmem error with a message);
* ``handled``   - a finite result, ``inf`` with a ``DynmemOverflowWarning``, a documented exact ``inf``,
  or ``success=False`` with a message;
* ``silent``    - NaN, or an undocumented ``inf`` without a warning, returned without a word (the classifier
  looks into parameter gradients ``grad``, returned models ``model``, fitted ``rate`` and ``margin``
  too, allowing only their documented NaN: a DecayFit's rate when no exponential was fitted, a
  StabilityBoundary's margin where a curve has no model);
* ``unclear``   - any other exception, or an error that names nothing;
* ``hang``      - the call ran past the per-call budget (``DYNMEM_FUZZ_BUDGET`` seconds, 6 by default).

A case of kind "bad" (an invalid argument) is a policy pass only when refused.  ``max_transient_growth``
on the near-Jordan W is not in the table: its plain test bounds its evaluation count instead of a wall
time.  Usage::

    python benchmarks/fuzz_census.py [--list]
    PYTHONPATH=/tmp/dynmem-base python benchmarks/fuzz_census.py   # an older checkout
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
CATEGORY = {"clear-error": "refused", "finite": "handled", "inf-warned": "handled", "reported": "handled",
            "silent-nan": "silent", "silent-inf": "silent", "unclear-error": "unclear", "hang": "hang"}


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("_dynmem_fuzz", os.path.join(HERE, "..", "tests", "test_fuzz.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    fuzz = _load_fuzz()
    dm = fuzz.dm
    counts, per_entry_fail, policy = Counter(), Counter(), Counter()
    lines = []
    start = time.perf_counter()
    for c in fuzz.CASES:
        outcome, detail = fuzz.classify(c.thunk, c.arg)
        cat = CATEGORY[outcome]
        if outcome == "silent-inf" and c.inf_ok:
            cat = "handled"  # an exact, documented infinity
        counts[cat] += 1
        ok = outcome in c.allowed
        policy["pass" if ok else "fail"] += 1
        if not ok:
            per_entry_fail[c.entry] += 1
            lines.append(f"  {cat:8s} {c.id}: {detail}")
    seconds = time.perf_counter() - start
    entries = {c.entry for c in fuzz.CASES}
    print(f"dynmem {dm.__version__} from {os.path.dirname(dm.__file__)}")
    print(f"{len(entries)} entry points, {len(fuzz.CASES)} inputs, {seconds:.1f} s")
    for cat in ("refused", "handled", "silent", "unclear", "hang"):
        print(f"  {cat:8s} {counts[cat]}")
    print(f"policy: {policy['pass']} pass, {policy['fail']} fail")
    if "--list" in argv:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
