"""The dynamical-systems analyses against the Python a user would write: system norms, memory capacity, Lyapunov.

All systems are float64, one thread.  The references are independent of both
sides (closed forms in the eigenbasis, a local maximisation, the controllability
rank) unless a case says otherwise.

* ``norms_h2_m{m}``: the H2 norm of a stable :class:`~dynmem.models.LinearRNN`
  (m = 32, d = 1): a random non-normal block of spectral abscissa -0.1 and a
  lightly damped mode ``-0.01 +- 1.7317 i``, mixed by a random rotation.

  - dynmem: :func:`dynmem.norms.h2_norm` (controllability Gramian from
    ``scipy.linalg.solve_continuous_lyapunov``, ``sqrt(c^T P c)``).
  - peer: ``sqrt(int_0^T |rho(t)|^2 dt)``, ``rho(t) = c^T expm(W t) U`` with
    one ``scipy.linalg.expm`` per point of a 4001-point grid on
    ``[0, T]``, ``T = 40 / |alpha(W)|`` (e^{-80}, below rounding),
    Simpson's rule.
  - reference: the modal closed form ``int |rho|^2 = sum_ij a_i conj(a_j) /
    -(lambda_i + conj(lambda_j))``, ``a = (V^T c) * (V^{-1} U)``.
* ``norms_hinf_m{m}``: the H-infinity norm of the same system.

  - dynmem: :func:`dynmem.norms.hinf_norm` (Hamiltonian bisection, rtol 1e-10).
  - peer: the largest ``|c^T (i omega - W)^{-1} U|`` on a dense sweep, 0 and
    4000 log-spaced omega in [1e-3, 1e3] (one LU solve per point).
  - reference: the sweep's best point refined by ``scipy.optimize.minimize_scalar``
    (bounded, xatol 1e-14) on the neighbouring grid interval.
* ``norms_hankel_m{m}``: the Hankel singular values.

  - dynmem: :func:`dynmem.norms.hankel_singular_values`.
  - peer: both Gramians from their definition by quadrature,
    ``P = int e^{W t} U U^T e^{W^T t} dt`` and ``Q = int e^{W^T t} c c^T e^{W t} dt``
    (``expm`` per point of the same grid, Simpson), then ``sqrt(eig(P Q))``.
  - reference: the modal closed-form Gramians
    (``P = V [(V^{-1} U)(V^{-1} U)^* / -(lambda_i + conj(lambda_j))] V^*``), then
    ``sqrt(eig(P Q))``; error = the largest relative error of the values above
    ``1e-4 * sigma_1`` (those both a quadrature and the modal reference resolve).
* ``capacity_m{m}``: the total memory capacity of a linear
  :class:`~dynmem.models.DiscreteRNN` (identity activation, spectral radius
  0.95, m = 32).

  - dynmem: :func:`dynmem.capacity.linear_memory_capacity` (exact).
  - peer: :func:`dynmem.capacity.memory_capacity`, the regression estimate
    ([JAE]) a user would run: N = 20000 samples, delays to 2 m.
  - reference: the rank of the Kalman controllability matrix, m for this generic
    system; error = ``|total - m| / m``.
* ``lyapunov_m64_full`` and ``lyapunov_m256_k16``: the Lyapunov spectrum of a
  random CTRNN ``dh/dt = tanh(W h) - h``, ``W = 3 J / sqrt(m)`` (chaotic), one
  trajectory, ``t_end`` 20 after a transient of 5, re-orthonormalised every 1,
  rtol 1e-8, atol 1e-10.

  - dynmem: :func:`dynmem.lyapunov_exponents.lyapunov_spectrum`, ``method="dop853"``
    (the compiled path).
  - peer: the same function with ``method="DOP853"``: ``scipy.integrate.solve_ivp``
    on the state and frame (the general path any continuous model takes).
  - reference: the solve_ivp path itself (computed once), so the peer's error
    is 0 and dynmem's is the largest difference between the two paths' exponents
    (the same pair and controller: a few ulp of the integration error, far below
    the statistical error of a 20-time-unit estimate).  The extras give the
    Liouville residual ``|sum lambda - <tr J>|`` of the full spectrum.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.optimize

import dynmem
from dynmem.capacity import linear_memory_capacity, memory_capacity
from dynmem.lyapunov_exponents import lyapunov_spectrum
from dynmem.norms import h2_norm, hankel_singular_values, hinf_norm

from _common import Case


def _system(m: int):
    # a random non-normal block (abscissa -0.1) and a lightly damped mode, -0.01 +- 1.7317 i, mixed by a rotation:
    # the frequency response has a sharp peak (relative width 0.6 %) that a sweep must land on
    rng = np.random.default_rng(3)
    rest = dynmem.LinearRNN.random(m - 2, 1, spectral_abscissa=-0.1, rng=rng)
    A = np.zeros((m, m))
    A[:2, :2] = [[-0.01, 1.7317], [-1.7317, -0.01]]
    A[2:, 2:] = rest.W
    R = np.linalg.qr(rng.standard_normal((m, m)))[0]
    model = dynmem.LinearRNN(R @ A @ R.T, rng.standard_normal((m, 1)), rng.standard_normal(m) / np.sqrt(m))
    W, U, c = (np.array(a, dtype=float) for a in (model.W, model.U, model.c))
    return model, W, U, c


def _modal(W, U, c):
    lam, V = np.linalg.eig(W)
    Vi = np.linalg.inv(V)
    return lam, V, Vi, V.T @ c, Vi @ U[:, 0]


def _grid(W, points: int):
    alpha = np.max(np.linalg.eigvals(W).real)
    return np.linspace(0.0, 40.0 / abs(alpha), points)


def _norm_cases(m: int, points: int):
    model, W, U, c = _system(m)
    lam, V, Vi, cv, uv = _modal(W, U, c)

    def h2_reference():
        a = cv * uv
        G = np.outer(a, a.conj()) / -(lam[:, None] + lam.conj()[None, :])
        return np.array([np.sqrt(G.sum().real)])

    def h2_peer():
        t = _grid(W, points)
        rho = np.array([c @ scipy.linalg.expm(W * s) @ U[:, 0] for s in t])
        return np.array([np.sqrt(scipy.integrate.simpson(rho ** 2, x=t))])

    def hinf_peer():
        omega = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 4000)])
        eye = np.eye(m)
        g = np.array([abs(c @ np.linalg.solve(1j * w * eye - W, U[:, 0])) for w in omega])
        return np.array([g.max()])

    def hinf_reference():
        omega = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 4000)])
        eye = np.eye(m)

        def neg(w):
            return -abs(c @ np.linalg.solve(1j * w * eye - W, U[:, 0]))

        g = np.array([-neg(w) for w in omega])
        i = int(np.argmax(g))
        lo, hi = omega[max(i - 1, 0)], omega[min(i + 1, omega.size - 1)]
        res = scipy.optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14})
        return np.array([max(-res.fun, g[i])])

    def hankel_peer():
        t = _grid(W, points)
        E = np.array([scipy.linalg.expm(W * s) for s in t])  # (N, m, m)
        eu = E @ U[:, 0]  # e^{W t} U
        ec = np.einsum("i,nij->nj", c, E)  # c^T e^{W t}
        P = scipy.integrate.simpson(eu[:, :, None] * eu[:, None, :], x=t, axis=0)
        Q = scipy.integrate.simpson(ec[:, :, None] * ec[:, None, :], x=t, axis=0)
        return np.sort(np.sqrt(np.abs(np.linalg.eigvals(P @ Q))))[::-1]

    def hankel_reference():
        Pm = np.outer(uv, uv.conj()) / -(lam[:, None] + lam.conj()[None, :])
        P = (V @ Pm @ V.conj().T).real
        Qm = np.outer(cv.conj(), cv) / -(lam.conj()[:, None] + lam[None, :])  # Vi^* (cv^* cv^T) Vi
        Q = (Vi.conj().T @ Qm @ Vi).real
        return np.sort(np.sqrt(np.abs(np.linalg.eigvals(P @ Q))))[::-1]

    def hsv_error(x, ref):
        keep = ref > 1e-4 * ref[0]
        return float(np.max(np.abs(x[keep] - ref[keep]) / ref[keep]))

    params = dict(m=m, d=1, spectral_abscissa=-0.01, grid_points=points)
    return [
        ("norms_h2", "analyses", lambda: Case(
            name=f"norms_h2_m{m}", group="analyses", description=f"H2 norm, LinearRNN m={m} (non-normal, a mode at -0.01 +- 1.73i)",
            params=params, dynmem=lambda: np.array([h2_norm(model)]), peer=h2_peer, reference=h2_reference,
            peer_name=f"int |c^T expm(W t) U|^2 dt, expm per point, {points}-point Simpson",
            reference_name="modal closed form sum a_i conj(a_j) / -(lambda_i + conj lambda_j)")),
        ("norms_hinf", "analyses", lambda: Case(
            name=f"norms_hinf_m{m}", group="analyses", description=f"H-infinity norm, LinearRNN m={m}",
            params=params, dynmem=lambda: np.array([hinf_norm(model).norm]), peer=hinf_peer, reference=hinf_reference,
            peer_name="dense sweep: 4001 omega (0 and log-spaced 1e-3..1e3), one solve each",
            reference_name="the sweep's best point refined by minimize_scalar (xatol 1e-14)")),
        ("norms_hankel", "analyses", lambda: Case(
            name=f"norms_hankel_m{m}", group="analyses", description=f"Hankel singular values, LinearRNN m={m}",
            params=params, dynmem=lambda: np.asarray(hankel_singular_values(model)), peer=hankel_peer,
            reference=hankel_reference, error=hsv_error,
            peer_name=f"Gramians by quadrature of their definition (expm per point, {points} points), sqrt(eig(PQ))",
            reference_name="modal closed-form Gramians, sqrt(eig(PQ)); max rel. error over values > 1e-4 sigma_1")),
    ]


def _capacity_case(m: int, n_samples: int):
    rng = np.random.default_rng(5)
    model = dynmem.DiscreteRNN.random(m, 1, spectral_radius=0.95, activation="identity", rng=rng)
    model = model.replace(b=np.zeros(m))

    def err(x, ref):
        return float(abs(x[0] - ref[0]) / ref[0])

    return Case(
        name=f"capacity_m{m}", group="analyses",
        description=f"total memory capacity, linear DiscreteRNN m={m} (spectral radius 0.95)",
        params=dict(m=m, n_samples=n_samples, max_delay=2 * m),
        dynmem=lambda: np.array([float(linear_memory_capacity(model).total)]),
        peer=lambda: np.array([memory_capacity(model, n_samples=n_samples, rng=1).total]),
        reference=lambda: np.array([float(np.linalg.matrix_rank(
            np.column_stack([np.linalg.matrix_power(np.array(model.W), j) @ np.array(model.U)[:, 0]
                             for j in range(m)])))]),
        error=err, peer_name=f"regression estimate memory_capacity (N = {n_samples}, delays to 2m)",
        reference_name="rank of the controllability matrix [U, WU, ..., W^(m-1) U]",
        notes=["the regression total carries a positive bias of about n_features * K / N and a shortfall "
               "where the Krylov basis is ill-conditioned ([BGO]); the error column shows the net"],
    )


def _lyapunov_case(m: int, k: int | None, t_end: float):
    rng = np.random.default_rng(0)
    W = 3.0 * rng.standard_normal((m, m)) / np.sqrt(m)
    model = dynmem.CTRNN(W, rng.standard_normal((m, 1)), np.zeros(m), np.ones(m), leak=1.0)
    s0 = np.random.default_rng(1).standard_normal((1, m))
    kw = dict(s0=s0, k=k, t_end=t_end, transient=5.0, reorth=1.0, rtol=1e-8, atol=1e-10, rng=0)
    state = {}

    def run(method):
        res = lyapunov_spectrum(model, method=method, **kw)
        state[method] = res
        return res.exponents

    def extras(_record):
        out = {}
        for meth in ("dop853", "DOP853"):
            res = state.get(meth)
            if res is not None:
                out[f"{meth}_lambda1"] = float(res.exponents[0])
                out[f"{meth}_stderr1"] = float(res.stderr[0])
                if k is None:
                    out[f"{meth}_liouville_residual"] = float(abs(res.exponents.sum() - res.volume_rate))
        return out

    def max_abs(x, ref):
        return float(np.max(np.abs(x - ref)))

    label = "full" if k is None else f"k{k}"
    return Case(
        name=f"lyapunov_m{m}_{label}", group="analyses",
        description=(f"Lyapunov spectrum ({'all' if k is None else f'leading {k}'}), chaotic tanh CTRNN m={m}, "
                     f"g=3, t_end={t_end:g}, rtol 1e-8"),
        params=dict(m=m, k=k if k is not None else m, t_end=t_end, transient=5.0, reorth=1.0, rtol=1e-8),
        dynmem=lambda: run("dop853"), peer=lambda: run("DOP853"), reference=lambda: run("DOP853"),
        error=max_abs, extras=extras,
        peer_name="lyapunov_spectrum(method='DOP853'): scipy.integrate.solve_ivp on (h, Q, int tr J)",
        reference_name="the solve_ivp path (max |difference| of the exponents)",
    )


def cases(quick: bool = False):
    m_norm, points = (16, 1001) if quick else (32, 4001)
    out = _norm_cases(m_norm, points)
    out.append(("capacity", "analyses", lambda: _capacity_case(16 if quick else 32, 5000 if quick else 20000)))
    if quick:
        out.append(("lyapunov_full", "analyses", lambda: _lyapunov_case(16, None, 10.0)))
    else:
        out.append(("lyapunov_full", "analyses", lambda: _lyapunov_case(64, None, 20.0)))
        out.append(("lyapunov_k16", "analyses", lambda: _lyapunov_case(256, 16, 20.0)))
    return out


def main(argv=None) -> int:
    """Run these cases without torch (``run.py`` asks for it for the other groups): table on stdout, JSON if asked."""
    import argparse
    import json
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import run  # pins the thread pools (numpy and numba are loaded already: set them in the shell too)

    records = []
    load = [os.getloadavg()]
    for name, _group, build in cases(args.quick):
        rec = run.run_case(build(), args.repeats)
        records.append(rec)
        print(f"{name}: dynmem {rec['dynmem_median_s']:.4g} s, peer {rec['peer_median_s']:.4g} s, "
              f"ratio {rec['speedup']:.1f}x, errors {rec['dynmem_error']:.2e} / {rec['peer_error']:.2e}, "
              f"extras {rec.get('extras', {})}", flush=True)
    load.append(os.getloadavg())
    print(run.format_table(records))
    print(f"load average at start / end: {load[0]} / {load[1]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(cases=records, load=load, repeats=args.repeats), fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
