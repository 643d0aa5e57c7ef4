r"""Residual RNNs trained and perturbed under a protocol (:mod:`dynmem.experiments.protocols`).

The network of every trained experiment is the library's
:class:`dynmem.residual.ResidualRNN`,

.. math::

    h_{k+1} = h_k + \Delta t\, \sigma(W(\theta) h_k + U x_k + b), \qquad
    y_k = c^\top h_{k+1} + d,

with ``W = M`` (``"free"``), ``-diag(g(w))`` (``"diag"``) or
``-P^T diag(g(w)) P`` (``"orth"``, the public code's ``"rnn"`` /
``"softplusrnn"``), and it trains with :func:`dynmem.training.train_epochs`
(Adam/AdamW, cosine or plateau schedule, clipping, margin penalty, snapshots,
atomic checkpoints and resume).  The public code's ``Wbar h`` with
``Wbar = P^T diag(g(w)) P`` is ``-W h`` here, its encoder ``A x + a`` is
``U x + b`` and its decoder ``c^T h + d``.

This module keeps the experiments' side: :class:`Net` (an architecture,
whose parameters travel as dicts of arrays), the protocol's ``training``
section turned into :class:`dynmem.training.TrainOptions` (:func:`training_options`),
data and targets, and the perturbation study.  :func:`init_params`,
:func:`recurrent_matrix`, :func:`loss_and_grad`, :func:`margin_penalty`,
:func:`predict`, :func:`evaluate` and :func:`fit` are thin wrappers over
:mod:`dynmem.residual` and :mod:`dynmem.training`; their numbers are those of the
training loop that lived here before (``tests/test_residual.py`` checks them
bit for bit against ``tests/fixtures/residual_fit_reference.npz``), and a
checkpoint written by that loop resumes under the new one (same file layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models import EulerRNN
from ..models.residual import DIVERGENCE, FORMS, G_MAPS, MarginPenalty, ResidualRNN, init_residual, stacked_errors, stacked_outputs
from ..models.residual import time_weights
from ..models import residual as rs
from ..stability import first_exceed
from . import verbose
from ..targets import ExponentialKernel, PowerLawKernel
from ..training import TrainOptions, cosine_lr, train_epochs

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
    "training_options",
    "fit",
    "FitState",
    "perturbation_betas",
    "directions",
    "cosine_lr",
    "perturbation_study",
    "make_target",
    "make_data",
    "long_test",
    "DIVERGENCE",
]


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
        if self.form not in FORMS:
            raise ValueError(f"`form` must be one of {FORMS}; got {self.form!r}.")
        if self.g not in G_MAPS:
            raise ValueError(f"`g` must be one of {G_MAPS}; got {self.g!r}.")
        if int(self.hidden) < 1:
            raise ValueError(f"`hidden` must be >= 1; got {self.hidden!r}.")

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the trainable tensors, in a fixed order (the order of the perturbation draws)."""
        head = {"free": ("M",), "diag": ("w",), "orth": ("w", "P")}[self.form]
        return head + ("U", "b", "c") + (("d",) if self.output_bias else ())

    @property
    def shapes(self) -> dict:
        m, d = self.hidden, self.inputs
        s = {"M": (m, m), "w": (m,), "P": (m, m), "U": (m, d), "b": (m,), "c": (m,), "d": (1,)}
        return {k: s[k] for k in self.names}

    def model(self, p: dict, *, g: str | None = None) -> ResidualRNN:
        """The :class:`~dynmem.residual.ResidualRNN` with parameters ``p`` (``g`` overrides ``self.g``)."""
        return ResidualRNN(form=self.form, g=self.g if g is None else g, activation=self.activation, dt=self.dt,
                           **{k: p[k] for k in self.names})

    def template(self, *, g: str | None = None) -> ResidualRNN:
        """A model of this architecture with zero parameters (carries the settings for stacked evaluations)."""
        return self.model({k: np.zeros(s) for k, s in self.shapes.items()}, g=g)

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


def _as_dict(model: ResidualRNN, names) -> dict:
    """The parameters of ``model`` as a dict of fresh writable arrays, in ``names`` order."""
    return {k: np.array(getattr(model, k)) for k in names}


def init_params(net: Net, init: dict, rng) -> dict:
    """Initial parameters: :func:`dynmem.residual.init_residual` as a dict (``"stable-diagonal"`` or ``"torch-default"``)."""
    model = init_residual(net.hidden, init, rng, form=net.form, g=net.g, activation=net.activation, dt=net.dt,
                          output_bias=net.output_bias, inputs=net.inputs)
    return _as_dict(model, net.names)


def recurrent_matrix(net: Net, p: dict, *, g: str | None = None) -> np.ndarray:
    """``W(theta)``: shape (m, m), or (K, m, m) for stacked parameters (leading axis K).

    ``g`` overrides ``net.g`` (the identity swap at evaluation).
    """
    return rs.recurrent_matrix(net.form, net.g if g is None else g, p)


def margin_penalty(net: Net, p: dict, penalty: dict | None) -> tuple[float, dict]:
    """The code's ``weight * relu(level - margin)`` and its gradient with respect to ``w``
    (:class:`dynmem.residual.MarginPenalty`; ``(0.0, {})`` without a penalty or for ``"free"``)."""
    if not penalty or net.form == "free":
        return 0.0, {}
    return MarginPenalty(float(penalty["weight"]), float(penalty["level"])).of(net.g, p["w"])


def loss_and_grad(net: Net, p: dict, X: np.ndarray, Y: np.ndarray, wt2: np.ndarray) -> tuple[float, dict]:
    """Time-weighted MSE and its gradient with respect to every tensor of ``p``
    (:meth:`dynmem.residual.ResidualRNN.value_and_grad`).

    Raises
    ------
    FloatingPointError
        If the recurrence or its gradient became non-finite.
    """
    res = net.model(p).value_and_grad(X, Y, weights=wt2)
    return res.loss, dict(res.grads)


def predict(net: Net, stacked: dict, X: np.ndarray, *, g: str | None = None, chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of K parameter sets (every tensor with a leading axis K) on ``X``: (K, B, T) and finite flags (K,)
    (:func:`dynmem.residual.stacked_outputs`)."""
    return stacked_outputs(net.template(), stacked, X, g=g, chunk=chunk)


def evaluate(net: Net, stacked: dict, X: np.ndarray, Y: np.ndarray, wt2: np.ndarray, *, g: str | None = None,
             divergence: float = DIVERGENCE) -> np.ndarray:
    """Time-weighted MSE of K parameter sets, (K,); ``inf`` for a diverged set (:func:`dynmem.residual.stacked_errors`)."""
    return stacked_errors(net.template(), stacked, X, Y, wt2, g=g, divergence=divergence)


def _stack(p: dict, K: int = 1) -> dict:
    return {k: np.broadcast_to(v, (K, *v.shape)).copy() for k, v in p.items()}


# ----------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class FitState:
    """The outcome of :func:`fit` (plain data: :class:`dynmem.training.EpochResult` with parameter dicts).

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


def training_options(training: dict, **changes) -> TrainOptions:
    """A protocol's ``training`` section as :class:`dynmem.training.TrainOptions` (``changes`` set further fields).

    ``optimizer`` ("adam"/"adamw"; a non-zero ``weight_decay`` is decoupled,
    i.e. AdamW, under either name, as the loop here always did), ``lr``,
    ``weight_decay``, ``batch_size``, ``max_epochs``, ``min_epochs``,
    ``schedule`` (``None``; a plateau rule ``{"factor", "patience", "threshold"}``;
    or ``{"kind": "cosine", "lr_min"}``), ``clip_norm``, ``time_weight_power``,
    ``penalty`` (``{"kind": "margin", "weight", "level"}``:
    :class:`dynmem.residual.MarginPenalty`) and ``snapshots``.
    """
    wd = float(training.get("weight_decay", 0.0))
    sched = training.get("schedule") or None
    kw = {}
    if sched is not None:
        kind = sched.get("kind", "plateau")
        kw["schedule"] = kind
        if kind == "cosine":
            kw["lr_min"] = float(sched["lr_min"])
        else:
            kw.update(plateau_factor=float(sched["factor"]), plateau_patience=int(sched["patience"]),
                      plateau_threshold=float(sched["threshold"]))
    pen = training.get("penalty")
    if pen:
        kw["penalty"] = MarginPenalty(float(pen["weight"]), float(pen["level"]))
    kw.update(changes)
    return TrainOptions(lr=float(training["lr"]), batch_size=int(training["batch_size"]),
                        max_epochs=int(training["max_epochs"]), min_epochs=int(training.get("min_epochs", 1)),
                        optimizer="adamw" if wd else str(training.get("optimizer", "adam")), weight_decay=wd,
                        clip_norm=training.get("clip_norm"), time_weight_power=float(training["time_weight_power"]),
                        snapshots=tuple(int(e) for e in training.get("snapshots", ())), **kw)


def fit(net: Net, p0: dict, data: dict, training: dict, *, seed: int, threshold: float | None = None,
        checkpoint: str | None = None, key: str = "", progress: bool = False, label: str = "",
        time_budget: float | None = None, save_every: float = 15.0) -> FitState:
    """Train ``p0`` epoch by epoch under a protocol's ``training`` section, resumably:
    :func:`dynmem.training.train_epochs` on ``net.model(p0)`` with :func:`training_options`.

    Parameters
    ----------
    net : Net
    p0 : dict
        Initial parameters (:func:`init_params`).
    data : dict
        ``X`` (N, T, d), ``Y`` (N, T) training sequences; ``Xv``, ``Yv``
        validation sequences.
    training : dict
        The protocol's training section (:func:`training_options`).
    seed : int
        Epoch ``e`` shuffles with ``default_rng([seed, e])``.
    threshold, checkpoint, key, time_budget, save_every
        As in :class:`dynmem.training.TrainOptions`.

    Returns
    -------
    FitState
    """
    options = training_options(training, threshold=threshold, checkpoint=checkpoint, key=key,
                               time_budget=time_budget, save_every=save_every)
    # per-epoch lines only with `dynmem reproduce --verbose` (one line per trained model otherwise)
    res = train_epochs(net.model(p0), data, options, seed=seed, progress=progress and verbose(), label=label)
    return FitState(_as_dict(res.model, net.names), _as_dict(res.best_model, net.names), res.history,
                    {e: _as_dict(m, net.names) for e, m in res.snapshots.items()}, res.epochs, res.steps, res.stopped,
                    res.best_val, res.last_val, res.seconds, res.resumed)


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
