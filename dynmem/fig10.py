"""Heaviside against impulse memories of random sequence models ([WLL] Fig. 10).

[WLL] report that the Heaviside and impulse memories of randomly initialised
RNN, GRU, LSTM and S4 models "agree numerically".  :func:`heaviside_vs_impulse`
measures how close, on dynmem's single-layer discrete models (the paper also
varies the layer count; stacks are not models in dynmem yet):

* ``"rnn"`` - :meth:`DiscreteRNN.random <dynmem.models.DiscreteRNN.random>` (spectral radius 0.9, tanh),
* ``"gru"``, ``"lstm"`` - :class:`~dynmem.gated.GRUCell` / :class:`~dynmem.gated.LSTMCell`
  with PyTorch's default initialisation,
* ``"ssm"`` - :meth:`DiagonalSSM.random <dynmem.ssm.DiagonalSSM.random>` discretised by ZOH with dt = 1.

For each model both memories come from :func:`dynmem.memory.memory_function`
on steps ``0 .. steps - 1`` with the default probes; the agreement number is
``max_k |M_H(k) - M_I(k)| / max_k M_H(k)``.  Both are exactly equal for a
linear model and the SSM values are a check of that (rounding only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_int
from .gated import GRUCell, LSTMCell
from .memory import memory_function
from .models import DiscreteRNN
from .ssm import DiagonalSSM

__all__ = ["Fig10Result", "heaviside_vs_impulse", "FIG10_MODELS"]

FIG10_MODELS = ("rnn", "gru", "lstm", "ssm")


def _random_model(kind: str, width: int, rng):
    if kind == "rnn":
        return DiscreteRNN.random(width, 1, rng=rng)
    if kind == "gru":
        return GRUCell.random(width, 1, rng=rng)
    if kind == "lstm":
        return LSTMCell.random(width, 1, rng=rng)
    return DiagonalSSM.random(width, 1, rng=rng).discretize(1.0)


@dataclass(frozen=True, eq=False)
class Fig10Result:
    """Result of :func:`heaviside_vs_impulse`.

    Attributes
    ----------
    models : tuple of str
    widths : tuple of int
    steps : ndarray, shape (n,)
    heaviside, impulse : dict
        ``(model, width) -> ndarray (repeats, n)`` memories.
    discrepancy : dict
        ``(model, width) -> ndarray (repeats,)``: ``max_k |M_H - M_I| / max_k M_H`` per repeat.
    """

    models: tuple
    widths: tuple
    steps: np.ndarray
    heaviside: dict
    impulse: dict
    discrepancy: dict

    def summary(self) -> str:
        """One line per (model, width): median and max of the discrepancy over the repeats."""
        lines = ["model  width  median rel. diff  max rel. diff"]
        for key, d in self.discrepancy.items():
            lines.append(f"{key[0]:5s}  {key[1]:5d}  {np.median(d):16.3e}  {np.max(d):13.3e}")
        return "\n".join(lines)


def heaviside_vs_impulse(*, models=FIG10_MODELS, widths=(8, 32), repeats: int = 20, steps: int = 64,
                         rng=None) -> Fig10Result:
    """Heaviside and impulse memories of ``repeats`` random models of each kind and width.

    Parameters
    ----------
    models : sequence of {"rnn", "gru", "lstm", "ssm"}
    widths : sequence of int
        Hidden widths (input dimension 1).
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
    repeats = check_int("repeats", repeats, minimum=1)
    steps = check_int("steps", steps, minimum=2)
    rng = np.random.default_rng(rng)
    k = np.arange(steps)
    heav, imp, disc = {}, {}, {}
    for kind in models:
        for w in widths:
            H = np.empty((repeats, steps))
            I = np.empty((repeats, steps))
            for r in range(repeats):
                model = _random_model(kind, w, rng)
                H[r] = memory_function(model, k, input="heaviside").values
                I[r] = memory_function(model, k, input="impulse").values
            heav[(kind, w)] = H
            imp[(kind, w)] = I
            disc[(kind, w)] = np.max(np.abs(H - I), axis=1) / np.max(H, axis=1)
    return Fig10Result(models=models, widths=widths, steps=k, heaviside=heav, impulse=imp, discrepancy=disc)
