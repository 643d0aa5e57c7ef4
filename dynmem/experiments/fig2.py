"""[WLL] Fig. 2: trained tanh RNNs with a free recurrent matrix; does the stability boundary shrink with m?

Protocols: ``"paper"``, ``"code"`` (:mod:`dynmem.experiments.study`) and
``"dynmem"`` (the earlier protocol, :mod:`dynmem.experiments.wll_training`).
"""

from __future__ import annotations

from . import trained_figure as _tf

TITLE = "[WLL] Fig. 2: trained tanh RNN, free W"
CLAIM = ("For a polynomial-memory target the stability boundary of trained tanh RNNs shrinks as the width grows "
         "(perturbation curves cross further left); the spectral margin goes to 0 as the error does "
         "(Thm 3.9's mechanism), while an exponential target keeps a bounded margin.")
PROTOCOLS = ("paper", "code", "dynmem")
FIGURE = "fig2"


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    """See :func:`dynmem.experiments.trained_figure.config`."""
    return _tf.config(FIGURE, size, protocol or PROTOCOLS[0], **changes)


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    return _tf.run(config, executor=executor, progress=progress)


def plot(result: dict, path: str) -> None:
    _tf.plot(result, path, TITLE)


def verdict(result: dict) -> dict:
    return _tf.verdict_fig2(result)
