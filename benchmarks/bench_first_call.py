"""Cold first call: what a fresh install waits for, per public entry point.

Each entry point is called in a fresh Python process with a fresh, empty
``NUMBA_CACHE_DIR``, so numba compiles every kernel the call needs (what a
user sees right after ``pip install``).  A second process then reuses that
cache directory (what every later run sees: the kernels are loaded from
disk).  For each entry point the table gives the median over ``--repeats``
such pairs of:

* ``import`` - ``import dynmem`` plus the imports the call needs;
* ``cold`` - the first call with an empty cache (compilation included), wall
  clock, and ``cold cpu``, its CPU time (compilation is single-threaded, so
  on a loaded machine the CPU time is what an idle machine's wall clock would be);
* ``cached`` - the first call in a new process whose cache is filled;
* ``warm`` - a second call in the cold process (no compilation at all);
* ``kernels`` - how many numba signatures were compiled in the cold call.

``--detail`` adds, per entry point, every compiled kernel and signature with
its compile CPU time (from numba's ``numba:compile`` events; *exclusive* time,
without the kernels it compiled on the way, which are listed on their own).

The calls are those of ``dynmem warmup`` (small sizes: compilation dominates).
One BLAS/numba thread in every child.  Compile times depend on the load of
the machine: read the medians, and compare trees in one run of the script::

    python benchmarks/bench_first_call.py [--repeats 3] [--root PATH] [--baseline PATH] [--only NAME ...]
                                          [--all] [--detail] [--json PATH]

``--root`` runs the children against another checkout (``PYTHONPATH=PATH``);
``--baseline PATH`` measures a second checkout (e.g. ``git archive`` of an
earlier commit) in turns with it, so that before and after see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: name -> (setup code defining ``call``; the entry point is the one the name says)
CALLS = {
    "simulate": """
from dynmem.simulate import simulate
from dynmem.models import CTRNN
from dynmem.inputs import PiecewiseConstant
model = CTRNN.random(4, 2, spectral_abscissa=-0.5, rng=0)
x = PiecewiseConstant([0, 1, 2], [[1.0, 0.0], [0.0, -1.0]])
t = np.linspace(0, 2, 5)
def call():
    return simulate(model, x, t).y
""",
    "adjoint_gradient": """
from dynmem.adjoint import adjoint_gradient
from dynmem.models import CTRNN
from dynmem.inputs import PiecewiseConstant
model = CTRNN.random(4, 2, spectral_abscissa=-0.5, rng=0)
x = PiecewiseConstant([0, 1, 2], [[1.0, 0.0], [0.0, -1.0]])
def call():
    return adjoint_gradient(model, x, [1.0, 2.0], [0.1, 0.0])
""",
    "value_and_grad": """
from dynmem.recurrences import value_and_grad
from dynmem.models import CTRNN
model = CTRNN.random(4, 2, spectral_abscissa=-0.5, rng=0).discretize(0.1)
X = np.zeros((1, 8, 2))
Y = np.zeros((1, 8))
def call():
    return value_and_grad(model, X, Y)
""",
    "gated_forward": """
from dynmem.gated import GRUCell, gated_forward
model = GRUCell.random(4, 2, rng=0)
X = np.zeros((1, 8, 2))
def call():
    return gated_forward(model, X)
""",
    "memory_function": """
from dynmem.memory import memory_function
from dynmem.models import CTRNN
model = CTRNN.random(4, 1, rng=1)
t = np.linspace(0, 5, 11)
def call():
    return memory_function(model, t)
""",
    # not in the list: the paths of the discrete models, for the kernels owned outside the ODE engine
    "memory_function[DiscreteRNN]": """
from dynmem.memory import memory_function
from dynmem.models import DiscreteRNN
rng = np.random.default_rng(1)
model = DiscreteRNN(0.3 * rng.standard_normal((4, 4)), rng.standard_normal((4, 1)), np.zeros(4), rng.standard_normal(4))
t = np.arange(11.0)
def call():
    return memory_function(model, t)
""",
    "memory_function[LinearRNN]": """
from dynmem.memory import memory_function
from dynmem.models import LinearRNN
rng = np.random.default_rng(1)
model = LinearRNN(-np.eye(4) + 0.3 * rng.standard_normal((4, 4)), rng.standard_normal((4, 2)), rng.standard_normal(4))
t = np.linspace(0, 5, 11)
def call():
    return memory_function(model, t)
""",
    "gated_value_and_grad[LSTM]": """
from dynmem.gated import LSTMCell, gated_value_and_grad
model = LSTMCell.random(4, 2, rng=0)
X = np.zeros((1, 8, 2))
Y = np.zeros((1, 8))
def call():
    return gated_value_and_grad(model, X, Y)
""",
}

DEFAULT = ("simulate", "adjoint_gradient", "value_and_grad", "gated_forward", "memory_function")

_CHILD = r'''
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import dynmem
from numba.core import event
SETUP
t_import = time.perf_counter() - t0

starts, spans = {}, []
class _Listener(event.Listener):
    def on_start(self, ev):
        starts[id(ev.data)] = (time.process_time(), ev.data)
    def on_end(self, ev):
        t1 = time.process_time()
        s, data = starts.pop(id(ev.data))
        disp = data["dispatcher"]
        spans.append((s, t1, f"{disp.py_func.__module__}.{disp.py_func.__qualname__}", str(data["args"])))

with event.install_listener("numba:compile", _Listener()):
    t0, c0 = time.perf_counter(), time.process_time()
    call()
    t_first, c_first = time.perf_counter() - t0, time.process_time() - c0
t0 = time.perf_counter()
call()
t_second = time.perf_counter() - t0
# exclusive time of each compile: its span minus the spans nested directly inside it
spans.sort()
rows = []
for i, (s, e, name, args) in enumerate(spans):
    inner = [(s2, e2) for (s2, e2, _, _) in spans if s < s2 and e2 <= e]
    top = [(a, b) for (a, b) in inner if not any(c < a and b <= d for (c, d) in inner)]
    rows.append([name, args, e - s, (e - s) - sum(b - a for a, b in top)])
print("RESULT " + json.dumps({"import": t_import, "first": t_first, "first_cpu": c_first, "second": t_second, "compiles": rows}))
'''


def _child(name: str, cache: str, root: Path) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    env["NUMBA_CACHE_DIR"] = cache
    env["PYTHONPATH"] = str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["DYNMEM_COMPILE_NOTICE"] = "0"
    code = _CHILD.replace("SETUP", CALLS[name])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise RuntimeError(f"{name}: the child failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _pair(name: str, root: Path) -> tuple[dict, dict]:
    cache = tempfile.mkdtemp(prefix="dynmem-numba-cache-")
    try:
        return _child(name, cache, root), _child(name, cache, root)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def measure(name: str, repeats: int, roots: list) -> list:
    """Cold and cached first calls of one entry point for each checkout in ``roots``, ``repeats`` times each.

    The checkouts take turns within each repeat (fresh cache directories
    every time), so a change in the machine's load falls on all of them.
    """
    runs = {str(r): ([], []) for r in roots}
    for i in range(repeats):
        for root in (roots if i % 2 == 0 else roots[::-1]):
            cold, cached = _pair(name, root)
            runs[str(root)][0].append(cold)
            runs[str(root)][1].append(cached)
    return [_summary(name, str(r), *runs[str(r)]) for r in roots]


def _summary(name: str, root: str, cold: list, cached: list) -> dict:
    med = statistics.median
    return {
        "name": name,
        "root": root,
        "import": med(r["import"] for r in cold),
        "cold": med(r["first"] for r in cold),
        "cold_samples": [r["first"] for r in cold],
        "cold_cpu": med(r["first_cpu"] for r in cold),
        "cold_cpu_samples": [r["first_cpu"] for r in cold],
        "cached": med(r["first"] for r in cached),
        "warm": med(r["second"] for r in cold),
        "kernels": len(cold[0]["compiles"]),
        "compiles": cold[len(cold) // 2]["compiles"],
        "cached_compiles": len(cached[0]["compiles"]),
    }


def _print_row(label: str, r: dict, detail: bool) -> None:
    samples = ", ".join(f"{s:.2f}" for s in r["cold_samples"])
    print(f"{label:<36s} {r['import']:6.2f}s {r['cold']:6.2f}s {r['cold_cpu']:7.2f}s {r['cached']:6.2f}s "
          f"{1e3 * r['warm']:7.2f}ms {r['kernels']:8d}   [{samples}]", flush=True)
    if r["cached_compiles"]:
        print(f"    (the cached process still compiled {r['cached_compiles']} signatures: not cacheable)")
    if detail:
        for mod_name, sig, incl, excl in sorted(r["compiles"], key=lambda row: -row[3]):
            print(f"    {excl:6.2f}s excl {incl:6.2f}s incl  {mod_name}{sig}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=REPO, help="checkout whose dynmem the children import")
    parser.add_argument("--baseline", type=Path, help="a second checkout measured alike, in turns (before/after)")
    parser.add_argument("--only", nargs="+", choices=sorted(CALLS), help=f"entry points (default: {', '.join(DEFAULT)})")
    parser.add_argument("--all", action="store_true", help="every entry point in the list, the extra rows too")
    parser.add_argument("--detail", action="store_true", help="list the compiled kernels and their compile times")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    names = args.only or (sorted(CALLS, key=list(CALLS).index) if args.all else DEFAULT)
    roots = [args.baseline, args.root] if args.baseline else [args.root]
    print(f"cold first calls: fresh process, fresh NUMBA_CACHE_DIR; median of {args.repeats}; dynmem from "
          f"{' and '.join(map(str, roots))}")
    print(f"{'entry point':<36s} {'import':>7s} {'cold':>7s} {'cold cpu':>8s} {'cached':>7s} {'warm':>9s} {'kernels':>8s}"
          f"   cold samples (wall)")
    results = []
    for name in names:
        for r in measure(name, args.repeats, roots):
            results.append(r)
            _print_row(name if len(roots) == 1 else f"{name} ({'before' if r['root'] == str(roots[0]) else 'after'})",
                       r, args.detail)
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"root": str(args.root), "repeats": args.repeats, "results": results}, indent=1))
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
