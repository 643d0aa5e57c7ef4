"""A stability sweep on 2 worker processes vs the same sweep run serially.

* ``sweep_stability_16``: :func:`dynmem.sweep.run_sweep` over 16 grid points
  ``(width, seed)``, widths (48, 40, 32, 24) x seeds (0..3); each task draws
  a tanh :class:`~dynmem.models.DiscreteRNN` (spectral radius 0.9) and 32
  white-noise test sequences of T = 100 steps from the task's ``rng`` and
  computes one perturbation curve (21 betas x 30 block-spectral
  perturbations, test MSE on the power-law target ``(t + 1)^{-1.5}``), about
  1 s of work per task on one thread.

  - dynmem: ``run_sweep(..., workers=2)`` (a fresh
    ``ProcessPoolExecutor(2)`` per call, its start-up included, a fresh
    store per call so nothing is skipped).
  - peer: the same sweep with the default executor (one task after another
    in this process).
  - reference: the serial sweep computed once (untimed); error = the largest
    absolute difference of the concatenated sample errors, which is 0 when
    the results are bit-identical (the tasks are seeded from their grid
    points, not from the executor).
  - The grid lists the widest (slowest) tasks first, so the pool's queue
    hands out long tasks before short ones and the two workers finish
    together (longest-processing-time order).

Issue 7 target: speed-up >= 1.7x on 2 cores.  On a shared machine the ratio
measures how many cores were free: the record's extras give the workers' CPU
seconds per wall second (2.0 = both cores all the time).  The task is
page-fault heavy (``perturbation_curve`` allocates a fresh trajectory per
perturbed model; a third to a half of its time is system time on a VM), so the
serial side's time depends on the allocator's state: a serial call that
follows another with the collector disabled (the suite runner's timing loop)
can skip most faults and run about 1.4x faster than one after a pool run or
with the collector on.  Run with one BLAS thread
(``OMP_NUM_THREADS=1``; ``benchmarks/run.py`` sets it, and so does running
this file directly: ``python benchmarks/bench_sweep.py [--quick] [--repeats N]``).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before numpy is imported: one thread per process, as benchmarks/run.py does
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                 "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[_var] = "1"

import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import dynmem  # noqa: E402
from dynmem.stability import perturbation_curve  # noqa: E402
from dynmem.sweep import Grid, load_sweep, run_sweep  # noqa: E402
from dynmem.targets import PowerLawKernel  # noqa: E402

from _common import Case  # noqa: E402


def curve_task(width, seed, *, rng, n_betas, n_samples, T, batch):
    """One sweep task: a random tanh RNN's perturbation curve (module level, so it pickles)."""
    model = dynmem.DiscreteRNN.random(width, 1, spectral_radius=0.9, rng=rng)
    X = rng.standard_normal((batch, T, 1))
    betas = np.geomspace(1e-3, 1.0, n_betas)
    c = perturbation_curve(model, PowerLawKernel(1.5), betas, n_samples=n_samples, error="test", X_test=X, dt=1.0,
                           adversarial=False, rng=rng)
    return {"sample_errors": c.sample_errors, "max_error": c.max_error, "error0": c.error0}


def _settings(quick: bool):
    if quick:
        return (16, 12, 8, 4), dict(n_betas=11, n_samples=10, T=100, batch=16)
    return (48, 40, 32, 24), dict(n_betas=21, n_samples=30, T=100, batch=32)


def _children_cpu() -> float:
    """User + system CPU seconds of this process's reaped children (the pool's workers)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _extras(pool_calls) -> dict:
    """How busy the two workers were: CPU seconds per wall second (2.0 = both cores all the time)."""
    import statistics

    busy = [cpu / wall for wall, cpu in pool_calls if wall > 0]
    return {"workers_cpu_per_wall": busy, "workers_cpu_per_wall_median": statistics.median(busy) if busy else None,
            "loadavg_end": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _case(quick: bool):
    import functools

    widths, kw = _settings(quick)
    grid = Grid.product(width=list(widths), seed=[0, 1, 2, 3])
    fn = functools.partial(curve_task, **kw)

    pool_calls = []  # (wall s, CPU s of the worker processes) per 2-worker call

    def sweep(**executor):
        folder = tempfile.mkdtemp(prefix="dynmem-bench-sweep-")
        c0, t0 = _children_cpu(), time.perf_counter()
        try:
            run = run_sweep(fn, grid, os.path.join(folder, "store"), seed=7, **executor)
            if executor:  # the pool is shut down (its workers reaped) when run_sweep returns
                pool_calls.append((time.perf_counter() - t0, _children_cpu() - c0))
            if not run.complete:
                raise RuntimeError(f"the benchmark sweep did not complete: {run}")
            table = load_sweep(run.store)
            return np.concatenate([r.result["sample_errors"].ravel() for r in table.records])
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def max_abs(x, ref):
        return float(np.max(np.abs(np.asarray(x) - np.asarray(ref))))

    return Case(
        name=f"sweep_stability_{len(grid)}", group="sweep",
        description=(f"{len(grid)}-task stability sweep (widths {list(widths)} x 4 seeds, perturbation curve of "
                     f"{kw['n_betas']} betas x {kw['n_samples']} perturbations each): 2 worker processes vs serial"),
        params=dict(n_tasks=len(grid), widths=list(widths), seeds=4, workers=2, **kw),
        dynmem=lambda: sweep(workers=2), peer=lambda: sweep(), reference=lambda: sweep(), error=max_abs,
        peer_name="the same sweep, serial (run_sweep with the default executor)",
        reference_name="serial sweep, computed once (max absolute difference; 0 = bit-identical)",
        speed_target=1.7,
        extras=lambda rec: _extras(pool_calls),
        notes=["the pool is started inside the timed call (a fresh ProcessPoolExecutor per run)",
               "ratio = serial time / 2-worker time; 2.0 is the ceiling on 2 cores"],
    )


def cases(quick: bool = False):
    return [("sweep_stability", "sweep", lambda: _case(quick))]


def main(argv=None) -> int:
    """Run this benchmark alone (the suite runner's timing loop), print the table and the repeats."""
    import argparse

    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from run import format_notes, format_table, run_case

    ap = argparse.ArgumentParser(description="2-worker vs serial stability sweep")
    ap.add_argument("--quick", action="store_true", help="smaller tasks (smoke run)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per side (default 5)")
    ap.add_argument("--json", help="also write the record as JSON to this path")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1; got {args.repeats}")
    rec = run_case(_case(args.quick), args.repeats)
    print(format_table([rec]))
    notes = format_notes([rec])
    if notes:
        print(notes)
    print(f"serial (peer) times:   {', '.join(f'{t:.2f}' for t in rec['peer_times_s'])} s")
    print(f"2 workers times:       {', '.join(f'{t:.2f}' for t in rec['dynmem_times_s'])} s")
    print(f"speed-up (median):     {rec['speedup']:.2f}x (target {rec['speed_target']}x); "
          f"max |difference| to serial: {rec['dynmem_error']:.1e}")
    ex = rec.get("extras") or {}
    if ex.get("workers_cpu_per_wall_median") is not None:
        print(f"workers' CPU / wall:   {ex['workers_cpu_per_wall_median']:.2f} (median; 2.00 = two free cores), "
              f"load average at the end {ex['loadavg_end']}")
    if args.json:
        from dynmem.io import atomic_write_json

        atomic_write_json(args.json, rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
