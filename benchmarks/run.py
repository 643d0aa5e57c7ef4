"""Run dynmem's benchmark suite: each case side by side with its peer, in one process.

Usage::

    python benchmarks/run.py [--quick] [--only NAME ...] [--repeats N] [--json PATH] [--list]

* thread pools are pinned to one thread (OMP/OpenBLAS/MKL/numba env vars set
  here, before numpy or torch is imported; ``torch.set_num_threads(1)``);
* every callable is called once first and that call is not timed (numba
  compilation / loading, torch's first-call allocations);
* the timed repeats alternate dynmem and peer (the order flips every repeat),
  with a ``gc.collect()`` before and the collector disabled during each call;
  the median over the repeats is reported (>= 5 unless ``--quick``);
* errors are measured against an independent reference computed once per case
  (untimed); see each ``bench_*.py`` for what the reference is.

Results go to a table on stdout and to JSON (``benchmarks/results/latest.json``
by default), written to a temporary file in the same directory then moved into
place with ``os.replace``.
"""

from __future__ import annotations

import os

# Must happen before numpy / numba / torch are imported anywhere.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import fnmatch  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
try:
    import dynmem  # noqa: E402,F401
except ImportError:  # a source checkout that was not installed
    sys.path.insert(1, str(REPO))
    import dynmem  # noqa: E402,F401

import numpy as np  # noqa: E402

from _common import BENCH_EXTRA_HINT, Case, import_torch  # noqa: E402

MODULES = ("bench_recurrences", "bench_gated", "bench_stack", "bench_adjoint", "bench_memory", "bench_stability", "bench_kernel",
           "bench_sweep")
DEFAULT_JSON = HERE / "results" / "latest.json"
FULL_REPEATS = 7
QUICK_REPEATS = 3


def _all_cases(quick: bool):
    import importlib

    out = []
    for mod_name in MODULES:
        mod = importlib.import_module(mod_name)
        out.extend(mod.cases(quick=quick))
    return out


def _select(cases, patterns):
    if not patterns:
        return cases
    chosen = []
    for name, group, build in cases:
        if any(p == name or p == group or fnmatch.fnmatchcase(name, p) for p in patterns):
            chosen.append((name, group, build))
    if not chosen:
        names = ", ".join(n for n, _, _ in cases)
        raise SystemExit(f"--only {' '.join(patterns)}: no case matches; cases are: {names} (groups: recurrences, gated, stack, adjoint, memory, stability, kernel, sweep)")
    return chosen


def _rusage():
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime, r.ru_stime
    except ImportError:  # pragma: no cover - not on POSIX
        return math.nan, math.nan


_CPU = {}  # id(fn) -> list of (user, sys) CPU seconds per timed call


def _time_call(fn):
    """Wall time of one call (gc collected before, disabled during); CPU user/sys times go to _CPU."""
    gc.collect()
    gc.disable()
    try:
        u0, s0 = _rusage()
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        u1, s1 = _rusage()
    finally:
        gc.enable()
    _CPU.setdefault(id(fn), []).append((u1 - u0, s1 - s0))
    return dt, out


def run_case(case: Case, repeats: int) -> dict:
    rec = dict(name=case.name, group=case.group, description=case.description, params=case.params,
               peer=case.peer_name, reference=case.reference_name, repeats=repeats)
    # Warm-up: first calls are excluded (numba compile/cache load, allocator, torch dispatch caches).
    rec["dynmem_first_call_s"], _ = _time_call(case.dynmem)
    rec["peer_first_call_s"], _ = _time_call(case.peer)
    for fn in case.also_time.values():
        _time_call(fn)
    t = time.perf_counter()
    ref = case.reference()
    rec["reference_time_s"] = time.perf_counter() - t
    _CPU.clear()
    td, tp = [], []
    ta = {k: [] for k in case.also_time}
    out_d = out_p = None
    calls = [("d", case.dynmem), ("p", case.peer)] + list(case.also_time.items())
    for r in range(repeats):
        for who, fn in calls if r % 2 == 0 else calls[::-1]:
            dt, out = _time_call(fn)
            if who == "d":
                td.append(dt)
                out_d = out
            elif who == "p":
                tp.append(dt)
                out_p = out
            else:
                ta[who].append(dt)
    rec["dynmem_times_s"] = td
    rec["peer_times_s"] = tp
    rec["dynmem_median_s"] = statistics.median(td)
    rec["peer_median_s"] = statistics.median(tp)
    rec["dynmem_min_s"] = min(td)
    rec["peer_min_s"] = min(tp)
    # CPU time split per call: a large system share means page faults (fresh memory), and
    # wall >> user + sys means the process was descheduled (a busy machine).
    for side, fn in (("dynmem", case.dynmem), ("peer", case.peer)):
        cpu = _CPU.get(id(fn), [])
        rec[f"{side}_user_s"] = [u for u, _ in cpu]
        rec[f"{side}_sys_s"] = [s for _, s in cpu]
        rec[f"{side}_sys_median_s"] = statistics.median(rec[f"{side}_sys_s"]) if cpu else None
    if ta:
        rec["also_timed"] = {k: dict(times_s=v, median_s=statistics.median(v)) for k, v in ta.items()}
    rec["speedup"] = rec["peer_median_s"] / rec["dynmem_median_s"]
    rec["dynmem_error"] = case.error(out_d, ref)
    rec["peer_error"] = case.error(out_p, ref)
    rec["accuracy_ratio"] = rec["peer_error"] / rec["dynmem_error"] if rec["dynmem_error"] > 0 else math.inf
    rec["speed_target"] = case.speed_target
    rec["speed_target_met"] = None if case.speed_target is None else bool(rec["speedup"] >= case.speed_target)
    rec["accuracy_target"] = case.accuracy_target
    rec["accuracy_target_met"] = (None if case.accuracy_target is None
                                  else bool(rec["accuracy_ratio"] >= case.accuracy_target))
    if case.extras is not None:
        rec["extras"] = case.extras(rec)
    rec["status"] = "ok"
    return rec


def _fmt_time(s):
    if s is None:
        return "-"
    if s >= 1.0:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _fmt_target(val, target, met):
    if target is None:
        return f"{val:.2f}x"
    return f"{val:.2f}x ({'>=' if met else '<'}{target:g}x)"


def format_table(records) -> str:
    header = ("case", "dynmem median", "peer median", "peer/dynmem (target)", "dynmem err", "peer err")
    rows = []
    for r in records:
        if r.get("status") != "ok":
            rows.append((r["name"], "ERROR", "", "", "", r.get("error", "")[:60]))
            continue
        rows.append((
            r["name"],
            _fmt_time(r["dynmem_median_s"]),
            _fmt_time(r["peer_median_s"]),
            _fmt_target(r["speedup"], r["speed_target"], r["speed_target_met"]),
            f"{r['dynmem_error']:.2e}",
            f"{r['peer_error']:.2e}",
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def format_notes(records) -> str:
    lines = []
    for r in records:
        if r.get("status") != "ok":
            continue
        lines.append(f"- {r['name']}: peer = {r['peer']}; reference = {r['reference']}.")
        if r.get("accuracy_target") is not None:
            lines.append(f"  accuracy peer_err/dynmem_err = {r['accuracy_ratio']:.2f}x "
                         f"(target >= {r['accuracy_target']:g}x: {'met' if r['accuracy_target_met'] else 'NOT met'})")
        ex = r.get("extras") or {}
        if "dynmem_adjoint_over_forward" in ex:
            lines.append(f"  dynmem forward solve alone {_fmt_time(ex['dynmem_forward_median_s'])}; "
                         f"adjoint/forward = {ex['dynmem_adjoint_over_forward']:.2f}x (target <= 3x); "
                         f"nfev fwd/bwd = {ex['dynmem_nfev_forward']}/{ex['dynmem_nfev_backward']}")
        for side in ("dynmem", "peer"):
            sys_s = r.get(f"{side}_sys_median_s")
            if sys_s is not None and sys_s > 0.2 * r[f"{side}_median_s"]:
                lines.append(f"  {side}: {sys_s / r[f'{side}_median_s']:.0%} of the median call is system time "
                             "(page faults on fresh temporaries)")
        if "grad_error_estimate" in ex:
            lines.append(f"  reference self-check: |g(h/2) - g_ref|/|g_ref| = {ex['grad_error_estimate']:.1e}; "
                         f"dynmem adjoint at rtol=1e-12 vs reference = {ex['dynmem_tight_vs_reference']:.1e}")
    return "\n".join(lines)


def _git_info():
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dynmem"], cwd=REPO, capture_output=True,
                               text=True, timeout=10).stdout.strip() != ""
        return dict(commit=commit or None, dynmem_dirty=dirty)
    except (OSError, subprocess.SubprocessError):
        return dict(commit=None, dynmem_dirty=None)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _versions():
    import numba
    import scipy

    v = dict(python=platform.python_version(), numpy=np.__version__, scipy=scipy.__version__,
             numba=numba.__version__, dynmem=getattr(dynmem, "__version__", None))
    for mod in ("torch", "torchdiffeq"):
        m = sys.modules.get(mod)
        v[mod] = getattr(m, "__version__", None) if m else None
    return v


def write_json_atomic(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=float, allow_nan=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes and 3 repeats (smoke run)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="case names, groups (recurrences, gated, stack, adjoint, memory, stability, kernel, sweep) or globs")
    ap.add_argument("--repeats", type=int, default=None, help=f"timed repeats per side (default {FULL_REPEATS}; "
                    f"{QUICK_REPEATS} with --quick)")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"output file (default {DEFAULT_JSON.relative_to(REPO)})")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)
    if repeats < 1:
        ap.error("--repeats must be >= 1")
    if not args.quick and repeats < 5:
        print(f"warning: {repeats} repeats; the suite's convention is a median of >= 5", file=sys.stderr)

    cases = _select(_all_cases(args.quick), args.only)
    if args.list:
        for name, group, _ in cases:
            print(f"{group:12s} {name}")
        return 0
    try:
        torch = import_torch()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    records = []
    failed = False
    for name, group, build in cases:
        print(f"[{len(records) + 1}/{len(cases)}] {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            case = build()
            rec = run_case(case, repeats)
        except ImportError as exc:
            print(f"error: {exc}\n(install the benchmark extra: {BENCH_EXTRA_HINT})", file=sys.stderr)
            return 2
        except Exception as exc:  # record and go on with the other cases
            failed = True
            traceback.print_exc()
            rec = dict(name=name, group=group, status="error", error=f"{type(exc).__name__}: {exc}")
        rec["wall_s"] = time.perf_counter() - t
        records.append(rec)
        if rec.get("status") == "ok":
            print(f"    dynmem {_fmt_time(rec['dynmem_median_s'])}, peer {_fmt_time(rec['peer_median_s'])}, "
                  f"ratio {rec['speedup']:.2f}x, errors {rec['dynmem_error']:.1e} / {rec['peer_error']:.1e} "
                  f"({rec['wall_s']:.1f} s)", file=sys.stderr, flush=True)

    payload = dict(
        suite="dynmem benchmarks",
        started_utc=started.isoformat(timespec="seconds"),
        quick=args.quick,
        repeats=repeats,
        statistic="median",
        threads=dict({v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                      "NUMBA_NUM_THREADS")},
                     torch_num_threads=torch.get_num_threads()),
        machine=dict(platform=platform.platform(), cpu=_cpu_model(), cpu_count=os.cpu_count(),
                     loadavg_start=load_start, loadavg_end=os.getloadavg() if hasattr(os, "getloadavg") else None),
        versions=_versions(),
        git=_git_info(),
        cases=records,
    )
    print()
    print(format_table(records))
    notes = format_notes(records)
    if notes:
        print()
        print(notes)
    write_json_atomic(args.json, payload)
    print(f"\nwrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
