"""Forward CTRNN solve: dynmem's scipy RK45 path vs the compiled dopri5 of dynmem.ode.

A last section adds torchdiffeq (dopri5, odeint / odeint_adjoint with jump_t), the nonlinear
memory_function case of the issue and train_ctrnn, default method vs RK45.

The problem of issue 13 and ``bench_adjoint.py`` (``make_problem``)::

    dh/dt = tanh(W h + U x(t) + b), h(0) = 0, m = 32, d = 4, T = 10,
    x piecewise constant on 20 pieces (20 input knots), 20 observation times.

Both sides use the same Dormand-Prince 5(4) pair and scipy's step-size
controls at ``rtol = atol`` in {1e-6, 1e-8, 1e-10}; ``simulate(method="RK45")``
calls ``solve_ivp`` knot to knot from Python, ``simulate(method="dopri5")``
runs the whole solve in one numba call.  Error: norm-wise relative error of
``y(t_obs)`` against scipy DOP853 at ``rtol = 1e-13, atol = 1e-15``.
The adjoint rows time the loss gradient, ``dynmem.adjoint_gradient`` (scipy
RK45, the Python adjoint) vs ``dynmem.ode.ctrnn_loss_gradient`` (compiled),
error of the flat gradient against ``adjoint_gradient(method="DOP853",
rtol=atol=1e-12)``, and the compiled adjoint's cost over its forward solve.
A last row solves a batch of 16 input sequences in one call (a compiled solve per sequence).

One thread (set below, before numpy/numba are imported); every callable is
run once untimed first (numba cache load / compile), then the two sides are
timed alternately, the order flipping on every repeat, and the median is
reported.  By default ``gc.collect()`` runs before every timed call (the
protocol of ``run.py``); on this machine a collection takes ~50 ms and leaves
the caches cold, which adds ~0.2-0.35 ms to a 0.2 ms compiled solve (measured,
issue 13 third round), so ``--warm`` collects once per comparison instead
(the collector stays disabled during every timed call either way).
Standalone (no torch needed)::

    python benchmarks/bench_odeint.py [--repeats N] [--warm] [--no-torch] [--unset-openblas-tuning]

With diffrax installed (the ``bench`` extra) it adds diffrax Tsit5 rows: forward
solve and loss gradient (its default RecursiveCheckpointAdjoint) at equal rtol
and at equal achieved error, compile time reported apart.

The pairs section (issue 13, fourth round; ``--pairs-only`` runs just it) times
``simulate`` with each compiled pair, ``"dopri5"``, ``"tsit5"`` and
``"dop853"``, next to diffrax Tsit5's forward solve on a grid of rtol = atol,
at equal rtol and at equal achieved error (for each error level: the cheapest
run of each solver at least that accurate), and the compiled adjoint
(``ctrnn_loss_gradient``) with dopri5 and tsit5 the same way.
"""

from __future__ import annotations

import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if "--unset-openblas-tuning" in sys.argv:
    # this process only: compare against the machine's OPENBLAS_CORETYPE/L2_SIZE settings
    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ.pop("OPENBLAS_L2_SIZE", None)

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dynmem  # noqa: E402
from bench_adjoint import make_problem  # noqa: E402
from dynmem.ode import ctrnn_loss_gradient, solve_ctrnn  # noqa: E402

RTOLS = (1e-6, 1e-8, 1e-10)
N_BATCH = 16


_COLLECT_EACH_CALL = True  # --warm: collect once per race instead (see _race)


def _timed(fn):
    if _COLLECT_EACH_CALL:
        gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out
    finally:
        gc.enable()


def _race(fns: dict, repeats: int) -> dict:
    for fn in fns.values():
        fn()  # warm-up: numba cache load, first-touch allocations
    if not _COLLECT_EACH_CALL:
        gc.collect()
    samples = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in names if r % 2 == 0 else names[::-1]:
            samples[k].append(_timed(fns[k])[0])
    return {k: statistics.median(v) for k, v in samples.items()}


def _flat(r):
    return np.concatenate([r.dW.ravel(), r.dU.ravel(), r.db, r.dc])


def _rel(y, ref):
    return float(np.linalg.norm(np.asarray(y) - ref) / np.linalg.norm(ref))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--unset-openblas-tuning", action="store_true",
                    help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in this process")
    ap.add_argument("--warm", action="store_true",
                    help="gc.collect() once per comparison instead of before every timed call (warm caches)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torchdiffeq and train_ctrnn rows")
    ap.add_argument("--pairs-only", action="store_true", help="run only the section of the compiled pairs")
    args = ap.parse_args(argv)
    global _COLLECT_EACH_CALL
    _COLLECT_EACH_CALL = not args.warm
    model, x, t_obs, _ = make_problem(0)
    ref = dynmem.simulate(model, x, t_obs, method="DOP853", rtol=1e-13, atol=1e-15).y
    print(f"m={model.hidden} d={model.inputs} T={x.t_end} knots={x.knots.size - 2} inner, obs={t_obs.size}; "
          f"repeats={args.repeats}; load average {os.getloadavg()[0]:.2f} (2 shared cores: timings are noisy); "
          f"{'warm: one gc.collect() per comparison' if args.warm else 'cold: gc.collect() before every timed call'}")
    if args.pairs_only:
        _, _, _, y_obs = make_problem(0)
        gref = dynmem.adjoint_gradient(model, x, t_obs, y_obs, method="DOP853", rtol=1e-12, atol=1e-12).flat
        _pairs_rows(model, x, t_obs, y_obs, ref, gref, args.repeats)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
        return 0
    print(f"{'rtol=atol':>9} | {'RK45 (scipy)':>12} {'err':>8} {'nfev':>5} | {'dopri5':>9} {'err':>8} {'nfev':>5} | ratio")
    for rtol in RTOLS:
        fns = {
            "RK45": lambda: dynmem.simulate(model, x, t_obs, method="RK45", rtol=rtol, atol=rtol),
            "dopri5": lambda: dynmem.simulate(model, x, t_obs, method="dopri5", rtol=rtol, atol=rtol),
        }
        med = _race(fns, args.repeats)
        a, b = fns["RK45"](), fns["dopri5"]()
        print(f"{rtol:9.0e} | {med['RK45'] * 1e3:9.2f} ms {_rel(a.y, ref):8.1e} {a.nfev:5d} | "
              f"{med['dopri5'] * 1e3:6.3f} ms {_rel(b.y, ref):8.1e} {b.nfev:5d} | {med['RK45'] / med['dopri5']:5.1f}x")
    # loss gradient: scipy-based continuous adjoint vs the compiled one
    _, _, _, y_obs = make_problem(0)
    gref = dynmem.adjoint_gradient(model, x, t_obs, y_obs, method="DOP853", rtol=1e-12, atol=1e-12).flat
    print(f"{'adjoint':>9} | {'RK45 (scipy)':>12} {'err':>8} | {'dopri5':>9} {'err':>8} | ratio | dopri5 adjoint/forward")
    fwd = {}
    for rtol in RTOLS:
        fns = {
            "RK45": lambda: dynmem.adjoint_gradient(model, x, t_obs, y_obs, method="RK45", rtol=rtol,
                                                    atol=rtol).flat,
            "dopri5": lambda: _flat(ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=rtol, atol=rtol)),
            "forward": lambda: solve_ctrnn(model, x, t_obs, rtol=rtol, atol=rtol).h,
        }
        med = _race(fns, args.repeats)
        fwd[rtol] = med["forward"]
        print(f"{rtol:9.0e} | {med['RK45'] * 1e3:9.2f} ms {_rel(fns['RK45'](), gref):8.1e} | "
              f"{med['dopri5'] * 1e3:6.3f} ms {_rel(fns['dopri5'](), gref):8.1e} | {med['RK45'] / med['dopri5']:5.1f}x | "
              f"{med['dopri5'] / med['forward']:.2f}")
    _diffrax_rows(model, x, t_obs, y_obs, ref, gref, args.repeats)
    if not args.no_torch:
        _torchdiffeq_rows(model, x, t_obs, y_obs, ref, gref, max(3, args.repeats // 3))
    _memory_row(args.repeats)
    if not args.no_torch:
        _train_row(model, x, t_obs, y_obs)
    # a batch of sequences in one call (one compiled solve per sequence) vs one call per sequence
    rng = np.random.default_rng(11)
    paths = [dynmem.PiecewiseConstant(x.knots, rng.standard_normal((x.knots.size - 1, model.inputs)))
             for _ in range(N_BATCH)]
    rtol = 1e-8
    fns = {
        "loop": lambda: [solve_ctrnn(model, p, t_obs, rtol=rtol, atol=rtol).h[0] for p in paths],
        "batch": lambda: solve_ctrnn(model, paths, t_obs, rtol=rtol, atol=rtol).h,
    }
    med = _race(fns, args.repeats)
    print(f"batch of {N_BATCH} at rtol=1e-8: one call {med['batch'] * 1e3:.2f} ms "
          f"({med['batch'] / N_BATCH * 1e3:.3f} ms/sequence) vs {N_BATCH} calls {med['loop'] * 1e3:.2f} ms")
    _pairs_rows(model, x, t_obs, y_obs, ref, gref, args.repeats)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


# half-decade grid: at equal achieved error a decade grid would charge a solver whose error at some rtol
# is a little above dopri5's with the next decade (the pairs' errors at equal rtol differ by < 2x)
PAIR_RTOLS = tuple(float(f"{10.0 ** e:.1e}") for e in np.arange(-5.0, -12.01, -0.5))
PAIRS = ("dopri5", "tsit5", "dop853")


def _diffrax_tsit5_forward(model, x, t_obs):
    """``make(rtol)`` -> jitted diffrax Tsit5 forward solve returning y(t_obs) (as in _diffrax_rows), or None."""
    try:
        import jax
        import jax.numpy as jnp
        import diffrax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    knots, vals, leak, ts, m = jnp.asarray(x.knots), jnp.asarray(x.values), float(model.leak), jnp.asarray(t_obs), model.hidden
    W, U, b, c = (jnp.asarray(a) for a in (model.W, model.U, model.b, model.c))

    def field(t, h, args):
        k = jnp.clip(jnp.searchsorted(knots, t, side="right") - 1, 0, vals.shape[0] - 1)
        return jnp.tanh(W @ h + U @ vals[k] + b) - leak * h

    term = diffrax.ODETerm(field)

    def make(rtol):
        try:
            ctrl = diffrax.ClipStepSizeController(diffrax.PIDController(rtol=rtol, atol=rtol), jump_ts=knots)
        except AttributeError:
            ctrl = diffrax.PIDController(rtol=rtol, atol=rtol, jump_ts=knots)

        @jax.jit
        def outputs():
            sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, float(t_obs[-1]), None, jnp.zeros(m),
                                      saveat=diffrax.SaveAt(ts=ts), stepsize_controller=ctrl, max_steps=100_000)
            return sol.ys @ c

        return lambda: np.asarray(jax.block_until_ready(outputs()))

    return make


def _equal_error_table(rows, names, targets):
    # for each error level (dopri5's error at a target rtol): the cheapest run of each solver that accurate
    print(f"  equal achieved error: cheapest run of each solver with error <= dopri5's at that rtol (ms; rtol)")
    print(f"  {'dopri5 rtol':>11} {'err':>8} | " + " | ".join(f"{n:>17}" for n in names) + " | best/dopri5")
    for rt in targets:
        target = rows[rt]["dopri5"][1]
        cells, best = [], {}
        for n in names:
            ok = [(rows[r][n][0], r) for r in rows if n in rows[r] and rows[r][n][1] <= target]
            if ok:
                tb, rb = min(ok)
                best[n] = tb
                cells.append(f"{tb * 1e3:7.3f} ({rb:7.1e})")
            else:
                cells.append(f"{'-':>17}")
        d = best.get("dopri5")
        ratio = " ".join(f"{n}:{d / best[n]:.2f}x" for n in names if n != "dopri5" and n in best and d)
        print(f"  {rt:11.1e} {target:8.1e} | " + " | ".join(cells) + f" | {ratio}")
    # the same levels on the interpolated work-precision curves (less lumpy than the cheapest grid run)
    print("  interpolated (log time vs log error, each solver's lower envelope): dopri5 time / solver time")
    for rt in targets:
        target = rows[rt]["dopri5"][1]
        tim = {n: _time_at_error(rows, n, target) for n in names}
        cells = " ".join(f"{n}:{tim['dopri5'] / tim[n]:.2f}x" if tim[n] else f"{n}:-" for n in names if n != "dopri5")
        print(f"  {rt:11.1e} {target:8.1e} | dopri5 {tim['dopri5'] * 1e3:.3f} ms | {cells}")


def _time_at_error(rows, name, target):
    # time on the lower envelope (fastest run at least as accurate) of one solver, log-log interpolated at `target`
    pts = sorted((rows[r][name][1], rows[r][name][0]) for r in rows if name in rows[r])
    err = np.log([p[0] for p in pts])
    env = np.log(np.minimum.accumulate([p[1] for p in pts]))  # fastest among the runs with error <= this one's
    lt = np.log(target)
    if not (err[0] <= lt <= err[-1]):
        return None
    return float(np.exp(np.interp(lt, err, env)))


def _pairs_rows(model, x, t_obs, y_obs, ref, gref, repeats):
    """simulate with the compiled dopri5 / tsit5 / dop853 next to diffrax Tsit5 (forward), and the compiled
    adjoint with dopri5 / tsit5; equal rtol and equal achieved error."""
    make_dfx = _diffrax_tsit5_forward(model, x, t_obs)
    rows = {}
    compile_s = []
    for rtol in PAIR_RTOLS:
        fns = {meth: (lambda meth=meth: dynmem.simulate(model, x, t_obs, method=meth, rtol=rtol, atol=rtol))
               for meth in PAIRS}
        if make_dfx is not None:
            t = time.perf_counter()
            dfx = make_dfx(rtol)
            dfx()
            compile_s.append(time.perf_counter() - t)
            fns["diffrax"] = dfx
        med = _race(fns, repeats)
        row = {}
        for k, fn in fns.items():
            out = fn()
            y = out if k == "diffrax" else out.y
            row[k] = (med[k], _rel(y, ref), 0 if k == "diffrax" else out.nfev)
        rows[rtol] = row
    names = list(PAIRS) + (["diffrax"] if make_dfx is not None else [])
    print("compiled pairs, simulate (forward), equal rtol=atol: median ms (rel. error of y vs DOP853 rtol 1e-13, "
          "nfev)" + (f"; diffrax Tsit5 jit compile {min(compile_s):.2f}-{max(compile_s):.2f} s apart" if compile_s else ""))
    print(f"{'rtol':>7} | " + " | ".join(f"{n:>26}" for n in names) + " | tsit5/dopri5 dop853/dopri5 time")
    for rtol, row in rows.items():
        cells = [f"{row[n][0] * 1e3:7.3f} ({row[n][1]:7.1e}, {row[n][2]:5d})" for n in names]
        print(f"{rtol:7.1e} | " + " | ".join(cells) +
              f" | {row['tsit5'][0] / row['dopri5'][0]:.2f} {row['dop853'][0] / row['dopri5'][0]:.2f}")
    _equal_error_table(rows, names, (1e-6, 1e-8, 1e-10, 1e-12))
    # the compiled adjoint with the two 5(4) pairs
    grows = {}
    for rtol in PAIR_RTOLS[:-2]:
        fns = {meth: (lambda meth=meth: _flat(ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=rtol, atol=rtol,
                                                                  method=meth)))
               for meth in ("dopri5", "tsit5")}
        med = _race(fns, repeats)
        grows[rtol] = {k: (med[k], _rel(fn(), gref), 0) for k, fn in fns.items()}
    print("compiled adjoint (ctrnn_loss_gradient), equal rtol=atol: median ms (rel. error of the flat gradient vs "
          "adjoint_gradient DOP853 rtol 1e-12)")
    for rtol, row in grows.items():
        print(f"{rtol:7.1e} | dopri5 {row['dopri5'][0] * 1e3:7.3f} ({row['dopri5'][1]:7.1e}) | tsit5 "
              f"{row['tsit5'][0] * 1e3:7.3f} ({row['tsit5'][1]:7.1e}) | tsit5/dopri5 {row['tsit5'][0] / row['dopri5'][0]:.2f}")
    _equal_error_table(grows, ["dopri5", "tsit5"], (1e-6, 1e-8, 1e-10))
    _memory_pairs_row(repeats)


def _memory_pairs_row(repeats):
    """memory_function (tanh m64, 64 amplitudes x 2 directions, 1000 t; the problem of _memory_row) with each
    compiled pair; error max|dM| / max M against scipy DOP853 at rtol 1e-12."""
    from dynmem.memory import memory_function

    model = dynmem.CTRNN.random(64, 1, spectral_abscissa=-0.3, rng=1)
    t = np.linspace(0.0, 30.0, 1000)
    amps = np.geomspace(0.01, 10.0, 64)
    ref = memory_function(model, t, amplitudes=amps, method="DOP853", rtol=1e-12, atol=1e-14).values
    print("memory_function tanh m64, 128 probes, 1000 t, compiled pairs: median ms (error max|dM| / max M)")
    for rtol in (1e-6, 1e-8, 1e-10):
        fns = {meth: (lambda meth=meth: memory_function(model, t, amplitudes=amps, method=meth, rtol=rtol,
                                                        atol=rtol * 1e-2).values) for meth in PAIRS}
        med = _race(fns, max(3, repeats // 3))
        err = {k: float(np.max(np.abs(fns[k]() - ref)) / np.max(ref)) for k in fns}
        print(f"  rtol {rtol:.0e} (atol rtol/100) | " + " | ".join(f"{k} {med[k] * 1e3:6.1f} ({err[k]:.1e})" for k in PAIRS))


DIFFRAX_RTOLS = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11)


def _diffrax_rows(model, x, t_obs, y_obs, ref, gref, repeats):
    """diffrax Tsit5 (PID controller, jumps at the knots; gradient by its default
    RecursiveCheckpointAdjoint) vs dynmem's compiled dopri5, at equal rtol and at
    equal achieved error (cheapest diffrax run whose error is <= dynmem's)."""
    try:
        import jax
        import jax.numpy as jnp
        import diffrax
    except ImportError:
        print("diffrax: not installed (pip install '.[bench]'), rows skipped")
        return
    jax.config.update("jax_enable_x64", True)
    knots = jnp.asarray(x.knots)
    vals = jnp.asarray(x.values)
    leak = float(model.leak)
    ts = jnp.asarray(t_obs)
    yo = jnp.asarray(y_obs)
    m = model.hidden

    def field(t, h, args):
        W, U, b = args
        k = jnp.clip(jnp.searchsorted(knots, t, side="right") - 1, 0, vals.shape[0] - 1)
        return jnp.tanh(W @ h + U @ vals[k] + b) - leak * h

    term = diffrax.ODETerm(field)

    def controller(rtol):
        try:
            return diffrax.ClipStepSizeController(diffrax.PIDController(rtol=rtol, atol=rtol), jump_ts=knots)
        except AttributeError:
            return diffrax.PIDController(rtol=rtol, atol=rtol, jump_ts=knots)

    def make(rtol):
        ctrl = controller(rtol)

        def outputs(W, U, b, c):
            sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, float(t_obs[-1]), None, jnp.zeros(m),
                                      args=(W, U, b), saveat=diffrax.SaveAt(ts=ts), stepsize_controller=ctrl,
                                      max_steps=100_000)
            return sol.ys @ c

        def loss(p):
            return 0.5 * jnp.sum((outputs(*p) - yo) ** 2)

        return jax.jit(outputs), jax.jit(jax.grad(loss))

    params = tuple(jnp.asarray(a) for a in (model.W, model.U, model.b, model.c))
    rows = {}
    for rtol in DIFFRAX_RTOLS:
        fwd, grad = make(rtol)
        t = time.perf_counter()
        jax.block_until_ready(fwd(*params))
        cf = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(grad(params))
        cg = time.perf_counter() - t
        fns = {"fwd": lambda: jax.block_until_ready(fwd(*params)),
               "grad": lambda: jax.block_until_ready(grad(params)),
               "dm_fwd": lambda: dynmem.simulate(model, x, t_obs, method="dopri5", rtol=rtol, atol=rtol).y,
               "dm_grad": lambda: _flat(ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=rtol, atol=rtol))}
        med = _race(fns, repeats)
        e = {"fwd": _rel(np.asarray(fns["fwd"]()), ref),
             "grad": _rel(np.concatenate([np.asarray(g).ravel() for g in fns["grad"]()]), gref),
             "dm_fwd": _rel(fns["dm_fwd"](), ref), "dm_grad": _rel(fns["dm_grad"](), gref)}
        rows[rtol] = (med, e, cf, cg)
    print("diffrax Tsit5 vs dynmem dopri5 (compiled), equal rtol=atol; diffrax compile time apart")
    print(f"{'rtol':>6} | {'dfx fwd':>9} {'err':>7} | {'dm fwd':>9} {'err':>7} | {'ratio':>5} || "
          f"{'dfx grad':>9} {'err':>7} | {'dm grad':>9} {'err':>7} | {'ratio':>5} | compile fwd/grad")
    for rtol, (med, e, cf, cg) in rows.items():
        print(f"{rtol:6.0e} | {med['fwd'] * 1e3:6.3f} ms {e['fwd']:7.1e} | {med['dm_fwd'] * 1e3:6.3f} ms "
              f"{e['dm_fwd']:7.1e} | {med['fwd'] / med['dm_fwd']:5.1f}x || {med['grad'] * 1e3:6.3f} ms "
              f"{e['grad']:7.1e} | {med['dm_grad'] * 1e3:6.3f} ms {e['dm_grad']:7.1e} | "
              f"{med['grad'] / med['dm_grad']:5.1f}x | {cf:.2f} s / {cg:.2f} s")
    print("equal achieved error: cheapest diffrax run with error <= dynmem's at that rtol")
    for kind in ("fwd", "grad"):
        for rtol, (med, e, _, _) in rows.items():
            ok = [(r[0][kind], rt) for rt, r in rows.items() if r[1][kind] <= e["dm_" + kind]]
            if not ok:
                print(f"  {kind:4} dynmem rtol {rtol:.0e} (err {e['dm_' + kind]:.1e}): no diffrax run that accurate")
                continue
            tbest, rbest = min(ok)
            print(f"  {kind:4} dynmem rtol {rtol:.0e} (err {e['dm_' + kind]:.1e}) {med['dm_' + kind] * 1e3:.3f} ms"
                  f" vs diffrax rtol {rbest:.0e} {tbest * 1e3:.3f} ms: {tbest / med['dm_' + kind]:.1f}x")


TORCH_RTOLS = (1e-6, 1e-7, 1e-8, 1e-9, 1e-10)


def _torchdiffeq_rows(model, x, t_obs, y_obs, ref, gref, repeats):
    """torchdiffeq dopri5 (jump_t at the knots): odeint forward and odeint_adjoint gradient
    (seminorm adjoint, its fastest documented setting) vs dynmem's compiled dopri5."""
    try:
        import torch
        import torchdiffeq
    except ImportError:
        print("torchdiffeq: not installed (pip install '.[bench]'), rows skipped")
        return
    torch.set_num_threads(1)
    nn = torch.nn
    leak = float(model.leak)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(torch.tensor(np.array(model.W)))
            self.U = nn.Parameter(torch.tensor(np.array(model.U)))
            self.b = nn.Parameter(torch.tensor(np.array(model.b)))
            self.register_buffer("inner", torch.tensor(x.knots[1:-1], dtype=torch.float64))
            self.register_buffer("values", torch.tensor(np.array(x.values), dtype=torch.float64))

        def forward(self, t, h):
            k = torch.searchsorted(self.inner, t.reshape(1), right=True)[0]
            return torch.tanh(self.W @ h + self.U @ self.values[k] + self.b) - leak * h

    field = Field()
    c = torch.tensor(np.array(model.c), requires_grad=True)
    h0 = torch.zeros(model.hidden, dtype=torch.float64)
    ts = torch.tensor(np.concatenate([[x.t_start], t_obs]), dtype=torch.float64)
    yo = torch.tensor(np.asarray(y_obs, dtype=float))
    jump = dict(jump_t=torch.tensor(x.knots[1:-1], dtype=torch.float64))
    params = (field.W, field.U, field.b, c)

    def make(rtol):
        def fwd():
            with torch.no_grad():
                return (torchdiffeq.odeint(field, h0, ts, method="dopri5", rtol=rtol, atol=rtol, options=jump)[1:]
                        @ c).numpy()

        def grad():
            for p in params:
                p.grad = None
            hs = torchdiffeq.odeint_adjoint(field, h0, ts, method="dopri5", rtol=rtol, atol=rtol, options=jump,
                                            adjoint_options=dict(jump, norm="seminorm"))
            loss = 0.5 * torch.sum((hs[1:] @ c - yo) ** 2)
            loss.backward()
            return np.concatenate([p.grad.numpy().ravel() for p in params])

        return fwd, grad

    rows = {}
    for rtol in TORCH_RTOLS:
        fwd, grad = make(rtol)
        fns = {"fwd": fwd, "grad": grad,
               "dm_fwd": lambda: dynmem.simulate(model, x, t_obs, method="dopri5", rtol=rtol, atol=rtol).y,
               "dm_grad": lambda: _flat(ctrnn_loss_gradient(model, x, t_obs, y_obs, rtol=rtol, atol=rtol))}
        med = _race(fns, repeats)
        e = {k: _rel(fns[k](), ref if "fwd" in k else gref) for k in fns}
        rows[rtol] = (med, e)
    print(f"torchdiffeq dopri5 (odeint / odeint_adjoint seminorm, jump_t) vs dynmem dopri5, equal rtol=atol; "
          f"repeats={repeats}")
    print(f"{'rtol':>6} | {'tdq fwd':>9} {'err':>7} | {'dm fwd':>9} {'err':>7} | {'ratio':>6} || "
          f"{'tdq grad':>9} {'err':>7} | {'dm grad':>9} {'err':>7} | {'ratio':>6}")
    for rtol, (med, e) in rows.items():
        print(f"{rtol:6.0e} | {med['fwd'] * 1e3:6.2f} ms {e['fwd']:7.1e} | {med['dm_fwd'] * 1e3:6.3f} ms "
              f"{e['dm_fwd']:7.1e} | {med['fwd'] / med['dm_fwd']:5.0f}x || {med['grad'] * 1e3:6.1f} ms "
              f"{e['grad']:7.1e} | {med['dm_grad'] * 1e3:6.3f} ms {e['dm_grad']:7.1e} | "
              f"{med['grad'] / med['dm_grad']:5.0f}x")
    print("equal achieved error: cheapest torchdiffeq run with error <= dynmem's at that rtol")
    for kind in ("fwd", "grad"):
        for rtol, (med, e) in rows.items():
            ok = [(r[0][kind], rt) for rt, r in rows.items() if r[1][kind] <= e["dm_" + kind]]
            if not ok:
                print(f"  {kind:4} dynmem rtol {rtol:.0e} (err {e['dm_' + kind]:.1e}): no torchdiffeq run that accurate")
                continue
            tbest, rbest = min(ok)
            print(f"  {kind:4} dynmem rtol {rtol:.0e} (err {e['dm_' + kind]:.1e}) {med['dm_' + kind] * 1e3:.3f} ms"
                  f" vs torchdiffeq rtol {rbest:.0e} {tbest * 1e3:.2f} ms: {tbest / med['dm_' + kind]:.0f}x")


def _memory_row(repeats):
    """Nonlinear memory function, tanh m=64, d=1, 64 amplitudes x 2 directions, 1000 times (issue target < 0.1 s):
    memory_function's default (compiled, one call) vs method='RK45' (the former default: one batched solve_ivp)."""
    from dynmem.memory import memory_function

    model = dynmem.CTRNN.random(64, 1, spectral_abscissa=-0.3, rng=1)
    t = np.linspace(0.0, 30.0, 1000)
    amps = np.geomspace(0.01, 10.0, 64)
    rtol, atol = 1e-8, 1e-10
    ref = memory_function(model, t, amplitudes=amps, method="DOP853", rtol=1e-12, atol=1e-14).values
    fns = {"RK45": lambda: memory_function(model, t, amplitudes=amps, method="RK45", rtol=rtol, atol=atol).values,
           "auto": lambda: memory_function(model, t, amplitudes=amps, rtol=rtol, atol=atol).values}
    med = _race(fns, max(3, repeats // 3))
    err = {k: float(np.max(np.abs(fns[k]() - ref)) / np.max(ref)) for k in fns}
    print(f"memory_function tanh m64, 128 probes, 1000 t, rtol {rtol:g}: default (dopri5) {med['auto'] * 1e3:.1f} ms "
          f"(err {err['auto']:.1e}) vs RK45 {med['RK45'] * 1e3:.0f} ms (err {err['RK45']:.1e}): "
          f"{med['RK45'] / med['auto']:.1f}x; error vs DOP853 rtol 1e-12, max|dM| / max M")


def _train_row(model, x, t_obs, y_obs):
    """train_ctrnn, 30 L-BFGS steps at rtol 1e-8: default (compiled adjoint) vs method='RK45'."""
    from dynmem.training import train_ctrnn

    out = {}
    for meth in ("auto", "RK45"):
        t = time.perf_counter()
        res = train_ctrnn(model, x, t_obs, y_obs, steps=30, rtol=1e-8, atol=1e-8, method=meth)
        out[meth] = (time.perf_counter() - t, res)
    (ta, ra), (tr, rr) = out["auto"], out["RK45"]
    print(f"train_ctrnn 30 steps: default (dopri5) {ta:.2f} s, loss {ra.loss:.6g}, {ra.n_steps} steps vs "
          f"RK45 {tr:.2f} s, loss {rr.loss:.6g}, {rr.n_steps} steps: {tr / ta:.1f}x")


if __name__ == "__main__":
    raise SystemExit(main())
