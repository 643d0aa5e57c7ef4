"""Memory functions: closed-form linear memory and batched nonlinear probes.

* ``memory_linear_m64``: linear memory ``|U^T e^{W^T t} c|_1`` of a width-64
  non-normal ``W`` on 1000 times, dynmem's :func:`dynmem.memory.linear_memory`
  (one ``expm`` per step size, re-anchored every 64 points) vs a loop calling
  ``scipy.linalg.expm(W^T t)`` at every time - what a user would otherwise
  write.  Reference: the same closed form with ``expm`` evaluated in
  extended-precision-free but per-time exact form (the peer itself is the
  reference; its error is reported as 0).
* ``memory_tanh_m64``: the nonlinear memory of a tanh CTRNN (m=64, d=1, 64
  amplitudes x 2 directions, 1000 times, b = 0) - dynmem's default integrates the
  probes in one compiled DOPRI5 call (``dynmem.odeint.solve_ctrnn_constant``), and
  since the field is odd (tanh, b = 0) only one probe of each +-x pair (the other
  is its exact mirror); ``memory_tanh_bias_m64`` is the same with b ~ N(0, 0.1^2),
  where all 128 probes are integrated;
  the peer integrates them one ``solve_ivp`` at a time with the same
  tolerances.  Reference: dynmem's scipy path, DOP853 at rtol 1e-12.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.integrate import solve_ivp

import dynmem
from dynmem.memory import linear_memory, memory_function

from _common import Case, rel_err


def _nonnormal_linear(m: int, seed: int = 0) -> dynmem.LinearRNN:
    rng = np.random.default_rng(seed)
    # Upper-triangular part makes W strongly non-normal (transient growth).
    A = np.triu(rng.standard_normal((m, m)), 1) * (3.0 / np.sqrt(m)) + rng.standard_normal((m, m)) / np.sqrt(m)
    W = A - (np.max(np.linalg.eigvals(A).real) + 0.2) * np.eye(m)
    return dynmem.LinearRNN(W, rng.standard_normal((m, 3)) / np.sqrt(3), rng.standard_normal(m) / np.sqrt(m))


def _case_linear(quick: bool):
    m, n = (32, 200) if quick else (64, 1000)
    model = _nonnormal_linear(m)
    t = np.linspace(0.0, 40.0, n)

    def run_dynmem():
        return linear_memory(model, t).values

    def run_peer():
        WT, U, c = np.array(model.W.T), np.array(model.U), np.array(model.c)
        return np.array([np.abs(U.T @ scipy.linalg.expm(WT * ti) @ c).sum() for ti in t])

    def max_rel(x, ref):
        return float(np.max(np.abs(x - ref) / np.abs(ref)))

    return Case(
        name=f"memory_linear_m{m}", group="memory",
        description=f"linear memory |U^T e^(W^T t) c|_1, non-normal W (m={m}, d=3) on {n} times",
        params=dict(m=m, n_times=n), dynmem=run_dynmem, peer=run_peer, reference=run_peer, error=max_rel,
        peer_name="scipy.linalg.expm per t", reference_name="expm per t (max relative error)", speed_target=50.0,
    )


def _case_tanh(quick: bool, bias_scale: float = 0.0):
    m, n, n_amp = (16, 200, 8) if quick else (64, 1000, 64)
    model = dynmem.CTRNN.random(m, 1, spectral_abscissa=-0.3, bias_scale=bias_scale, rng=1)
    t = np.linspace(0.0, 30.0, n)
    amps = np.geomspace(0.01, 10.0, n_amp)
    rtol, atol = 1e-8, 1e-10

    def run_dynmem():
        return memory_function(model, t, amplitudes=amps, rtol=rtol, atol=atol).values

    def run_peer():
        W, U, c = np.array(model.W), np.array(model.U), np.array(model.c)
        best = np.zeros(n)
        for sign in (1.0, -1.0):
            for a in amps:
                p = U[:, 0] * (sign * a)
                sol = solve_ivp(lambda _t, h: np.tanh(W @ h + p), (0, t[-1]), np.zeros(m), t_eval=t, rtol=rtol, atol=atol)
                dy = np.abs(np.tanh(sol.y.T @ W.T + p) @ c) / a
                best = np.maximum(best, dy)
        return best

    def run_reference():
        return memory_function(model, t, amplitudes=amps, method="DOP853", rtol=1e-12, atol=1e-14).values

    tag = "" if bias_scale == 0.0 else "_bias"
    odd = ("b = 0: an odd field, so dynmem integrates one probe of each +-x pair and mirrors the other"
           if bias_scale == 0.0 else f"b ~ N(0, {bias_scale}^2): no symmetry, every probe integrated")
    return Case(
        name=f"memory_tanh{tag}_m{m}", group="memory",
        description=f"tanh CTRNN memory, m={m}, d=1, {n_amp} amplitudes x 2 directions, {n} times, rtol {rtol}; {odd}",
        params=dict(m=m, n_times=n, amplitudes=n_amp, rtol=rtol), dynmem=run_dynmem, peer=run_peer,
        reference=run_reference, error=rel_err, peer_name="solve_ivp per probe",
        reference_name="dynmem DOP853 rtol 1e-12", notes=["issue 13 target: dynmem under 0.1 s (warm)"],
    )


def cases(quick: bool = False):
    return [
        ("memory_linear", "memory", lambda: _case_linear(quick)),
        ("memory_tanh", "memory", lambda: _case_tanh(quick)),
        ("memory_tanh_bias", "memory", lambda: _case_tanh(quick, bias_scale=0.1)),
    ]
