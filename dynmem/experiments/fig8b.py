"""[WLL] Fig. 8b (tanh): a stable reparameterisation of W removes the shrinking boundary.

Registered as ``fig4`` until the paper's own Fig. 4 (a linear RNN,
:mod:`dynmem.experiments.fig4`) was added; result files that say ``fig4`` with
a ``paper`` / ``code`` / ``dynmem`` study config are read as this experiment.

Protocols: ``"paper"`` (``W = -diag(softplus(w))``), ``"code"`` (the code's
``"softplusrnn"``, ``W = -P^T diag(softplus(w)) P``) and ``"dynmem"``.
"""

from __future__ import annotations

from . import trained_figure as _tf

TITLE = "[WLL] Fig. 8b: trained tanh RNN, W = -softplus(w)"
CLAIM = ("With W = -softplus(w) the polynomial target is stably approximated: perturbations never make W "
         "unstable, the boundary does not shrink with m and the error falls with m.")
PROTOCOLS = ("paper", "code", "dynmem")
FIGURE = "fig8b"


def config(size: str = "quick", protocol: str | None = None, **changes) -> dict:
    return _tf.config(FIGURE, size, protocol or PROTOCOLS[0], **changes)


def run(config: dict, *, executor=None, progress: bool = False) -> dict:
    return _tf.run(config, executor=executor, progress=progress)


def plot(result: dict, path: str) -> None:
    _tf.plot(result, path, TITLE)


def verdict(result: dict) -> dict:
    return _tf.verdict_fig4(result)
