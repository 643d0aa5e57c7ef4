"""One reproduced experiment as one record: what it claims, how it is configured, run, drawn and judged.

Every experiment module ends with ``EXPERIMENT = Experiment(...)`` (a module
may hold more than one record: :mod:`dynmem.experiments.trained_figure` holds
``fig2`` and ``fig8b``, which differ only in the parameterisation of ``W``).
:data:`dynmem.experiments.REGISTRY` lists where each record lives and
:func:`dynmem.experiments.get_experiment` imports it on first use.

The record is checked when it is built, so a module that misses a member or
a docstring fails at import with a message that names the member, not later
in the middle of a run.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable, Mapping

__all__ = ["Experiment"]

_CALLABLES = ("config", "run", "plot", "verdict")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A reproduced experiment.

    Parameters
    ----------
    name : str
        Registry name (``dynmem reproduce NAME``), e.g. ``"fig2"``.
    title, claim : str
        What it reproduces, and the paper's claim in words.
    protocols : tuple of str
        The protocols it runs (:mod:`dynmem.experiments.protocols`); the first
        is its default.
    config : callable
        ``config(size="quick", protocol=None, **changes) -> dict``: plain JSON
        data for a size (``"quick"`` or ``"full"``) and protocol.
    run : callable
        ``run(config, *, executor=None, progress=False) -> dict``: every
        number, JSON-serialisable, with the config, the protocol and the budget
        actually spent; ``executor`` runs its tasks through :mod:`dynmem.sweep`.
    plot : callable
        ``plot(result, path)``: its figure, written atomically.
    verdict : callable
        ``verdict(result) -> dict`` with ``verdict`` (``"reproduced"``,
        ``"partly"``, ``"not reproduced"``, ``"not informative"``), ``why`` and
        the ``numbers`` behind it.
    criteria : callable, optional
        ``criteria(result) -> dict``: the named criteria the verdict reads,
        where the experiment states them apart.
    title_for : callable, optional
        ``title_for(result) -> str``: the title of one result, where it
        depends on how the run was made (e.g. which ``W`` a protocol trains);
        :meth:`title_of` falls back to ``title``.
    requires : mapping, optional
        Optional modules it needs, each with the extra that installs it
        (``{"sklearn": "data"}``); ``dynmem reproduce all`` skips the
        experiment, saying which extra to install, when one is missing.

    Raises
    ------
    TypeError
        When a member is missing, not callable, or a callable has no docstring.
    ValueError
        When ``name`` is empty or ``protocols`` is empty.
    """

    name: str
    title: str
    claim: str
    protocols: tuple
    config: Callable
    run: Callable
    plot: Callable
    verdict: Callable
    criteria: Callable | None = None
    title_for: Callable | None = None
    requires: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string; got {self.name!r}.")
        for field in ("title", "claim"):
            v = getattr(self, field)
            if not isinstance(v, str) or not v.strip():
                raise TypeError(f"experiment {self.name!r}: `{field}` must be a non-empty string; got {v!r}.")
        protos = tuple(self.protocols)
        if not protos or not all(isinstance(p, str) and p for p in protos):
            raise ValueError(f"experiment {self.name!r}: `protocols` must be a non-empty tuple of names; "
                             f"got {self.protocols!r}.")
        object.__setattr__(self, "protocols", protos)
        object.__setattr__(self, "requires", dict(self.requires))
        members = _CALLABLES + tuple(f for f in ("criteria", "title_for") if getattr(self, f) is not None)
        for field in members:
            fn = getattr(self, field)
            if not callable(fn):
                raise TypeError(f"experiment {self.name!r}: `{field}` must be callable; got {fn!r}.")
            if not (inspect.getdoc(fn) or "").strip():
                raise TypeError(f"experiment {self.name!r}: `{field}` ({getattr(fn, '__qualname__', fn)!r}) "
                                "has no docstring; every member of an experiment record says what it does.")

    def title_of(self, result: dict) -> str:
        """The title of ``result``: :attr:`title_for` of it when the record has one, else :attr:`title`."""
        return self.title_for(result) if self.title_for is not None else self.title

    @property
    def default_protocol(self) -> str:
        """The protocol run when none is asked for (the first of :attr:`protocols`)."""
        return self.protocols[0]
