"""[WLL] Fig. 10: Heaviside against impulse memories of random sequence models.

[WLL] report that the Heaviside and impulse memories of randomly initialised
RNN, GRU, LSTM and S4 models "agree numerically", for several layer counts
(the legend's 1, 2 and 4 layers).  :func:`heaviside_vs_impulse` measures how
close, on dynmem's discrete models and their stacks (:class:`~dynmem.stack.Stack`,
L layers of the same kind and width, layer l reading layer l-1's hidden
sequence, no nonlinearity between layers, as ``torch.nn.GRU(num_layers=L)``;
a stacked SSM passes its flat state ``(Re h, Im h)`` up and stays linear):

* ``"rnn"`` - :meth:`DiscreteRNN.random <dynmem.models.DiscreteRNN.random>` (spectral radius 0.9, tanh),
* ``"gru"``, ``"lstm"`` - :class:`~dynmem.gated.GRUCell` / :class:`~dynmem.gated.LSTMCell`
  with PyTorch's default initialisation,
* ``"ssm"`` - :meth:`DiagonalSSM.random <dynmem.ssm.DiagonalSSM.random>` discretised by ZOH with dt = 1.

For each model both memories come from :func:`dynmem.memory.memory_function`
on steps ``0 .. steps - 1`` with the default probes; the agreement number is
``max_k |M_H(k) - M_I(k)| / max_k M_H(k)``.  Both are exactly equal for a
linear model and the SSM values are a check of that (rounding only), at
every depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import sys

from .._validation import check_int
from ..models.gated import GRUCell, LSTMCell
from ..io import atomic_savefig
from ..memory import memory_function
from ..models import DiscreteRNN
from ..models.ssm import DiagonalSSM
from ..models.stack import Stack
from . import verbose
from .record import Experiment

__all__ = ["Fig10Result", "heaviside_vs_impulse", "FIG10_MODELS", "TITLE", "CLAIM", "PROTOCOLS", "config", "run",
           "plot", "verdict"]

TITLE = "[WLL] Fig. 10: Heaviside vs impulse memories of random RNN, GRU, LSTM and SSM models"
CLAIM = ("The Heaviside and impulse memories of randomly initialised RNN, GRU, LSTM and S4 models are numerically "
         "equivalent.")
PROTOCOLS = ("dynmem",)

#: Agreement thresholds of :func:`verdict` on the median (over repeats) of
#: ``max_k |M_H - M_I| / max_k M_H``: "reproduced" when every (model, width)
#: is within ``AGREE``, "partly" when the linear SSM agrees to rounding
#: (``ROUNDING``) and every nonlinear model is within ``LOOSE``.
AGREE, LOOSE, ROUNDING = 0.05, 0.25, 1e-10

_SIZES = {
    # quick: a few seconds once numba's cache is warm (the README's `dynmem reproduce` runs it)
    "quick": {"widths": [8, 16], "depths": [1, 2, 4], "repeats": 20, "steps": 32},
    "full": {"widths": [8, 32, 128], "depths": [1, 2, 4], "repeats": 20, "steps": 128},
}

FIG10_MODELS = ("rnn", "gru", "lstm", "ssm")


def _random_layer(kind: str, width: int, inputs: int, rng):
    if kind == "rnn":
        return DiscreteRNN.random(width, inputs, rng=rng)
    if kind == "gru":
        return GRUCell.random(width, inputs, rng=rng)
    if kind == "lstm":
        return LSTMCell.random(width, inputs, rng=rng)
    return DiagonalSSM.random(width, inputs, rng=rng).discretize(1.0)


def _random_model(kind: str, width: int, rng, depth: int = 1):
    """One random model of ``kind``; for ``depth > 1`` a :class:`~dynmem.stack.Stack` of such layers (drawn bottom up)."""
    layers, inputs = [], 1
    for _ in range(depth):
        layers.append(_random_layer(kind, width, inputs, rng))
        inputs = layers[-1].feature_size
    return layers[0] if depth == 1 else Stack(tuple(layers))


def _key(kind: str, width: int, depth: int = 1) -> str:
    """Row name: ``"gru-8"`` for one layer, ``"gru-8-L4"`` for a stack of 4."""
    return f"{kind}-{width}" if depth == 1 else f"{kind}-{width}-L{depth}"


@dataclass(frozen=True, eq=False)
class Fig10Result:
    """Result of :func:`heaviside_vs_impulse`.

    Attributes
    ----------
    models : tuple of str
    widths : tuple of int
    depths : tuple of int
    steps : ndarray, shape (n,)
    heaviside, impulse : dict
        ``(model, width, depth) -> ndarray (repeats, n)`` memories.
    discrepancy : dict
        ``(model, width, depth) -> ndarray (repeats,)``: ``max_k |M_H - M_I| / max_k M_H`` per repeat.
    """

    models: tuple
    widths: tuple
    depths: tuple
    steps: np.ndarray
    heaviside: dict
    impulse: dict
    discrepancy: dict

    def summary(self) -> str:
        """One line per (model, width, depth): median and max of the discrepancy over the repeats."""
        lines = ["model  width  layers  median rel. diff  max rel. diff"]
        for key, d in self.discrepancy.items():
            lines.append(f"{key[0]:5s}  {key[1]:5d}  {key[2]:6d}  {np.median(d):16.3e}  {np.max(d):13.3e}")
        return "\n".join(lines)


def heaviside_vs_impulse(*, models=FIG10_MODELS, widths=(8, 32), depths=(1,), repeats: int = 20, steps: int = 64,
                         rng=None) -> Fig10Result:
    """Heaviside and impulse memories of ``repeats`` random models of each kind and width.

    Parameters
    ----------
    models : sequence of {"rnn", "gru", "lstm", "ssm"}
    widths : sequence of int
        Hidden widths (input dimension 1).
    depths : sequence of int
        Layer counts ([WLL]'s legend: 1, 2 and 4); every layer has the width.
    repeats : int
        Random models per (kind, width) ([WLL] use 20).
    steps : int
        Memories on steps ``0 .. steps - 1``.
    rng : seed or Generator

    Returns
    -------
    Fig10Result
    """
    models = tuple(models)
    for kind in models:
        if kind not in FIG10_MODELS:
            raise ValueError(f"`models` must hold names from {FIG10_MODELS}; got {kind!r}.")
    widths = tuple(check_int("widths", w, minimum=1) for w in widths)
    depths = tuple(check_int("depths", L, minimum=1, maximum=64) for L in depths)
    repeats = check_int("repeats", repeats, minimum=1)
    steps = check_int("steps", steps, minimum=2)
    rng = np.random.default_rng(rng)
    k = np.arange(steps)
    heav, imp, disc = {}, {}, {}
    for kind in models:
        for L in depths:
            for w in widths:
                H = np.empty((repeats, steps))
                I = np.empty((repeats, steps))
                for r in range(repeats):
                    model = _random_model(kind, w, rng, L)
                    H[r] = memory_function(model, k, input="heaviside").values
                    I[r] = memory_function(model, k, input="impulse").values
                heav[(kind, w, L)] = H
                imp[(kind, w, L)] = I
                disc[(kind, w, L)] = np.max(np.abs(H - I), axis=1) / np.max(H, axis=1)
    return Fig10Result(models=models, widths=widths, depths=depths, steps=k, heaviside=heav, impulse=imp,
                       discrepancy=disc)


# ---------------------------------------------------------------------------
# the experiment contract (dynmem.experiments)


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """Widths, depths (1, 2, 4 as [WLL]'s legend), repeats (20, as [WLL]), steps and seed for ``size``."""
    if (protocol or "dynmem") != "dynmem":
        raise ValueError(f"fig10 runs the 'dynmem' protocol only; got {protocol!r}.")
    if size not in _SIZES:
        raise ValueError(f"`size` must be 'quick' or 'full'; got {size!r}.")
    cfg = {"experiment": "fig10", "protocol": "dynmem", "size": size, "models": list(FIG10_MODELS), "seed": 0,
           **{k: (list(v) if isinstance(v, list) else v) for k, v in _SIZES[size].items()}}
    for k, v in changes.items():
        if k == "workdir":
            continue
        if k not in cfg or k in ("experiment", "protocol", "size"):
            raise ValueError(f"unknown fig10 setting {k!r}; known: models, widths, depths, repeats, steps, seed.")
        cfg[k] = list(v) if k in ("models", "widths", "depths") else v
    return cfg


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    """Both memories of every model and the agreement numbers, as JSON data."""
    res = heaviside_vs_impulse(models=config["models"], widths=config["widths"], depths=config.get("depths", [1]),
                               repeats=config["repeats"], steps=config["steps"], rng=config["seed"])
    rows = {}
    for (kind, w, L), d in res.discrepancy.items():
        H, I = res.heaviside[(kind, w, L)], res.impulse[(kind, w, L)]
        rows[_key(kind, w, L)] = {
            "model": kind, "width": int(w), "depth": int(L), "discrepancy": d,
            "median": float(np.median(d)), "max": float(np.max(d)),
            "median_heaviside": np.median(H, axis=0), "median_impulse": np.median(I, axis=0),
        }
        if progress and verbose():
            print(f"  fig10 {kind} width {w} layers {L}: median rel. diff {np.median(d):.3g}, max {np.max(d):.3g}",
                  file=sys.stderr, flush=True)
    return {"experiment": "fig10", "protocol_name": "dynmem", "config": dict(config), "size": config["size"],
            "steps": res.steps, "rows": rows, "summary": res.summary(),
            "budget": {"models": len(rows) * int(config["repeats"])}}


def verdict(result: dict) -> dict:
    """Agreement of the two memories, by the thresholds :data:`AGREE`, :data:`LOOSE`, :data:`ROUNDING`."""
    rows = result["rows"]
    med = {k: float(r["median"]) for k, r in rows.items()}
    worst = {k: float(r["max"]) for k, r in rows.items()}
    linear = [k for k, r in rows.items() if r["model"] == "ssm"]
    nonlinear = [k for k in rows if k not in linear]
    if all(v <= AGREE for v in med.values()):
        v = "reproduced"
    elif all(worst[k] <= ROUNDING for k in linear) and all(med[k] <= LOOSE for k in nonlinear):
        v = "partly"
    else:
        v = "not reproduced"
    parts = [f"{k}: median {med[k]:.2g}, max {worst[k]:.2g}" for k in rows]
    why = ("max_k |M_H - M_I| / max_k M_H over the repeats - " + "; ".join(parts) +
           f" (reproduced: every median <= {AGREE}; partly: SSM to rounding <= {ROUNDING:g} and nonlinear medians "
           f"<= {LOOSE})")
    return {"verdict": v, "why": why, "numbers": {"median": med, "max": worst}}


def plot(result: dict, path: str) -> None:
    """Median Heaviside and impulse memories per model and layer count (widest models), and the discrepancies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    kinds = list(dict.fromkeys(r["model"] for r in rows.values()))
    k = np.asarray(result["steps"], float)
    from ..plotting import finish_figure

    n = len(kinds) + 1
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.9 * nrows), squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, kind in zip(axes, kinds):
        mine = [r for r in rows.values() if r["model"] == kind]
        width = max(int(r["width"]) for r in mine)
        for r in mine:
            if int(r["width"]) != width:
                continue
            L = int(r.get("depth", 1))
            h = np.asarray(r["median_heaviside"], float)
            i = np.asarray(r["median_impulse"], float)
            line, = ax.semilogy(k[h > 0], h[h > 0], label=f"{L} layer{'s' if L > 1 else ''}, Heaviside")
            ax.semilogy(k[i > 0], i[i > 0], "--", color=line.get_color(), label=f"{L} layer{'s' if L > 1 else ''}, impulse")
        ax.set(title=f"{kind}, $m = {width}$: median over repeats", xlabel="step $k$", ylabel="memory $M(k)$")
        ax.legend(fontsize=7)
    ax = axes[n - 1]
    spare = nrows * ncols - n
    if spare:  # the discrepancy panel (many labels) takes the free cells of the last row
        col = (n - 1) % ncols
        ax.set_visible(False)
        ax = fig.add_subplot(grid[0, 0].get_gridspec()[nrows - 1, col:])
    labels = list(rows)
    data = [np.maximum(np.asarray(rows[key]["discrepancy"], float), 1e-17) for key in labels]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, fontsize=8)
    ax.set_yscale("log")
    ax.set(title=r"$\max_k |M_H - M_I| \,/\, \max_k M_H$", ylabel="relative difference (box: repeats)")
    finish_figure(fig, result, extra="[WLL] Fig. 10, Heaviside against impulse memory at initialisation")
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)

EXPERIMENT = Experiment(name="fig10", title=TITLE, claim=CLAIM, protocols=PROTOCOLS, config=config, run=run,
                        plot=plot, verdict=verdict)
