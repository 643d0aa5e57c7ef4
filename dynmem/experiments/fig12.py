"""[WLL] Fig. 12 (App. I.2): a random causal transformer teacher has non-decaying memory; tanh RNN students do not
approximate it stably, and width does not help.

The teacher is a 1-layer, 1-head causal transformer written here in numpy
(:class:`Transformer`): scalar tokens ``x_k`` embedded as ``z_k = x_k e + P_k``
(``e`` Gaussian, ``P_k`` the sinusoidal positional encoding of Vaswani et al.),
one causal softmax self-attention block with a residual connection, a ReLU
feed-forward block (hidden ``4 d_model``) with a residual connection and a
linear read-out ``y_k = w^T h_k``.  ``d_model = 16`` (the paper's size); one
head, no layer norm, Gaussian weights with variance ``1 / fan_in`` and the
sinusoidal encoding are dynmem's choices (the paper does not state them).
Without positional information a causal attention layer maps a constant input
to a constant output; the encoding makes the step response move for ever,
which is the non-decaying memory.

Its memory is probed with Heaviside inputs through
:func:`dynmem.memory.memory_function` (the transformer as a callable whose
output is the piecewise-linear interpolant of its token outputs, so the
central difference at ``t = k + 1/2`` is ``y_{k+1} - y_k``), and classified by
:func:`dynmem.memory.fit_decay`.

Students: tanh RNNs (the ``"paper"`` protocol's Euler recurrence, ``dt = 0.1``,
optimiser and initialisation) of widths ``m = 8..64`` trained on the teacher's
normalised outputs; each student's relative test error and its ``W + beta I``
threshold (:func:`dynmem.experiments.study.stability_measures`).

Verdict criteria (fixed here):

* F1 non-decaying teacher memory: ``fit_decay`` does not call it exponential
  and ``M(t)`` on the last quarter of the window is at least 10 % of its mean
  on the first quarter;
* F2 width does not help: the widest student's relative error is at least
  half the best of the two next-widest (``m = 64`` no better than 16 or 32 by
  a factor 2);
* F3 no stable approximation: the widest student's relative error exceeds
  ``tol`` or the students' thresholds shrink with ``m`` (slope < -0.5).

``not informative``: the best student's relative error is above 0.5 (the
budget taught the students too little to compare widths); else
``reproduced``: F1-F3; ``partly``: F1 and one of F2, F3; ``not reproduced``:
otherwise.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..decay import loglog_slope
from ..io import atomic_savefig
from . import model_line
from .record import Experiment

TITLE = "[WLL] Fig. 12: random causal transformer teacher, tanh RNN students"
CLAIM = ("A random 1-layer causal transformer has non-decaying memory; tanh RNN students do not approximate it "
         "stably: m = 64 is no better than m = 16 or 32.")
PROTOCOLS = ("paper",)


class Transformer:
    """A random 1-layer, 1-head causal transformer on scalar tokens (see the module docstring)."""

    def __init__(self, d_model: int = 16, *, rng=None, d_ff: int | None = None):
        rng = np.random.default_rng(rng)
        d = int(d_model)
        f = int(d_ff or 4 * d)
        g = lambda *shape, fan: rng.standard_normal(shape) / math.sqrt(fan)
        self.d, self.d_ff = d, f
        self.e = g(d, fan=1)
        self.Wq, self.Wk, self.Wv, self.Wo = (g(d, d, fan=d) for _ in range(4))
        self.W1, self.b1 = g(d, f, fan=d), np.zeros(f)
        self.W2, self.b2 = g(f, d, fan=f), np.zeros(d)
        self.w = g(d, fan=d)

    def positions(self, T: int) -> np.ndarray:
        """The sinusoidal encoding ``P[k, 2i] = sin(k / 10000^{2i/d})``, ``P[k, 2i+1] = cos(...)``."""
        k = np.arange(int(T))[:, None]
        i = np.arange(self.d)[None, :]
        ang = k / np.power(10000.0, (2 * (i // 2)) / self.d)
        return np.where(i % 2 == 0, np.sin(ang), np.cos(ang))

    def __call__(self, X) -> np.ndarray:
        """Outputs ``(batch, T)`` of token sequences ``X`` of shape ``(batch, T)`` or ``(batch, T, 1)``."""
        X = np.asarray(X, float)
        if X.ndim == 3:
            X = X[..., 0]
        B, T = X.shape
        z = X[:, :, None] * self.e + self.positions(T)[None]
        q, k, v = z @ self.Wq, z @ self.Wk, z @ self.Wv
        s = np.einsum("btd,bsd->bts", q, k) / math.sqrt(self.d)
        s = np.where(np.tril(np.ones((T, T), bool))[None], s, -np.inf)
        s = s - s.max(axis=2, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=2, keepdims=True)
        h = z + np.einsum("bts,bsd->btd", a, v) @ self.Wo
        h = h + np.maximum(h @ self.W1 + self.b1, 0.0) @ self.W2 + self.b2
        return h @ self.w

    def functional(self, path, t) -> np.ndarray:
        """``H(x_path, t)`` for :func:`dynmem.memory.memory_function`: tokens ``x_k = path(k)``, outputs interpolated."""
        t = np.asarray(t, float)
        K = int(math.ceil(float(t.max()))) + 2
        tokens = np.asarray(path(np.arange(K, dtype=float)), float).reshape(K, -1)[:, 0]
        y = self(tokens[None])[0]
        return np.interp(t, np.arange(K, dtype=float), y)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Quick: widths 8..64, 128 sequences of 32 tokens, 40 epochs. Full: 2,560 sequences of 64 tokens, 300 epochs
    (dynmem's budget; the paper gives none)."""
    if (protocol or "paper") != "paper":
        raise ValueError(f"fig12 runs the 'paper' protocol only; got {protocol!r}.")
    if size == "quick":
        cfg = dict(widths=[8, 16, 32, 64], n_train=128, n_test=64, T=32, epochs=40, n_memory=64)
    elif size == "full":
        cfg = dict(widths=[8, 16, 32, 64], n_train=2560, n_test=1280, T=64, epochs=300, n_memory=256)
    else:
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg.update(experiment="fig12", protocol="paper", size=size, d_model=16, seed=0, tol=1e-2)
    for k, v in changes.items():
        if k == "workdir":
            continue
        if k not in cfg:
            raise ValueError(f"unknown fig12 setting {k!r}; known: {sorted(cfg)}.")
        cfg[k] = v
    return cfg


def teacher_memory(teacher: Transformer, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(t, M(t), decay class)`` on ``t = k + 1/2``, ``k = 0..n-1``."""
    from ..memory import fit_decay, memory_function

    t = np.arange(int(n), dtype=float) + 0.5
    mem = memory_function(teacher.functional, t, directions=[[1.0], [-1.0]], fd_step=0.25)
    return t, np.asarray(mem.values, float), str(fit_decay(t, mem.values).kind)


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """The transformer teacher's memory and the students trained on it at every width, with their thresholds."""

    from . import trained as tr
    from .protocols import protocol as get_protocol
    from .study import stability_measures

    start = time.perf_counter()
    cfg = config
    teacher = Transformer(int(cfg["d_model"]), rng=[int(cfg["seed"]), 12])
    t, mem, kind = teacher_memory(teacher, int(cfg["n_memory"]))
    proto = get_protocol("paper")
    dt = float(proto["model"]["dt"])
    rng = np.random.default_rng([int(cfg["seed"]), 121])
    X = rng.standard_normal((int(cfg["n_train"]), int(cfg["T"]), 1))
    Xt = rng.standard_normal((int(cfg["n_test"]), int(cfg["T"]), 1))
    Xl = rng.standard_normal((16, 4 * int(cfg["T"]), 1))
    raw = teacher(X)
    mean, scale = float(np.mean(raw)), float(np.std(raw))
    Y, Yt, Yl = ((teacher(Z) - mean) / scale for Z in (X, Xt, Xl))
    var = float(np.var(Yt))
    data = {"X": X, "Y": Y, "Xv": Xt, "Yv": Yt}
    training = dict(proto["training"], max_epochs=int(cfg["epochs"]), snapshots=[])
    students = []
    for m in cfg["widths"]:
        net = tr.Net(int(m), form="free", activation="tanh", dt=dt)
        p0 = tr.init_params(net, proto["init"], np.random.default_rng([int(cfg["seed"]), int(m), 5]))
        fs = tr.fit(net, p0, data, training, seed=int(m), threshold=1e-8)
        e = float(tr.evaluate(net, {k: v[None] for k, v in fs.best_params.items()}, Xt, Yt,
                              tr.time_weights(Xt.shape[1], 0.0))[0])
        meas = stability_measures(net, fs.best_params, fs.best_params["M"], (Xl, Yl), window=int(cfg["T"]), seed=int(m))
        students.append({"m": int(m), "relative_error": e / var, "shift_threshold": float(meas["shift_threshold"]),
                         "effective_margin": float(meas["effective_margin"]), "steps": int(fs.steps)})
        if progress:
            model_line(f"fig12 m={m}: relative error {e / var:.3g}")
    return {"experiment": "fig12", "protocol_name": "paper", "size": cfg["size"], "config": dict(cfg),
            "protocol": proto, "teacher": {"t": t.tolist(), "memory": mem.tolist(), "decay_kind": kind,
                                           "output_mean": mean, "output_std": scale},
            "students": students, "seconds": time.perf_counter() - start}


def criteria(result: dict) -> dict:
    """F1 (non-decaying teacher memory), F2 (width does not help), F3 (no stable approximation), with their numbers."""
    mem = np.asarray(result["teacher"]["memory"], float)
    q = max(1, mem.size // 4)
    late_ratio = float(np.mean(mem[-q:]) / max(np.mean(mem[:q]), 1e-300))
    st = sorted(result["students"], key=lambda s: s["m"])
    err = [s["relative_error"] for s in st]
    ms = [s["m"] for s in st]
    th = [s["shift_threshold"] for s in st]
    best_mid = min(err[-3:-1]) if len(err) >= 3 else (err[0] if len(err) == 2 else math.nan)
    th_slope = float(loglog_slope(ms, th).slope) if min(th) > 0 else -math.inf
    return {
        "late_over_early_memory": late_ratio, "decay_kind": result["teacher"]["decay_kind"],
        "widest_over_best_mid": err[-1] / best_mid if best_mid > 0 else math.inf,
        "widest_error": err[-1], "threshold_slope": th_slope,
        "F1": bool(result["teacher"]["decay_kind"] != "exponential" and late_ratio >= 0.1),
        "F2": bool(err[-1] >= 0.5 * best_mid),
        "F3": bool(err[-1] > float(result["config"]["tol"]) or th_slope < -0.5),
    }


def verdict(result: dict) -> dict:
    """F1-F3 of the module docstring; ``not informative`` when the best student's relative error is above 0.5."""
    c = criteria(result)
    best = min(s["relative_error"] for s in result["students"])
    if not best <= 0.5:
        v = "not informative"
    elif c["F1"] and c["F2"] and c["F3"]:
        v = "reproduced"
    elif c["F1"] and (c["F2"] or c["F3"]):
        v = "partly"
    else:
        v = "not reproduced"
    errs = {s["m"]: round(s["relative_error"], 4) for s in result["students"]}
    why = ((f"the students learned too little to compare widths (best relative error {best:.3g} > 0.5); "
            if v == "not informative" else "") +f"teacher memory {c['decay_kind']}, late/early {c['late_over_early_memory']:.3g}; relative errors {errs}; "
           f"widest/best of the next two {c['widest_over_best_mid']:.3g}; threshold slope in m "
           f"{c['threshold_slope']:.3g}; F1-F3 {[c['F1'], c['F2'], c['F3']]}")
    return {"verdict": v, "why": why, "numbers": c}


def plot(result: dict, path: str) -> None:
    """The teacher's memory function, and the students' errors and thresholds per width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import finish_figure

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
    t = np.asarray(result["teacher"]["t"], float)
    mem = np.asarray(result["teacher"]["memory"], float)
    ok = mem > 0
    ax.semilogy(t[ok], mem[ok], "-")
    ax.set(xlabel=r"token $k + \frac{1}{2}$", ylabel=r"memory $|y_{k+1} - y_k|$ (sup over amplitudes)",
           title=f"transformer teacher memory ({result['teacher']['decay_kind']})")
    st = sorted(result["students"], key=lambda s: s["m"])
    ax2.loglog([s["m"] for s in st], [s["relative_error"] for s in st], "o-", label="one student per width")
    ax2.axhline(result["config"]["tol"], color="k", lw=0.8, ls="--", label=f"tolerance {result['config']['tol']:g}")
    ax2.set(xlabel="student width $m$", ylabel="relative test error", title="tanh RNN students")
    ax2.legend(fontsize=7)
    finish_figure(fig, result, extra=TITLE)
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="fig12", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict, criteria=criteria)
