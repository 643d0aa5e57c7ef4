"""The reproduced experiments: one record per experiment, one registry.

Each experiment is an :class:`~dynmem.experiments.record.Experiment` record
(name, title, claim, protocols, and its ``config`` / ``run`` / ``plot`` /
``verdict`` functions, each documented), defined at the end of its module as
``EXPERIMENT`` (Figs. 2 and 8b share :mod:`dynmem.experiments.trained_figure`,
as ``FIG2`` and ``FIG8B``):

``config(size="quick", protocol=None, **changes) -> dict``
    Its configuration (plain JSON data) for a size (``"quick"``: about a
    second to a minute; ``"full"``: the protocol's own budget) and protocol;
    an unknown setting in ``changes`` is an error.
``run(config, *, executor=None, progress=False) -> dict``
    The result (``progress``: one line per trained model on stderr; the
    per-epoch and per-item detail only when :func:`verbose` is on): every number, JSON-serialisable, with the config, the
    protocol and the budget actually spent.  ``executor`` (a process pool or a
    Dask executor) runs its tasks through :mod:`dynmem.sweep` where it has
    tasks; the numbers are the serial run's.
``plot(result, path)``
    Its figure, written atomically.
``verdict(result) -> dict``
    ``verdict`` (``"reproduced"``, ``"partly"``, ``"not reproduced"``, ``"not informative"``),
    ``why`` and the ``numbers`` behind it, computed from the result (for the
    replication report, :mod:`dynmem.experiments.report`).

:data:`REGISTRY` maps experiment names to where their records live
(``"module:NAME"``); :func:`get_experiment` imports a record on first use, and
the ``dynmem reproduce`` command reads it.  :data:`RENAMED` records names whose meaning changed:
``fig4`` was dynmem's trained tanh net with a diagonal softplus ``W`` (the
paper's Fig. 8b) and is now the paper's Fig. 4 (a linear RNN); the tanh
experiment is ``fig8b``.  :func:`experiment_of` reads an old result file by
its old meaning, and asking ``fig4`` for a protocol only the old experiment had
raises an error that says so (:func:`renamed_note`).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

__all__ = ["REGISTRY", "RENAMED", "experiment_names", "get_experiment", "experiment_of", "renamed_note", "verbose",
           "VERBOSE_ENV", "model_line", "progress_line"]

# Set by ``dynmem reproduce --verbose``; an environment variable so that it reaches pool workers
# without entering any config (and so any result store's identity).
VERBOSE_ENV = "DYNMEM_VERBOSE"

REGISTRY = {
    "mechanism": "mechanism:EXPERIMENT",
    "fig1": "fig1:EXPERIMENT",
    "fig2": "trained_figure:FIG2",
    "fig3": "fig3:EXPERIMENT",
    "fig4": "fig4:EXPERIMENT",
    "fig8b": "trained_figure:FIG8B",
    "appc": "appc:EXPERIMENT",
    "fig12": "fig12:EXPERIMENT",
    "fig9": "fig9:EXPERIMENT",
    "fig78": "fig78:EXPERIMENT",
    "fig11": "fig11:EXPERIMENT",
    "kernel-limit": "kernel_limit:EXPERIMENT",
    "ablation": "ablation:EXPERIMENT",
    # last: argparse wraps the `dynmem reproduce --help` list at hyphens, and before kernel-limit it splits that name
    "fig10": "fig10:EXPERIMENT",
}


def experiment_names() -> tuple[str, ...]:
    """The registered experiment names, in the order ``dynmem reproduce`` runs them."""
    return tuple(REGISTRY)


def get_experiment(name: str):
    """The :class:`~dynmem.experiments.record.Experiment` record of experiment ``name`` (its module imported on first use)."""
    if name not in REGISTRY:
        raise ValueError(f"`name` must be one of {list(REGISTRY)}; got {name!r}.")
    module, attr = REGISTRY[name].split(":")
    rec = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    if rec.name != name:  # a registry line pointing at another experiment's record
        raise RuntimeError(f"registry entry {name!r} -> {REGISTRY[name]!r} holds the record of {rec.name!r}.")
    return rec


RENAMED = {
    "fig4": {"new": "fig8b", "old_protocols": ("paper", "code", "dynmem"),
             "note": ("`fig4` is now the paper's Fig. 4 (a linear RNN with W = -expm(M) / -softplus(M), protocol "
                      "'paper' only); the trained tanh RNN with W = -softplus(w) formerly called `fig4` is [WLL] "
                      "Fig. 8b and is registered as `fig8b` (protocols paper, code, dynmem).")},
}


def renamed_note(name: str, protocol: str | None = None) -> str:
    """The rename message when ``name`` with ``protocol`` asks for an experiment's old meaning ("" otherwise).

    ``protocol=None`` returns the note for any renamed name.
    """
    r = RENAMED.get(name)
    if r is None:
        return ""
    if protocol is None or (protocol in r["old_protocols"] and protocol not in get_experiment(name).protocols):
        return r["note"]
    return ""


def experiment_of(result: dict) -> str | None:
    """The registered experiment a result file belongs to (old ``fig4`` files of the tanh study: ``fig8b``)."""
    if not isinstance(result, dict):
        return None
    rep = result.get("reproduce") if isinstance(result.get("reproduce"), dict) else {}
    name = rep.get("experiment") or result.get("experiment")
    cfg = result.get("config") if isinstance(result.get("config"), dict) else {}
    if name == "fig4" and (cfg.get("figure") in ("fig4", "fig8b") or "targets" in result or "per_width" in result):
        return RENAMED["fig4"]["new"]
    return name


def verbose() -> bool:
    """Whether the experiments print their detail (per-epoch training lines, per-width numbers) with their progress."""
    return os.environ.get(VERBOSE_ENV) == "1"


def _tty(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def model_line(text: str, stream=None) -> None:
    """One trained model's line: redrawn in place on a terminal (unless :func:`verbose`), a line in a log."""
    stream = sys.stderr if stream is None else stream
    if _tty(stream) and not verbose():
        cols = shutil.get_terminal_size((100, 24)).columns
        print("\r" + text[: max(cols - 1, 20)] + "\x1b[K", end="", file=stream, flush=True)
    else:
        print(text, file=stream, flush=True)


def progress_line(text: str, stream=None) -> None:
    """A line that stays (an experiment starting or finishing): on a terminal it first clears a redrawn model line."""
    stream = sys.stderr if stream is None else stream
    print(("\r\x1b[K" if _tty(stream) else "") + text, file=stream, flush=True)
