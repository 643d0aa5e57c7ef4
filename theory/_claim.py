"""The claim record and the runner of the theorem catalogue.

A claim states a formula (LaTeX), its assumptions, its source, how it is
checked, and the outcome the project expects ("verified", or "refuted" for
the known refutations kept on purpose).  Its ``check`` computes something
every time it runs and returns an :class:`Outcome`; nothing passes without
computing.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

OUTCOMES = ("verified", "refuted", "inconclusive")


@dataclass(frozen=True)
class Outcome:
    """What a check found.

    Attributes
    ----------
    outcome : {"verified", "refuted", "inconclusive"}
    numbers : dict
        The key numbers measured (shown in the table and the JSON).
    detail : str
        How it was decided; for a refutation, the counterexample.
    """

    outcome: str
    numbers: dict = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"`outcome` must be one of {OUTCOMES}; got {self.outcome!r}.")


@dataclass(frozen=True)
class Claim:
    """One theorem quantity of docs/theory.md and how dynmem checks it."""

    name: str
    statement: str  # LaTeX
    assumptions: str
    source: str
    method: str  # "symbolic", "numeric" or "symbolic+numeric"
    expected: str  # "verified" or "refuted"
    check: Callable[[], Outcome]
    module: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """A claim after running its check."""

    claim: Claim
    outcome: Outcome
    seconds: float

    @property
    def as_expected(self) -> bool:
        return self.outcome.outcome == self.claim.expected

    def to_dict(self) -> dict:
        return dict(name=self.claim.name, module=self.claim.module, statement=self.claim.statement,
                    assumptions=self.claim.assumptions, source=self.claim.source, method=self.claim.method,
                    expected=self.claim.expected, outcome=self.outcome.outcome, as_expected=self.as_expected,
                    numbers={k: _jsonable(v) for k, v in self.outcome.numbers.items()}, detail=self.outcome.detail,
                    seconds=self.seconds)


def _jsonable(v):
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    return v


def run_claim(claim: Claim) -> ClaimResult:
    """Run one check; an exception is an inconclusive outcome carrying its traceback."""
    t0 = time.perf_counter()
    try:
        out = claim.check()
        if not isinstance(out, Outcome):
            out = Outcome("inconclusive", detail=f"the check returned {type(out).__name__}, not an Outcome")
    except Exception as exc:  # the catalogue reports; it does not crash
        out = Outcome("inconclusive", detail=f"the check raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    return ClaimResult(claim, out, time.perf_counter() - t0)


def decide(ok: bool, numbers: dict, detail_ok: str, detail_bad: str) -> Outcome:
    """``verified`` when ``ok``, else ``refuted`` with the counterexample text."""
    return Outcome("verified" if ok else "refuted", numbers, detail_ok if ok else detail_bad)


def property_check(strategy, predicate, *, max_examples: int = 25, seed: int = 0):
    """Run ``predicate`` on hypothesis draws; return ``(ok, n_checked, counterexample, worst)``.

    ``predicate(example)`` returns ``(ok, value)``; ``worst`` is the largest
    value seen (e.g. a relative error).  Draws are derandomised, so the
    catalogue is reproducible.
    """
    from hypothesis import HealthCheck, given, settings

    seen = {"n": 0, "worst": 0.0, "bad": None}

    @settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategy)
    def run(example):
        ok, value = predicate(example)
        seen["n"] += 1
        if value is not None and value == value:  # not NaN
            seen["worst"] = max(seen["worst"], float(value))
        if not ok:
            seen["bad"] = example
            raise AssertionError("counterexample")

    try:
        run()
    except AssertionError:
        return False, seen["n"], seen["bad"], seen["worst"]
    return True, seen["n"], None, seen["worst"]


def symbolic(name: str, *args):
    """Run a sympy twin from :mod:`dynmem.symbolic`: ``(ok, text)``.

    ``ok`` is True when the twin's identity residual simplifies to zero
    (``dynmem.symbolic.check_identity``), False when it does not.
    """
    from dynmem import symbolic as sym

    res = getattr(sym, name)(*args)
    if res.identity_residual is None:
        return True, f"sympy {name}: closed form built (no identity to simplify)"
    ok = bool(sym.check_identity(res.identity_residual))
    return ok, f"sympy {name}: identity {'simplifies to 0' if ok else 'does NOT simplify to 0'}"


def with_symbolic(outcome: Outcome, *names) -> Outcome:
    """Combine a numeric outcome with sympy twins: a failed identity turns 'verified' into 'refuted'."""
    texts, all_ok = [], True
    for item in names:
        name, args = (item, ()) if isinstance(item, str) else (item[0], tuple(item[1:]))
        ok, text = symbolic(name, *args)
        all_ok &= ok
        texts.append(text)
    numbers = dict(outcome.numbers, symbolic="; ".join(texts))
    result = outcome.outcome
    if not all_ok and result == "verified":
        result = "refuted"
    return Outcome(result, numbers, outcome.detail + " | " + "; ".join(texts))
