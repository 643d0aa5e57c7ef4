r"""Residual RNNs trained and perturbed under a protocol (:mod:`dynmem.experiments.protocols`).

The network of every trained experiment is the residual (forward-Euler)
recurrence

.. math::

    h_{k+1} = h_k + \Delta t\, \sigma(W(\theta) h_k + U x_k + b), \qquad
    y_k = c^\top h_{k+1} + d,

with ``h_0 = 0`` and the recurrent matrix given by a parameterisation:

* ``form="free"``: ``W = M`` (an ``m x m`` matrix);
* ``form="diag"``: ``W = -diag(g(w))``;
* ``form="orth"``: ``W = -P^T diag(g(w)) P`` (``P`` trainable, initialised
  orthogonal), the public code's ``"rnn"`` / ``"softplusrnn"``;

``g`` is ``identity``, ``relu``, ``softplus`` or ``exp``.  The public code's
``Wbar h`` with ``Wbar = P^T diag(g(w)) P`` is ``-W h`` here, its encoder
``A x + a`` is ``U x + b`` and its decoder ``c^T h + d``.  Forward passes and
gradients are dynmem's own (:func:`dynmem.recurrences.forward` /
:func:`~dynmem.recurrences.backward`, hand-written BPTT); the chain rule to
``w`` and ``P`` is

.. math::

    \frac{\partial L}{\partial w} = -\operatorname{diag}(P G P^\top)\odot g'(w), \qquad
    \frac{\partial L}{\partial P} = -\operatorname{diag}(g(w))\, P\, (G + G^\top),

with ``G = dL/dW`` (``P = I`` for ``"diag"``).

The loss is the time-weighted MSE of the public code
(``src/utils/temporally_weighted_error.py``): with
``omega_i = ((i + 1) / (T + 1))^p`` rescaled to ``sum_i omega_i = T``,
``L = mean_{n,i} omega_i^2 (y_{n,i} - Y_{n,i})^2`` (``p = 0`` is plain MSE).

:func:`fit` trains with Adam/AdamW, optional gradient clipping by total
norm, an optional plateau schedule and margin penalty, epoch by epoch, and
checkpoints atomically (:func:`dynmem.io.atomic_savez`) so that an
interrupted run resumes mid-training with the same numbers: each epoch's
shuffle is drawn from ``(seed, epoch)`` alone.  :func:`perturbation_study`
measures ``E_m(beta)`` under a protocol's perturbation rule.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..io import atomic_savez
from ..models import EulerRNN
from ..recurrences import backward, forward, outputs_many
from ..stability import first_exceed
from . import verbose
from ..targets import ExponentialKernel, PowerLawKernel

__all__ = [
    "Net",
    "net_from_protocol",
    "init_params",
    "recurrent_matrix",
    "time_weights",
    "loss_and_grad",
    "margin_penalty",
    "predict",
    "evaluate",
    "fit",
    "FitState",
    "perturbation_betas",
    "directions",
    "cosine_lr",
    "perturbation_study",
    "make_target",
    "make_data",
    "long_test",
]

_G = ("identity", "relu", "softplus", "exp")
_FORMS = ("free", "diag", "orth")
DIVERGENCE = 1e8


def _g(name: str, w: np.ndarray) -> np.ndarray:
    if name == "identity":
        return w
    if name == "relu":
        return np.maximum(w, 0.0)
    if name == "softplus":
        return np.logaddexp(0.0, w)
    if name == "exp":
        return np.exp(w)
    raise ValueError(f"`g` must be one of {_G}; got {name!r}.")


def _gprime(name: str, w: np.ndarray) -> np.ndarray:
    if name == "identity":
        return np.ones_like(w)
    if name == "relu":
        return (w > 0).astype(float)
    if name == "softplus":
        return expit(w)
    if name == "exp":
        return np.exp(w)
    raise ValueError(f"`g` must be one of {_G}; got {name!r}.")


def _ginv(name: str, lam: np.ndarray) -> np.ndarray:
    if name in ("identity", "relu"):
        return lam
    if name == "softplus":
        return np.log(np.expm1(lam))
    if name == "exp":
        return np.log(lam)
    raise ValueError(f"`g` must be one of {_G}; got {name!r}.")


@dataclass(frozen=True)
class Net:
    """The architecture of a residual RNN (see the module notes).

    Attributes
    ----------
    hidden : int
        Width ``m``.
    form : {"free", "diag", "orth"}
    g : {"identity", "relu", "softplus", "exp"}
        The map of ``w`` (unused for ``"free"``).
    activation : str
        ``sigma`` (a :mod:`dynmem.activations` name).
    dt : float
        Euler step.
    output_bias : bool
        Whether the read-out has a bias ``d``.
    inputs : int
        Input dimension ``d_x``.
    """

    hidden: int
    form: str = "free"
    g: str = "identity"
    activation: str = "tanh"
    dt: float = 1.0
    output_bias: bool = False
    inputs: int = 1

    def __post_init__(self):
        if self.form not in _FORMS:
            raise ValueError(f"`form` must be one of {_FORMS}; got {self.form!r}.")
        if self.g not in _G:
            raise ValueError(f"`g` must be one of {_G}; got {self.g!r}.")
        if int(self.hidden) < 1:
            raise ValueError(f"`hidden` must be >= 1; got {self.hidden!r}.")

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the trainable tensors, in a fixed order."""
        head = {"free": ("M",), "diag": ("w",), "orth": ("w", "P")}[self.form]
        return head + ("U", "b", "c") + (("d",) if self.output_bias else ())

    @property
    def shapes(self) -> dict:
        m, d = self.hidden, self.inputs
        s = {"M": (m, m), "w": (m,), "P": (m, m), "U": (m, d), "b": (m,), "c": (m,), "d": (1,)}
        return {k: s[k] for k in self.names}

    def runner(self) -> EulerRNN:
        """A model object that carries the recurrence settings (activation, ``dt``) for the kernels."""
        m, d = self.hidden, self.inputs
        return EulerRNN(np.zeros((m, m)), np.zeros((m, d)), np.zeros(m), np.zeros(m), dt=self.dt,
                        activation=self.activation)

    def to_dict(self) -> dict:
        return {"hidden": int(self.hidden), "form": self.form, "g": self.g, "activation": self.activation,
                "dt": float(self.dt), "output_bias": bool(self.output_bias), "inputs": int(self.inputs)}


def net_from_protocol(proto: dict, figure: str, hidden: int, *, activation: str | None = None) -> Net:
    """The :class:`Net` of ``proto`` for one figure (``"fig2"``, ``"fig4"``, ...) and width."""
    par = proto["parameterisation"][figure]
    model = proto["model"]
    return Net(hidden=int(hidden), form=par["form"], g=par["g"], activation=activation or model["activation"],
               dt=float(model["dt"]), output_bias=bool(model["output_bias"]))


def init_params(net: Net, init: dict, rng) -> dict:
    """Initial parameters.

    ``init["kind"]``:

    * ``"stable-diagonal"``: ``W_0 = -diag(r)`` with ``r`` log-spaced in
      ``init["rates"]`` (jittered by ``e^{U(-0.1, 0.1)}``), ``U ~ N(0, 1)``,
      ``b = 0``, ``c ~ N(0, 1/m)``, ``d = 0`` (``P = I`` for ``"orth"``);
    * ``"torch-default"``: the public code's ``nn.Parameter`` / ``nn.Linear``
      defaults: ``w ~ N(0, 1)``, ``P`` the Q factor of a Gaussian matrix,
      encoder entries ``U(-1/sqrt(d), 1/sqrt(d))``, decoder entries
      ``U(-1/sqrt(m), 1/sqrt(m))``.
    """
    rng = np.random.default_rng(rng)
    m, d = net.hidden, net.inputs
    p: dict = {}
    kind = init["kind"]
    if kind == "stable-diagonal":
        lo, hi = init["rates"]
        r = np.geomspace(lo, hi, m) * np.exp(rng.uniform(-0.1, 0.1, m))
        U = rng.standard_normal((m, d))
        c = rng.standard_normal(m) / math.sqrt(m)
        if net.form == "free":
            p["M"] = -np.diag(r)
        else:
            p["w"] = _ginv(net.g, r)
            if net.form == "orth":
                p["P"] = np.eye(m)
        p.update(U=U, b=np.zeros(m), c=c)
        if net.output_bias:
            p["d"] = np.zeros(1)
    elif kind == "torch-default":
        if net.form == "free":
            raise ValueError("`init` 'torch-default' is defined for the 'diag' and 'orth' forms only.")
        p["w"] = rng.standard_normal(m)
        if net.form == "orth":
            p["P"] = np.linalg.qr(rng.standard_normal((m, m)))[0]
        be, bd = 1.0 / math.sqrt(d), 1.0 / math.sqrt(m)
        p["U"] = rng.uniform(-be, be, (m, d))
        p["b"] = rng.uniform(-be, be, m)
        p["c"] = rng.uniform(-bd, bd, m)
        if net.output_bias:
            p["d"] = rng.uniform(-bd, bd, 1)
    else:
        raise ValueError(f"`init['kind']` must be 'stable-diagonal' or 'torch-default'; got {kind!r}.")
    return p


def recurrent_matrix(net: Net, p: dict, *, g: str | None = None) -> np.ndarray:
    """``W(theta)``: shape (m, m), or (K, m, m) for stacked parameters (leading axis K).

    ``g`` overrides ``net.g`` (the identity swap at evaluation).
    """
    g = net.g if g is None else g
    if net.form == "free":
        return np.asarray(p["M"], dtype=float)
    lam = _g(g, np.asarray(p["w"], dtype=float))
    if net.form == "diag":
        out = np.zeros(lam.shape + (lam.shape[-1],))
        idx = np.arange(lam.shape[-1])
        out[..., idx, idx] = -lam
        return out
    P = np.asarray(p["P"], dtype=float)
    return -np.einsum("...ki,...k,...kj->...ij", P, lam, P)


def time_weights(T: int, power: float) -> np.ndarray:
    r"""Squared time weights ``omega_i^2`` of the time-weighted MSE, shape (T,).

    ``omega_i = ((i + 1) / (T + 1))^p`` rescaled so that ``sum omega = T``;
    ``p = 0`` gives ones (plain MSE).
    """
    w = ((np.arange(T) + 1.0) / (T + 1.0)) ** float(power)
    w = w / w.sum() * T
    return w * w


def margin_penalty(net: Net, p: dict, penalty: dict | None) -> tuple[float, dict]:
    """The code's ``weight * relu(level - margin)`` and its gradient with respect to ``w``.

    The margin is the code's ``stability_margin()``: the smallest positive
    ``w_i`` for ``g = relu`` (no penalty if none is positive), ``softplus(min w)``
    for ``g = softplus``, ``g(min w)`` otherwise.
    """
    if not penalty or net.form == "free":
        return 0.0, {}
    w = np.asarray(p["w"], dtype=float)
    if net.g == "relu":
        pos = np.flatnonzero(w > 0)
        if pos.size == 0:
            return 0.0, {}
        i = int(pos[np.argmin(w[pos])])
        margin, dmargin = float(w[i]), 1.0
    else:
        i = int(np.argmin(w))
        margin = float(_g(net.g, w[i:i + 1])[0])
        dmargin = float(_gprime(net.g, w[i:i + 1])[0])
    gap = float(penalty["level"]) - margin
    if gap <= 0:
        return 0.0, {}
    gw = np.zeros_like(w)
    gw[i] = -float(penalty["weight"]) * dmargin
    return float(penalty["weight"]) * gap, {"w": gw}


def loss_and_grad(net: Net, p: dict, X: np.ndarray, Y: np.ndarray, wt2: np.ndarray) -> tuple[float, dict]:
    """Time-weighted MSE and its gradient with respect to every tensor of ``p``.

    Raises
    ------
    FloatingPointError
        If the recurrence or its gradient became non-finite.
    """
    W = recurrent_matrix(net, p)
    model = EulerRNN(W, p["U"], p["b"], p["c"], dt=net.dt, activation=net.activation)
    traj = forward(model, X)
    y = traj.y + (p["d"][0] if net.output_bias else 0.0)
    r = y - Y
    lw = wt2[None, :] * r
    loss = float(np.mean(lw * r))
    dy = (2.0 / r.size) * lw
    gr = backward(model, traj, dy).grad
    grads = {"U": gr.U, "b": gr.b, "c": gr.c}
    if net.output_bias:
        grads["d"] = np.array([dy.sum()])
    G = gr.W
    if net.form == "free":
        grads["M"] = G
    elif net.form == "diag":
        grads["w"] = -np.diag(G) * _gprime(net.g, p["w"])
    else:
        P = p["P"]
        lam = _g(net.g, p["w"])
        grads["w"] = -np.einsum("ki,ij,kj->k", P, G, P) * _gprime(net.g, p["w"])
        grads["P"] = -(lam[:, None] * P) @ (G + G.T)
    if not math.isfinite(loss):
        raise FloatingPointError(f"the training loss became non-finite ({loss}).")
    return loss, grads


def predict(net: Net, stacked: dict, X: np.ndarray, *, g: str | None = None, chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of K parameter sets (every tensor with a leading axis K) on ``X``: (K, B, T) and finite flags (K,).

    Runs :func:`dynmem.recurrences.outputs_many` in groups of ``chunk`` sets.
    """
    K = next(iter(stacked.values())).shape[0]
    W = recurrent_matrix(net, stacked, g=g)
    runner = net.runner()
    B, T = X.shape[0], X.shape[1]
    out = np.empty((K, B, T))
    finite = np.empty(K, dtype=bool)
    for s in range(0, K, chunk):
        e = min(K, s + chunk)
        params = {"W": W[s:e], "U": stacked["U"][s:e], "b": stacked["b"][s:e], "c": stacked["c"][s:e]}
        with np.errstate(all="ignore"):
            y, ok = outputs_many(runner, params, X)
            if net.output_bias:
                y = y + stacked["d"][s:e, 0][:, None, None]
        out[s:e] = y
        finite[s:e] = ok
    return out, finite


def evaluate(net: Net, stacked: dict, X: np.ndarray, Y: np.ndarray, wt2: np.ndarray, *, g: str | None = None,
             divergence: float = DIVERGENCE) -> np.ndarray:
    """Time-weighted MSE of K parameter sets, (K,); ``inf`` for a diverged set (non-finite or ``|y| > divergence``)."""
    y, ok = predict(net, stacked, X, g=g)
    with np.errstate(all="ignore"):
        bad = ~ok | ~np.all(np.abs(y) <= divergence, axis=(1, 2))
        r = y - Y[None]
        err = np.mean(wt2[None, None, :] * r * r, axis=(1, 2))
    return np.where(bad | ~np.isfinite(err), np.inf, err)


def _stack(p: dict, K: int = 1) -> dict:
    return {k: np.broadcast_to(v, (K, *v.shape)).copy() for k, v in p.items()}


# ----------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class FitState:
    """The outcome of :func:`fit` (plain data; also what a checkpoint holds).

    Attributes
    ----------
    params, best_params : dict
        Last and best-validation parameters.
    history : ndarray, shape (epochs, 6)
        Per epoch: epoch, steps, mean training loss (data term), validation
        loss, learning rate, seconds so far.
    snapshots : dict
        ``epoch -> params`` at the protocol's snapshot epochs.
    epochs, steps : int
        Budget spent.
    stopped : str
        ``"threshold"``, ``"max_epochs"``, ``"diverged"`` or ``"time_budget"``.
    best_val : float
    last_val : float
    seconds : float
        Training wall time, summed over resumptions.
    resumed : int
        How many times the run was resumed from a checkpoint.
    """

    params: dict
    best_params: dict
    history: np.ndarray
    snapshots: dict
    epochs: int
    steps: int
    stopped: str
    best_val: float
    last_val: float
    seconds: float
    resumed: int


def _save_ckpt(path, key, p, best_p, mom, vel, t, lr, plateau, history, snaps, epoch, steps, best_val, done,
               stopped, seconds, resumed):
    arrays = {}
    for k, v in p.items():
        arrays[f"p/{k}"] = v
        arrays[f"best/{k}"] = best_p[k]
        arrays[f"m/{k}"] = mom[k]
        arrays[f"v/{k}"] = vel[k]
    for e, sp in snaps.items():
        for k, v in sp.items():
            arrays[f"snap{int(e)}/{k}"] = v
    arrays["history"] = np.asarray(history, dtype=float).reshape(-1, 6)
    meta = dict(key=key, t=int(t), lr=float(lr), plateau=plateau, epoch=int(epoch), steps=int(steps),
                best_val=float(best_val), done=bool(done), stopped=stopped, seconds=float(seconds),
                resumed=int(resumed), snapshots=[int(e) for e in snaps])
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_savez(path, arrays)


def _load_ckpt(path, key):
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("key") != key:
                return None
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError) as exc:  # unreadable: start again, say so
        print(f"[dynmem.experiments] checkpoint {path} unreadable ({type(exc).__name__}); training from the start",
              file=sys.stderr, flush=True)
        return None
    def part(prefix):
        return {k.split("/", 1)[1]: data[k] for k in data if k.startswith(prefix + "/")}
    snaps = {int(e): part(f"snap{int(e)}") for e in meta["snapshots"]}
    return dict(meta=meta, p=part("p"), best=part("best"), m=part("m"), v=part("v"), history=data["history"],
                snaps=snaps)


def cosine_lr(lr0: float, lr_min: float, epoch: int, epochs: int) -> float:
    r"""The cosine schedule: ``lr_min + (lr0 - lr_min) (1 + cos(pi e / E)) / 2`` for epoch ``e`` (from 0) of ``E``."""
    return float(lr_min) + 0.5 * (float(lr0) - float(lr_min)) * (1.0 + math.cos(math.pi * int(epoch) / int(epochs)))


def fit(net: Net, p0: dict, data: dict, training: dict, *, seed: int, threshold: float | None = None,
        checkpoint: str | None = None, key: str = "", progress: bool = False, label: str = "",
        time_budget: float | None = None, save_every: float = 15.0) -> FitState:
    """Train ``p0`` epoch by epoch under a protocol's ``training`` section, resumably.

    Parameters
    ----------
    net : Net
    p0 : dict
        Initial parameters (:func:`init_params`).
    data : dict
        ``X`` (N, T, d), ``Y`` (N, T) training sequences; ``Xv``, ``Yv``
        validation sequences.
    training : dict
        The protocol's training section: ``optimizer`` ("adam"/"adamw",
        identical at ``weight_decay = 0``), ``lr``, ``weight_decay``,
        ``batch_size``, ``max_epochs``, ``min_epochs``, ``schedule``
        (``None``; a plateau rule ``{"factor", "patience", "threshold"}``;
        or ``{"kind": "cosine", "lr_min"}``, :func:`cosine_lr` per epoch),
        ``clip_norm``, ``time_weight_power``,
        ``penalty``, ``snapshots``.
    seed : int
        Epoch ``e`` shuffles with ``default_rng([seed, e])``.
    threshold : float, optional
        Stop once ``epoch >= min_epochs`` and the validation loss is below it.
    checkpoint : str, optional
        ``.npz`` path: written atomically at most every ``save_every`` seconds
        and at the end; if it exists for the same ``key`` the run resumes
        from it (a finished run returns at once).
    key : str
        Identifies the run in its checkpoint (a checkpoint of another run is ignored).
    time_budget : float, optional
        Stop (``stopped="time_budget"``) after this many seconds of training
        in this call; the checkpoint lets a later call continue.

    Returns
    -------
    FitState
    """
    lr0 = float(training["lr"])
    wd = float(training.get("weight_decay", 0.0))
    b1, b2, eps = 0.9, 0.999, 1e-8
    bs = int(training["batch_size"])
    max_epochs = int(training["max_epochs"])
    min_epochs = int(training.get("min_epochs", 1))
    clip = training.get("clip_norm")
    sched = training.get("schedule")
    penalty = training.get("penalty")
    snap_at = set(int(e) for e in training.get("snapshots", ()))
    X, Y, Xv, Yv = data["X"], data["Y"], data["Xv"], data["Yv"]
    N = X.shape[0]
    wt2, wt2v = time_weights(X.shape[1], training["time_weight_power"]), time_weights(Xv.shape[1], training["time_weight_power"])

    ck = _load_ckpt(checkpoint, key) if checkpoint and os.path.exists(checkpoint) else None
    if ck is not None:
        meta = ck["meta"]
        p, best_p, mom, vel = ck["p"], ck["best"], ck["m"], ck["v"]
        t, lr, plateau = meta["t"], meta["lr"], meta["plateau"]
        history = [list(r) for r in ck["history"]]
        snaps = ck["snaps"]
        epoch, steps, best_val = meta["epoch"], meta["steps"], meta["best_val"]
        seconds, resumed = meta["seconds"], meta["resumed"] + (0 if meta["done"] else 1)
        if meta["done"]:
            hist = np.asarray(history, dtype=float).reshape(-1, 6)
            return FitState(p, best_p, hist, snaps, epoch, steps, meta["stopped"], best_val,
                            float(hist[-1, 3]) if hist.size else math.inf, seconds, meta["resumed"])
        if progress:
            print(f"[dynmem.experiments] {label}: resuming at epoch {epoch}", file=sys.stderr, flush=True)
    else:
        p = {k: np.array(v, dtype=float) for k, v in p0.items()}
        best_p = {k: v.copy() for k, v in p.items()}
        mom = {k: np.zeros_like(v) for k, v in p.items()}
        vel = {k: np.zeros_like(v) for k, v in p.items()}
        t, lr = 0, lr0
        plateau = {"best": math.inf, "bad": 0}
        history, snaps = [], {}
        epoch, steps, best_val = 0, 0, math.inf
        seconds, resumed = 0.0, 0
        val0 = float(evaluate(net, _stack(p), Xv, Yv, wt2v)[0])
        best_val = val0 if math.isfinite(val0) else math.inf
    start = time.perf_counter()
    last_save = start
    stopped = "max_epochs"
    done = False
    cosine = bool(sched) and sched.get("kind", "plateau") == "cosine"
    while epoch < max_epochs:
        if cosine:
            lr = cosine_lr(lr0, float(sched["lr_min"]), epoch, max_epochs)
        perm = np.random.default_rng([int(seed), int(epoch)]).permutation(N)
        tot, nb = 0.0, 0
        try:
            for s in range(0, N, bs):
                idx = np.sort(perm[s:s + bs])
                loss, grads = loss_and_grad(net, p, X[idx], Y[idx], wt2)
                _, pg = margin_penalty(net, p, penalty)
                for k, v in pg.items():
                    grads[k] = grads[k] + v
                if clip:
                    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
                    if total > clip:
                        scale = float(clip) / (total + 1e-6)
                        grads = {k: g * scale for k, g in grads.items()}
                t += 1
                bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
                for k in p:
                    g = grads[k]
                    if wd:
                        p[k] *= 1.0 - lr * wd
                    mom[k] = b1 * mom[k] + (1 - b1) * g
                    vel[k] = b2 * vel[k] + (1 - b2) * g * g
                    p[k] = p[k] - lr * (mom[k] / bc1) / (np.sqrt(vel[k] / bc2) + eps)
                tot += loss
                nb += 1
                steps += 1
        except FloatingPointError:
            stopped = "diverged"
            p = {k: v.copy() for k, v in best_p.items()}
            done = True
            break
        epoch += 1
        val = float(evaluate(net, _stack(p), Xv, Yv, wt2v)[0])
        if val < best_val:
            best_val = val
            best_p = {k: v.copy() for k, v in p.items()}
        if sched and not cosine:
            if val < plateau["best"] * (1.0 - float(sched["threshold"])):
                plateau["best"], plateau["bad"] = val, 0
            else:
                plateau["bad"] += 1
            if plateau["bad"] > int(sched["patience"]):
                lr *= float(sched["factor"])
                plateau["bad"] = 0
        if epoch in snap_at:
            snaps[epoch] = {k: v.copy() for k, v in p.items()}
        now = time.perf_counter()
        history.append([epoch, steps, tot / max(nb, 1), val, lr, seconds + now - start])
        if progress and verbose() and (epoch <= 3 or epoch % 10 == 0):
            print(f"[dynmem.experiments] {label}: epoch {epoch} steps {steps} train {tot / max(nb, 1):.3e} "
                  f"val {val:.3e} lr {lr:.1e} ({seconds + now - start:.0f} s)", file=sys.stderr, flush=True)
        if not math.isfinite(val):
            stopped, done = "diverged", True
            break
        if threshold is not None and epoch >= min_epochs and val < threshold:
            stopped, done = "threshold", True
            break
        if time_budget is not None and now - start > time_budget:
            stopped = "time_budget"
            break
        if checkpoint and now - last_save > save_every:
            _save_ckpt(checkpoint, key, p, best_p, mom, vel, t, lr, plateau, history, snaps, epoch, steps, best_val,
                       False, stopped, seconds + now - start, resumed)
            last_save = now
    else:
        done = True
    seconds += time.perf_counter() - start
    if epoch >= max_epochs:
        done = True
    if checkpoint:
        _save_ckpt(checkpoint, key, p, best_p, mom, vel, t, lr, plateau, history, snaps, epoch, steps, best_val, done,
                   stopped, seconds, resumed)
    hist = np.asarray(history, dtype=float).reshape(-1, 6)
    last_val = float(hist[-1, 3]) if hist.size else best_val
    return FitState(p, best_p, hist, snaps, epoch, steps, stopped, best_val, last_val, seconds, resumed)


# ----------------------------------------------------------------------------
# data and targets


def make_target(spec: dict):
    """A :mod:`dynmem.targets` kernel from a protocol's target entry."""
    if spec["kind"] == "power":
        return PowerLawKernel(float(spec["p"]), scale=float(spec["scale"]))
    if spec["kind"] == "exp":
        return ExponentialKernel(float(spec["rate"]))
    raise ValueError(f"target kind must be 'power' or 'exp'; got {spec['kind']!r}.")


def make_data(proto: dict, target, seed: int, *, scale: float = 1.0) -> dict:
    """Training, validation and test sequences of a protocol (sizes times ``scale``).

    ``"paper"``-style (``data.validation`` ``"separate"`` or ``"test"``):
    ``x_k ~ N(0, 1)`` and ``y = target.output_sequence(x, dt)``; training on
    ``T_train`` steps, test on ``T_eval``; validation on ``n_test`` sequences
    of ``T_train`` steps of its own (``"separate"``) or on the test
    sequences cut to ``T_train`` (``"test"``: the test set then also picks
    the best checkpoint).
    ``"code"``-style: ``x_k = dt N(0, 1)`` and ``y_k = sum_s rho(s dt) x_{k-s}``
    (``output_sequence(x, dt) / dt``), separate validation sequences.
    """
    dd = proto["data"]
    dt = float(proto["model"]["dt"])
    rng = np.random.default_rng([int(seed), 101])
    n_train = max(1, int(round(dd["n_train"] * scale)))
    n_test = max(1, int(round(dd["n_test"] * scale)))
    T_train, T_eval = int(dd["T_train"]), int(dd["T_eval"])
    code_style = dd.get("validation") == "validation"
    amp = float(dd.get("input_scale", 1.0)) * (dt if code_style else 1.0)

    def seqs(n, T):
        X = amp * rng.standard_normal((n, T, 1))
        Y = target.output_sequence(X, dt)
        if code_style:
            Y = Y / dt
        return X, Y

    X, Y = seqs(n_train, T_train)
    Xt, Yt = seqs(n_test, T_eval)
    if code_style:
        n_val = max(1, int(round(dd["n_val"] * scale)))
        Xv, Yv = seqs(n_val, T_train)
    elif dd.get("validation") == "separate":
        # its own stream: the training and test sequences stay those of the "test" reading
        rng = np.random.default_rng([int(seed), 102])
        Xv, Yv = seqs(n_test, T_train)
    else:
        Xv, Yv = Xt[:, :T_train], Yt[:, :T_train]
    return {"X": X, "Y": Y, "Xv": np.ascontiguousarray(Xv), "Yv": np.ascontiguousarray(Yv), "Xt": Xt, "Yt": Yt}


def long_test(proto: dict, target, seed: int, T: int, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` test sequences of ``T`` steps under the protocol's data law (its own random stream).

    For the instability threshold of ``W + beta I``, which needs a horizon
    much longer than ``1 / margin``: an unstable mode grows like
    ``e^{(beta - margin) t}`` and cannot show on a short test.
    """
    dd = proto["data"]
    dt = float(proto["model"]["dt"])
    code_style = dd.get("validation") == "validation"
    amp = float(dd.get("input_scale", 1.0)) * (dt if code_style else 1.0)
    rng = np.random.default_rng([int(seed), 103])
    X = amp * rng.standard_normal((int(n), int(T), 1))
    Y = target.output_sequence(X, dt)
    return X, (Y / dt if code_style else Y)


# ----------------------------------------------------------------------------
# perturbations


def perturbation_betas(spec: dict) -> np.ndarray:
    """The protocol's beta grid (with 0 first when ``spec["zero"]``)."""
    b = float(spec["start"]) * float(spec["ratio"]) ** np.arange(int(spec["count"]))
    return np.concatenate([[0.0], b]) if spec.get("zero") else b


def _block_norm(name: str, a: np.ndarray) -> np.ndarray:
    """Norm of each block (leading axis K) in the block-spectral norm of [WLL]: vectors ``w`` as ``diag(w)``."""
    if name == "w":
        return np.abs(a).max(axis=-1)
    if a.ndim == 3:
        return np.linalg.norm(a, ord=2, axis=(1, 2))
    return np.linalg.norm(a.reshape(a.shape[0], -1), axis=1)


def directions(net: Net, norm: str, n: int, rng) -> dict:
    """``n`` random unit directions for every tensor of ``net`` (leading axis ``n``).

    ``norm="block-spectral"``: each block has unit spectral norm ([WLL]'s
    block norm; vectors as diagonals for ``w``, Euclidean otherwise);
    ``"entrywise-max"``: the largest entry over all blocks is 1 (the public code's rule).
    """
    out = {}
    for name, shape in net.shapes.items():
        G = rng.standard_normal((n, *shape))
        if norm == "entrywise-max":
            s = np.abs(G.reshape(n, -1)).max(axis=1)
        else:
            s = _block_norm(name, G)
        out[name] = G / s.reshape((n,) + (1,) * len(shape))
    return out


def perturbation_study(net: Net, params: dict, perturbation: dict, X: np.ndarray, Y: np.ndarray, wt2: np.ndarray,
                       *, identity_swap: bool = False, seed: int = 0) -> dict:
    """``E_m(beta)`` of one trained model under a protocol's perturbation rule.

    Parameters
    ----------
    net, params : the trained model.
    perturbation : dict
        The protocol's perturbation section: ``norm`` ("block-spectral" or
        "entrywise-max"), ``betas``, ``repeats``, ``directions``
        ("independent per beta" or common), ``blowup_factor``.
    X, Y : test sequences; wt2 : squared time weights (:func:`time_weights`).
    identity_swap : bool
        The code's evaluation rule: ``w := relu(w)``, then ``g`` is the
        identity while perturbing (relu parameterisations only).
    seed : int

    Returns
    -------
    dict
        ``betas``; ``errors`` (n_beta, repeats); ``shell_max`` (max over the
        draws at each beta); ``ball_sup`` (running max over beta: the
        code's curve, and a lower bound of the ball sup); ``unstable``
        (draws per beta whose perturbed ``W`` has ``alpha >= 0``);
        ``error0``, ``margin`` (``-alpha(W)`` of the evaluated model),
        ``first_unstable`` (smallest beta with an unstable draw; ``inf`` if
        none), ``blowup`` (smallest beta with ``ball_sup > K error0``, on the
        log-log interpolant; ``inf`` if none), ``n_diverged``.
    """
    base = {k: np.array(v, dtype=float) for k, v in params.items()}
    g_eval = net.g
    if identity_swap and net.g == "relu" and net.form != "free":
        base["w"] = np.maximum(base["w"], 0.0)
        g_eval = "identity"
    betas = perturbation_betas(perturbation["betas"])
    R = int(perturbation["repeats"])
    norm = perturbation["norm"]
    common = not str(perturbation.get("directions", "")).startswith("independent")
    W0 = recurrent_matrix(net, base, g=g_eval)
    margin = -float(np.linalg.eigvals(W0).real.max())
    error0 = float(evaluate(net, _stack(base), X, Y, wt2, g=g_eval)[0])
    errors = np.full((betas.size, R), np.nan)
    unstable = np.zeros(betas.size, dtype=int)
    dirs_common = directions(net, norm, R, np.random.default_rng([int(seed), 7])) if common else None
    for i, beta in enumerate(betas):
        if beta == 0.0:
            errors[i, :] = error0
            unstable[i] = int(margin <= 0)
            continue
        dirs = dirs_common if common else directions(net, norm, R, np.random.default_rng([int(seed), 7, i]))
        stacked = {k: base[k][None] + beta * dirs[k] for k in base}
        Wp = recurrent_matrix(net, stacked, g=g_eval)
        unstable[i] = int(np.sum(np.linalg.eigvals(Wp).real.max(axis=1) >= 0.0))
        errors[i] = evaluate(net, stacked, X, Y, wt2, g=g_eval)
    shell = errors.max(axis=1)
    ball = np.maximum.accumulate(shell)
    pos = betas > 0
    K = float(perturbation.get("blowup_factor", 10.0))
    blow = first_exceed(betas[pos], ball[pos], K * error0) if error0 > 0 else math.inf
    uns = np.flatnonzero(unstable[pos] > 0)
    return {
        "betas": betas, "errors": errors, "shell_max": shell, "ball_sup": ball, "unstable": unstable,
        "error0": error0, "margin": margin, "first_unstable": float(betas[pos][uns[0]]) if uns.size else math.inf,
        "blowup": float(blow), "n_diverged": np.sum(~np.isfinite(errors), axis=1).astype(int),
        "identity_swap": bool(identity_swap and g_eval != net.g),
    }
