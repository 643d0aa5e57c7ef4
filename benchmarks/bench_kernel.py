"""Empirical NTK of a dense RNN: dynmem's hand-written BPTT Jacobian vs ``torch.func``.

* ``empirical_rntk_m64``: the empirical NTK ``K = J J^T`` ([RNTK]; docs/theory.md
  section 7) of a width-64 tanh RNN in the NTK parameterisation
  ``h_t = tanh(sigma_w W h_{t-1} / sqrt(n) + sigma_u U x_t / sqrt(d) + sigma_b b)``,
  ``f = sigma_v v^T h_T / sqrt(n)``, on 64 white-noise input sequences of
  T = 100 steps, d = 1 (float64, one thread): J is 64 x 4288.

  - dynmem: :func:`dynmem.kernel.recurrent_ntk.empirical_rntk` (``method="jacobian"``):
    one numba forward/BPTT pass over all sequences, the Jacobian blocks as
    batched matrix products, then ``J @ J.T``.
  - peer: ``torch.func.vmap(torch.func.jacrev(f))`` over the sequences with the
    parameters ``(W, U, b, v)`` as arguments (the input drive ``U x_t + b`` is
    computed once per sequence outside the time loop), then the same
    ``J @ J.T``; float64, ``torch.set_num_threads(1)``.
  - reference: a plain numpy forward/backward loop, one sequence at a time,
    computed once, untimed; error = max |K - K_ref| / max |K_ref|.  The
    extras report max |K_dynmem - K_torch|.

Issue 6 target: dynmem >= 3x faster than torch.func.

Runnable on its own (``OMP_NUM_THREADS=1 python benchmarks/bench_kernel.py``)
or through ``benchmarks/run.py``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # standalone: pin the thread pools before numpy is imported
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = "1"
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import math  # noqa: E402

import numpy as np  # noqa: E402

from dynmem.kernel.recurrent_ntk import empirical_rntk, init_params  # noqa: E402

from _common import Case, import_torch  # noqa: E402

_SIG = dict(sigma_w=1.0, sigma_u=1.0, sigma_b=0.5, sigma_v=1.0)


def _reference_kernel(params, X):
    """Independent reference: numpy BPTT one sequence at a time."""
    n, d = params.U.shape
    sw, su, sb, sv = params.sigma_w / math.sqrt(n), params.sigma_u / math.sqrt(d), params.sigma_b, \
        params.sigma_v / math.sqrt(n)
    rows = []
    for x in X:
        T = x.shape[0]
        hs = [np.zeros(n)]
        for t in range(T):
            hs.append(np.tanh(sw * params.W @ hs[-1] + su * params.U @ x[t] + sb * params.b))
        gW, gU, gb = np.zeros((n, n)), np.zeros((n, d)), np.zeros(n)
        a = sv * params.v
        for t in range(T, 0, -1):
            delta = a * (1.0 - hs[t] ** 2)
            gW += sw * np.outer(delta, hs[t - 1])
            gU += su * np.outer(delta, x[t - 1])
            gb += sb * delta
            a = sw * params.W.T @ delta
        rows.append(np.concatenate([gW.ravel(), gU.ravel(), gb, sv * hs[T]]))
    J = np.array(rows)
    return J @ J.T


def _case(quick: bool):
    m, T, B, d = (32, 50, 32, 1) if quick else (64, 100, 64, 1)
    rng = np.random.default_rng(0)
    params = init_params(m, d, activation="tanh", rng=rng, **_SIG)
    X = rng.standard_normal((B, T, d))
    last = {}

    def run_dynmem():
        K = empirical_rntk(params, X, method="jacobian")
        last["dynmem"] = K
        return K.ravel()

    torch = import_torch()
    from torch.func import jacrev, vmap

    sw, su, sb, sv = (_SIG["sigma_w"] / math.sqrt(m), _SIG["sigma_u"] / math.sqrt(d), _SIG["sigma_b"],
                      _SIG["sigma_v"] / math.sqrt(m))
    tW, tU, tb, tv = (torch.from_numpy(np.array(a)) for a in (params.W, params.U, params.b, params.v))
    tX = torch.from_numpy(X)

    def f(W, U, b, v, x):
        drive = su * (x @ U.T) + sb * b  # (T, m), once per sequence
        h = torch.zeros(m, dtype=torch.float64)
        for t in range(T):
            h = torch.tanh(sw * (W @ h) + drive[t])
        return sv * torch.dot(v, h)

    jac = vmap(jacrev(f, argnums=(0, 1, 2, 3)), in_dims=(None, None, None, None, 0))

    def run_peer():
        gW, gU, gb, gv = jac(tW, tU, tb, tv, tX)
        J = torch.cat([gW.reshape(B, -1), gU.reshape(B, -1), gb, gv], dim=1)
        K = (J @ J.T).numpy()
        last["peer"] = K
        return K.ravel()

    def run_reference():
        return _reference_kernel(params, X).ravel()

    def max_rel(x, ref):
        return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))

    def extras(rec):
        diff = np.abs(last["dynmem"] - last["peer"])
        return dict(max_abs_kernel_diff_dynmem_vs_torch=float(diff.max()),
                    max_rel_kernel_diff_dynmem_vs_torch=float(diff.max() / np.abs(last["peer"]).max()),
                    kernel_max_abs=float(np.abs(last["peer"]).max()))

    return Case(
        name=f"empirical_rntk_m{m}", group="kernel",
        description=(f"empirical NTK J J^T of a tanh RNN (NTK parameterisation) m={m}, T={T}, {B} sequences, "
                     f"d={d}, {m * m + m * d + 2 * m} parameters, float64"),
        params=dict(m=m, T=T, sequences=B, d=d, parameters=m * m + m * d + 2 * m, **_SIG),
        dynmem=run_dynmem, peer=run_peer, reference=run_reference, error=max_rel,
        peer_name="torch.func vmap(jacrev) over the parameters, then J @ J.T",
        reference_name="numpy BPTT loop per sequence (max |K - K_ref| / max |K_ref|)",
        speed_target=3.0, extras=extras,
        notes=["same parameters and inputs for both; J columns ordered (W row-major, U, b, v)"],
    )


def cases(quick: bool = False):
    return [("empirical_rntk", "kernel", lambda: _case(quick))]


def main(argv=None) -> int:
    """Run this module's cases with the suite's runner (``run.run_case``) and print the table."""
    import argparse

    import run

    ap = argparse.ArgumentParser(description="dynmem empirical RNTK vs torch.func")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the records to this JSON file")
    args = ap.parse_args(argv)
    repeats = args.repeats or (run.QUICK_REPEATS if args.quick else run.FULL_REPEATS)
    records = []
    for name, _, build in cases(args.quick):
        print(f"{name} ...", file=sys.stderr, flush=True)
        records.append(run.run_case(build(), repeats))
    print(run.format_table(records))
    for r in records:
        print(f"- {r['name']}: {r['repeats']} timed repeats per side (median), "
              + ", ".join(f"{k} = {v:.3g}" for k, v in (r.get("extras") or {}).items()))
    if args.json:
        from pathlib import Path

        run.write_json_atomic(Path(args.json), dict(suite="bench_kernel", repeats=repeats, cases=records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
