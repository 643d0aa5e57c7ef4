"""Perturbation curves: dynmem's batched evaluation vs a straightforward torch loop.

* ``stability_curve_m64``: one perturbation curve of a width-64 tanh
  :class:`~dynmem.models.DiscreteRNN` (d = 1) on the power-law target
  ``(t + 1)^{-1.5}``: 21 betas x 30 random block-spectral perturbations of
  ``(W, U, b, c)``, each scored by the test MSE on 32 white-noise sequences
  of T = 100 steps (float64, one thread).

  - dynmem: :func:`dynmem.stability.perturbation_curve` (``error="test"``,
    ``adversarial=False``), returning the 21 x 30 sample errors.
  - peer: ``torch.nn.RNN`` (tanh, float64), in a Python loop over the 630
    perturbed models: copy ``W + dW``, ``U + dU``, ``b + db`` into the module,
    forward the test batch, read out with ``c + dc``, MSE against the target.
  - Both use the *same* perturbations: the unit directions are drawn once in
    numpy (the call that ``perturbation_curve`` makes first with the same
    seed, :func:`dynmem.stability.unit_directions`) and scaled by each beta;
    the target outputs are computed once by ``target.output_sequence``.
  - reference: a plain numpy loop (``h = tanh(W h + U x + b)``) over the same
    630 models, computed once, untimed; error = max relative difference of
    the 630 errors.

Issue 4 target: dynmem >= 10x faster than the torch loop.
"""

from __future__ import annotations

import numpy as np

import dynmem
from dynmem.stability import unit_directions, perturbation_curve
from dynmem.targets import PowerLawKernel

from _common import Case, import_torch

_SEED = 12345


def _setup(quick: bool):
    m, n_betas, n_samples, T, B = (32, 11, 10, 100, 16) if quick else (64, 21, 30, 100, 32)
    rng = np.random.default_rng(0)
    model = dynmem.DiscreteRNN.random(m, 1, spectral_radius=0.9, rng=rng)
    target = PowerLawKernel(1.5)
    X = rng.standard_normal((B, T, 1))
    Y = target.output_sequence(X, 1.0)
    betas = np.geomspace(1e-3, 1.0, n_betas)
    dirs = unit_directions(model, n_samples, "block-spectral", np.random.default_rng(_SEED))
    return m, n_betas, n_samples, T, B, model, target, X, Y, betas, dirs


def _case(quick: bool):
    m, n_betas, n_samples, T, B, model, target, X, Y, betas, dirs = _setup(quick)
    P = {k: np.asarray(v, dtype=float) for k, v in model.params().items()}

    def run_dynmem():
        c = perturbation_curve(model, target, betas, n_samples=n_samples, error="test", X_test=X, dt=1.0,
                               adversarial=False, rng=_SEED)
        return c.sample_errors.ravel()

    torch = import_torch()
    rnn = torch.nn.RNN(1, m, nonlinearity="tanh", batch_first=True, bias=True).double()
    Xt = torch.from_numpy(X)
    Yt = torch.from_numpy(Y)
    tdirs = {k: torch.from_numpy(v) for k, v in dirs.items()}
    tP = {k: torch.from_numpy(v.copy()) for k, v in P.items()}

    def run_peer():
        out = np.empty((n_betas, n_samples))
        with torch.no_grad():
            rnn.bias_hh_l0.zero_()
            for i, beta in enumerate(betas):
                for j in range(n_samples):
                    rnn.weight_hh_l0.copy_(tP["W"] + beta * tdirs["W"][j])
                    rnn.weight_ih_l0.copy_(tP["U"] + beta * tdirs["U"][j])
                    rnn.bias_ih_l0.copy_(tP["b"] + beta * tdirs["b"][j])
                    c = tP["c"] + beta * tdirs["c"][j]
                    H, _ = rnn(Xt)
                    y = H @ c
                    out[i, j] = float(torch.mean((y - Yt) ** 2))
        return out.ravel()

    def run_reference():
        out = np.empty((n_betas, n_samples))
        for i, beta in enumerate(betas):
            for j in range(n_samples):
                W, U, b, c = (P[k] + beta * dirs[k][j] for k in ("W", "U", "b", "c"))
                h = np.zeros((B, m))
                y = np.empty((B, T))
                for k in range(T):
                    h = np.tanh(h @ W.T + X[:, k] @ U.T + b)
                    y[:, k] = h @ c
                out[i, j] = np.mean((y - Y) ** 2)
        return out.ravel()

    def max_rel(x, ref):
        return float(np.max(np.abs(x - ref) / np.abs(ref)))

    return Case(
        name=f"stability_curve_m{m}", group="stability",
        description=(f"perturbation curve, tanh DiscreteRNN m={m}, {n_betas} betas x {n_samples} perturbations, "
                     f"test MSE on {B} x T={T} sequences, float64"),
        params=dict(m=m, n_betas=n_betas, n_samples=n_samples, T=T, batch=B),
        dynmem=run_dynmem, peer=run_peer, reference=run_reference, error=max_rel,
        peer_name="torch.nn.RNN per perturbed model (Python loop)",
        reference_name="numpy loop over the same perturbations (max relative error of the errors)",
        speed_target=10.0,
        notes=["same perturbations for both: unit directions drawn once in numpy and scaled by each beta"],
    )


def cases(quick: bool = False):
    return [("stability_curve", "stability", lambda: _case(quick))]
