r"""The residual (forward-Euler) RNN with a parameterised recurrent matrix, as a library model.

.. math::

    h_{k+1} = h_k + \Delta t\, \sigma(W(\theta) h_k + U x_k + b), \qquad
    y_k = c^\top h_{k+1} + d,

with ``h_0 = 0`` and ``W(theta)`` given by one of three forms:

* ``form="free"``: ``W = M`` (an ``m x m`` matrix);
* ``form="diag"``: ``W = -diag(g(w))``;
* ``form="orth"``: ``W = -P^T diag(g(w)) P`` (``P`` trainable, usually
  initialised orthogonal; it is not kept orthogonal), the public code of
  [WLL]'s ``"rnn"`` / ``"softplusrnn"``;

``g`` is ``identity``, ``relu``, ``softplus`` or ``exp``.  The softplus and
exp maps and their derivatives are :mod:`dynmem.reparam`'s
(``g = -f`` for its ``"softplus"`` and ``"exp"``; dynmem's ``f`` carries the
sign); ``identity`` and ``relu`` are the two it has no entry for.  The read-out
bias ``d`` is optional (``d=None``: none).

:class:`ResidualRNN` implements the model contract of :mod:`dynmem.models`:
:class:`~dynmem.models.Parametrized` (``param_names``, ``flatten``,
``unflatten``), :class:`~dynmem.models.DiscreteModel` (delegating to the
:class:`~dynmem.models.EulerRNN` with ``W = W(theta)``, :meth:`ResidualRNN.as_euler`)
and :class:`~dynmem.models.Trainable` (:meth:`ResidualRNN.value_and_grad`:
the time-weighted MSE and its gradient by hand-written BPTT,
:func:`dynmem.recurrences.backward`, with the chain rule

.. math::

    \frac{\partial L}{\partial w} = -\operatorname{diag}(P G P^\top)\odot g'(w), \qquad
    \frac{\partial L}{\partial P} = -\operatorname{diag}(g(w))\, P\, (G + G^\top),

``G = dL/dW`` (``P = I`` for ``"diag"``)).  :func:`dynmem.training.train` and
:func:`dynmem.training.train_epochs` train it, and every trained experiment's
network is one (:mod:`dynmem.experiments.trained`).

The parameter order is ``U, b, c, [d]`` and then the recurrent block
(``M``; ``w``; ``w, P``): the order in which the experiments' training loop
summed the gradient norm for clipping, kept so that the library reproduces
their runs bit for bit.

The loss of :meth:`ResidualRNN.value_and_grad` is the time-weighted MSE of
[WLL]'s public code (``src/utils/temporally_weighted_error.py``): with
squared weights ``omega_i^2`` (:func:`time_weights`),
``L = mean_{n,i} omega_i^2 (y_{n,i} - Y_{n,i})^2``.

References
----------
.. [WLL] S. Wang, Z. Li, Q. Li, *Inverse Approximation Theory for Nonlinear
   Recurrent Neural Networks*, ICLR 2024, arXiv:2305.19190.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, check_choice, check_positive, describe
from ..activations import available_activations
from .rnn import EulerRNN
from ..recurrences import backward, forward, outputs_many, sequence_loss
from ..reparam import get_reparam
from .contract import ParamArrays

__all__ = ["G_MAPS", "FORMS", "ResidualRNN", "ResidualGradient", "MarginPenalty", "g_map", "g_prime", "g_inverse",
           "recurrent_matrix", "time_weights", "init_residual", "stacked_outputs", "stacked_errors", "DIVERGENCE"]

G_MAPS = ("identity", "relu", "softplus", "exp")
FORMS = ("free", "diag", "orth")
#: Outputs beyond this magnitude count as a diverged model in :func:`stacked_errors`.
DIVERGENCE = 1e8

_REPARAM = {"softplus": get_reparam("softplus"), "exp": get_reparam("exp")}


def g_map(name: str, w) -> np.ndarray:
    """``g(w)`` elementwise (softplus and exp through :mod:`dynmem.reparam`: ``g = -f``)."""
    w = np.asarray(w, dtype=float)
    if name == "identity":
        return w
    if name == "relu":
        return np.maximum(w, 0.0)
    if name in _REPARAM:
        return -np.asarray(_REPARAM[name].f(w), dtype=float)
    raise ValueError(f"`g` must be one of {G_MAPS}; got {name!r}.")


def g_prime(name: str, w) -> np.ndarray:
    """``g'(w)`` elementwise (relu: 0 at the kink)."""
    w = np.asarray(w, dtype=float)
    if name == "identity":
        return np.ones_like(w)
    if name == "relu":
        return (w > 0).astype(float)
    if name in _REPARAM:
        return -np.asarray(_REPARAM[name].fprime(w), dtype=float)
    raise ValueError(f"`g` must be one of {G_MAPS}; got {name!r}.")


def g_inverse(name: str, lam) -> np.ndarray:
    """``w`` with ``g(w) = lam`` (``lam > 0`` for softplus and exp; relu: ``w = lam``).

    Softplus uses ``log(expm1(lam))`` (not :meth:`dynmem.reparam.Reparam.inverse`'s
    rewriting): the initialisations of the trained experiments were drawn this way.
    """
    lam = np.asarray(lam, dtype=float)
    if name in ("identity", "relu"):
        return lam
    if name == "softplus":
        return np.log(np.expm1(lam))
    if name == "exp":
        return np.log(lam)
    raise ValueError(f"`g` must be one of {G_MAPS}; got {name!r}.")


def recurrent_matrix(form: str, g: str, params: dict) -> np.ndarray:
    """``W(theta)`` from the arrays of ``params``: shape (m, m), or (K, m, m) for stacked parameters."""
    if form == "free":
        return np.asarray(params["M"], dtype=float)
    lam = g_map(g, params["w"])
    if form == "diag":
        out = np.zeros(lam.shape + (lam.shape[-1],))
        idx = np.arange(lam.shape[-1])
        out[..., idx, idx] = -lam
        return out
    if form == "orth":
        P = np.asarray(params["P"], dtype=float)
        return -np.einsum("...ki,...k,...kj->...ij", P, lam, P)
    raise ValueError(f"`form` must be one of {FORMS}; got {form!r}.")


def time_weights(T: int, power: float) -> np.ndarray:
    r"""Squared time weights ``omega_i^2`` of the time-weighted MSE, shape (T,).

    ``omega_i = ((i + 1) / (T + 1))^p`` rescaled so that ``sum omega = T``;
    ``p = 0`` gives ones (plain MSE).
    """
    w = ((np.arange(T) + 1.0) / (T + 1.0)) ** float(power)
    w = w / w.sum() * T
    return w * w


@dataclass(frozen=True, eq=False)
class ResidualGradient:
    """Result of :meth:`ResidualRNN.value_and_grad` (the :class:`~dynmem.models.Trainable` contract).

    Attributes
    ----------
    loss : float
    grads : dict
        ``dL/d(name)`` for every name of ``param_names``.
    flat : ndarray
        The same in ``flatten()`` order.
    """

    loss: float
    grads: dict
    flat: np.ndarray


def _head(form: str) -> tuple[str, ...]:
    return {"free": ("M",), "diag": ("w",), "orth": ("w", "P")}[form]


@dataclass(frozen=True, eq=False, repr=False)
class ResidualRNN(ParamArrays):
    r"""``h_{k+1} = h_k + dt sigma(W(theta) h_k + U x_k + b)``, ``y_k = c^T h_{k+1} + d`` (module notes).

    Parameters
    ----------
    U : array_like, shape (m, d)
    b, c : array_like, shape (m,)
    M : array_like, shape (m, m)
        ``form="free"`` only.
    w : array_like, shape (m,)
        ``form="diag"`` and ``"orth"``.
    P : array_like, shape (m, m)
        ``form="orth"`` only.
    d : array_like, shape (1,), optional
        Read-out bias; ``None``: none.
    form : {"free", "diag", "orth"}
    g : {"identity", "relu", "softplus", "exp"}
        The map of ``w`` (ignored by ``"free"``).
    activation : str
        ``sigma`` (a :mod:`dynmem.activations` name).
    dt : float
        Euler step (the time one step stands for).
    """

    U: np.ndarray
    b: np.ndarray
    c: np.ndarray
    M: np.ndarray | None = None
    w: np.ndarray | None = None
    P: np.ndarray | None = None
    d: np.ndarray | None = None
    form: str = "free"
    g: str = "identity"
    activation: str = "tanh"
    dt: float = 1.0

    def __post_init__(self):
        check_choice("form", self.form, FORMS)
        check_choice("g", self.g, G_MAPS)
        check_choice("activation", self.activation, available_activations())
        object.__setattr__(self, "dt", check_positive("dt", self.dt))
        U = as_float_array("U", self.U, ndim=2, copy=True)
        m, nin = U.shape
        if m < 1 or nin < 1:
            raise ValueError(f"`U` must have shape (m, d) with m, d >= 1; got shape {U.shape}.")
        shapes = {"U": (m, nin), "b": (m,), "c": (m,), "M": (m, m), "w": (m,), "P": (m, m), "d": (1,)}
        needed = set(self.param_names)
        for name in ("U", "b", "c", "M", "w", "P", "d"):
            value = getattr(self, name)
            if name not in needed:
                if value is not None:
                    raise ValueError(f"`{name}` is not a parameter of form {self.form!r} (it takes "
                                     f"{', '.join(self.param_names)}); got {describe(value)}.")
                continue
            if value is None:
                raise ValueError(f"`{name}` is required by form {self.form!r}.")
            arr = as_float_array(name, value, shape=shapes[name], copy=True)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    # -- the Parametrized contract -------------------------------------------
    @property
    def hidden(self) -> int:
        """Width m."""
        return self.U.shape[0]

    @property
    def inputs(self) -> int:
        """Input dimension d."""
        return self.U.shape[1]

    @property
    def output_bias(self) -> bool:
        """Whether the read-out has a bias ``d``."""
        return self.d is not None

    @property
    def param_names(self) -> tuple[str, ...]:
        """``U, b, c, [d]``, then ``M`` / ``w`` / ``w, P`` (module notes)."""
        return ("U", "b", "c") + (("d",) if self.d is not None else ()) + _head(self.form)

    def __repr__(self) -> str:
        return (f"ResidualRNN(hidden={self.hidden}, inputs={self.inputs}, form={self.form!r}, g={self.g!r}, "
                f"activation={self.activation!r}, dt={self.dt!r}, output_bias={self.output_bias})")

    # -- the recurrence ------------------------------------------------------
    @property
    def W(self) -> np.ndarray:
        """The recurrent matrix ``W(theta)``, shape (m, m)."""
        return recurrent_matrix(self.form, self.g, self.params())

    def as_euler(self) -> EulerRNN:
        """The :class:`~dynmem.models.EulerRNN` ``(W(theta), U, b, c, dt, activation)`` (without ``d``)."""
        return EulerRNN(self.W, self.U, self.b, self.c, dt=self.dt, activation=self.activation)

    @property
    def bias(self) -> float:
        """The read-out bias ``d`` (0 without one)."""
        return float(self.d[0]) if self.d is not None else 0.0

    # -- the DiscreteModel contract ------------------------------------------
    @property
    def state_size(self) -> int:
        """Length of the flat state (the width m)."""
        return self.hidden

    def outputs(self, X, S0) -> np.ndarray:
        """``y_0 .. y_{T-1}`` for inputs X (k, T, d) from states S0 (k, m); shape (k, T)."""
        y = self.as_euler().outputs(X, S0)
        return y + self.d[0] if self.d is not None else y

    def readout(self, S) -> np.ndarray:
        """``c^T s + d`` for states S (k, m); shape (k,)."""
        r = np.asarray(S, dtype=float) @ np.asarray(self.c)
        return r + self.d[0] if self.d is not None else r

    def equilibrium(self, X) -> np.ndarray:
        """Fixed points for constant inputs X (k, d): those of :meth:`as_euler` (``d`` does not enter the state)."""
        return self.as_euler().equilibrium(X)

    # -- the Trainable contract ----------------------------------------------
    def value_and_grad(self, X, Y, *, loss: str = "mse", weights=None) -> ResidualGradient:
        """The (time-weighted) loss on ``(X, Y)`` and its gradient by BPTT, zero initial state.

        Parameters
        ----------
        X : array_like, shape (batch, T, d)
        Y : array_like, shape (batch, T)
        loss : {"mse", "sse"}
            ``mean_{n,i} omega_i^2 r_{n,i}^2`` or ``0.5 sum_{n,i} omega_i^2 r_{n,i}^2``.
        weights : array_like, shape (T,), optional
            The squared time weights ``omega_i^2`` (:func:`time_weights`); ones by default.

        Raises
        ------
        FloatingPointError
            If the recurrence, the loss or the gradient became non-finite.
        """
        check_choice("loss", loss, ("mse", "sse"))
        model = self.as_euler()
        traj = forward(model, X)
        B, T = traj.y.shape
        Y = as_float_array("Y", Y, shape=(B, T))
        wt2 = None if weights is None else as_float_array("weights", weights, shape=(T,))
        y = traj.y + (self.d[0] if self.d is not None else 0.0)
        value, dy = sequence_loss(y, Y, loss, wt2)
        gr = backward(model, traj, dy).grad
        grads = {"U": gr.U, "b": gr.b, "c": gr.c}
        if self.d is not None:
            grads["d"] = np.array([dy.sum()])
        G = gr.W
        if self.form == "free":
            grads["M"] = G
        elif self.form == "diag":
            grads["w"] = -np.diag(G) * g_prime(self.g, self.w)
        else:
            P = self.P
            lam = g_map(self.g, self.w)
            grads["w"] = -np.einsum("ki,ij,kj->k", P, G, P) * g_prime(self.g, self.w)
            grads["P"] = -(lam[:, None] * P) @ (G + G.T)
        return ResidualGradient(value, grads, np.concatenate([grads[n].ravel() for n in self.param_names]))

    def weighted_error(self, X, Y, weights=None, *, divergence: float = DIVERGENCE) -> float:
        """The time-weighted MSE on ``(X, Y)`` without gradient; ``inf`` for a diverged run.

        The validation loss of :func:`dynmem.training.train_epochs`: :func:`stacked_errors`
        of this one parameter set.
        """
        X = as_float_array("X", X, ndim=3)
        wt2 = np.ones(X.shape[1]) if weights is None else np.asarray(weights, dtype=float)
        stacked = {k: np.broadcast_to(v, (1, *v.shape)).copy() for k, v in self.params().items()}
        return float(stacked_errors(self, stacked, X, Y, wt2, divergence=divergence)[0])


def stacked_outputs(template: ResidualRNN, stacked: dict, X, *, g: str | None = None,
                    chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Outputs of K parameter sets of ``template``'s architecture on ``X``: (K, B, T), and finite flags (K,).

    ``stacked`` holds every tensor of ``template.param_names`` with a leading
    axis K; ``g`` overrides ``template.g`` (the identity swap at evaluation).
    Runs :func:`dynmem.recurrences.outputs_many` in groups of ``chunk`` sets.
    """
    K = next(iter(stacked.values())).shape[0]
    W = recurrent_matrix(template.form, template.g if g is None else g, stacked)
    runner = template.as_euler()
    B, T = X.shape[0], X.shape[1]
    out = np.empty((K, B, T))
    finite = np.empty(K, dtype=bool)
    for s in range(0, K, chunk):
        e = min(K, s + chunk)
        params = {"W": W[s:e], "U": stacked["U"][s:e], "b": stacked["b"][s:e], "c": stacked["c"][s:e]}
        with np.errstate(all="ignore"):
            y, ok = outputs_many(runner, params, X)
            if template.output_bias:
                y = y + stacked["d"][s:e, 0][:, None, None]
        out[s:e] = y
        finite[s:e] = ok
    return out, finite


def stacked_errors(template: ResidualRNN, stacked: dict, X, Y, weights, *, g: str | None = None,
                   divergence: float = DIVERGENCE) -> np.ndarray:
    """Time-weighted MSE of K parameter sets, (K,); ``inf`` for a diverged set (non-finite or ``|y| > divergence``)."""
    y, ok = stacked_outputs(template, stacked, X, g=g)
    with np.errstate(all="ignore"):
        bad = ~ok | ~np.all(np.abs(y) <= divergence, axis=(1, 2))
        r = y - np.asarray(Y)[None]
        err = np.mean(np.asarray(weights)[None, None, :] * r * r, axis=(1, 2))
    return np.where(bad | ~np.isfinite(err), np.inf, err)


def init_residual(hidden: int, init: dict, rng, *, form: str = "free", g: str = "identity", activation: str = "tanh",
                  dt: float = 1.0, output_bias: bool = False, inputs: int = 1) -> ResidualRNN:
    """An initial :class:`ResidualRNN`.

    ``init["kind"]``:

    * ``"stable-diagonal"``: ``W_0 = -diag(r)`` with ``r`` log-spaced in
      ``init["rates"]`` (jittered by ``e^{U(-0.1, 0.1)}``), ``U ~ N(0, 1)``,
      ``b = 0``, ``c ~ N(0, 1/m)``, ``d = 0`` (``P = I`` for ``"orth"``);
    * ``"torch-default"``: PyTorch's ``nn.Parameter`` / ``nn.Linear``
      defaults as in [WLL]'s public code: ``w ~ N(0, 1)``, ``P`` the Q factor of
      a Gaussian matrix, encoder entries ``U(-1/sqrt(d), 1/sqrt(d))``, decoder
      entries ``U(-1/sqrt(m), 1/sqrt(m))`` (``"diag"`` and ``"orth"`` only).

    The draws come from ``numpy.random.default_rng(rng)`` in a fixed order.
    """
    check_choice("form", form, FORMS)
    check_choice("g", g, G_MAPS)
    rng = np.random.default_rng(rng)
    m, d = int(hidden), int(inputs)
    if m < 1:
        raise ValueError(f"`hidden` must be >= 1; got {hidden!r}.")
    p: dict = {}
    kind = init["kind"]
    if kind == "stable-diagonal":
        lo, hi = init["rates"]
        r = np.geomspace(lo, hi, m) * np.exp(rng.uniform(-0.1, 0.1, m))
        U = rng.standard_normal((m, d))
        c = rng.standard_normal(m) / math.sqrt(m)
        if form == "free":
            p["M"] = -np.diag(r)
        else:
            p["w"] = g_inverse(g, r)
            if form == "orth":
                p["P"] = np.eye(m)
        p.update(U=U, b=np.zeros(m), c=c)
        if output_bias:
            p["d"] = np.zeros(1)
    elif kind == "torch-default":
        if form == "free":
            raise ValueError("`init` 'torch-default' is defined for the 'diag' and 'orth' forms only.")
        p["w"] = rng.standard_normal(m)
        if form == "orth":
            p["P"] = np.linalg.qr(rng.standard_normal((m, m)))[0]
        be, bd = 1.0 / math.sqrt(d), 1.0 / math.sqrt(m)
        p["U"] = rng.uniform(-be, be, (m, d))
        p["b"] = rng.uniform(-be, be, m)
        p["c"] = rng.uniform(-bd, bd, m)
        if output_bias:
            p["d"] = rng.uniform(-bd, bd, 1)
    else:
        raise ValueError(f"`init['kind']` must be 'stable-diagonal' or 'torch-default'; got {kind!r}.")
    return ResidualRNN(form=form, g=g, activation=activation, dt=dt, **p)


@dataclass(frozen=True)
class MarginPenalty:
    """The penalty ``weight * relu(level - margin)`` of [WLL]'s public code, as a training hook.

    Called on a :class:`ResidualRNN`, returns ``(value, {"w": dvalue/dw})``
    (``(0.0, {})`` when inactive or for ``form="free"``), the penalty hook of
    :class:`dynmem.training.TrainOptions`.  The margin is the code's
    ``stability_margin()``: the smallest positive ``w_i`` for ``g = relu`` (no
    penalty if none is positive), ``g(min w)`` otherwise.
    """

    weight: float
    level: float

    def __call__(self, model: ResidualRNN) -> tuple[float, dict]:
        if model.form == "free":
            return 0.0, {}
        return self.of(model.g, model.w)

    def of(self, g: str, w) -> tuple[float, dict]:
        """The penalty and its gradient for the parameters ``w`` under the map ``g``."""
        w = np.asarray(w, dtype=float)
        if g == "relu":
            pos = np.flatnonzero(w > 0)
            if pos.size == 0:
                return 0.0, {}
            i = int(pos[np.argmin(w[pos])])
            margin, dmargin = float(w[i]), 1.0
        else:
            i = int(np.argmin(w))
            margin = float(g_map(g, w[i:i + 1])[0])
            dmargin = float(g_prime(g, w[i:i + 1])[0])
        gap = float(self.level) - margin
        if gap <= 0:
            return 0.0, {}
        gw = np.zeros_like(w)
        gw[i] = -float(self.weight) * dmargin
        return float(self.weight) * gap, {"w": gw}
