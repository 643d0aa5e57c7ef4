"""The theorem catalogue: every theorem quantity of docs/theory.md with a check.

One module per result; each exposes ``CLAIMS``, a list of
:class:`~dynmem.theory._claim.Claim`.  ``dynmem verify`` and the test suite
run them all.  Installed, this package is ``dynmem.theory``.
"""

from __future__ import annotations

from ._claim import Claim, ClaimResult, Outcome, run_claim
from . import (
    approximation_rates,
    dynamical_systems,
    gated_and_ssm,
    inverse_approximation,
    kernel_limit,
    linear_memory,
    recurrent_ntk,
    stable_reparameterisation,
)

MODULES = (linear_memory, inverse_approximation, stable_reparameterisation, approximation_rates, kernel_limit,
           recurrent_ntk, gated_and_ssm, dynamical_systems)

__all__ = ["Claim", "ClaimResult", "Outcome", "all_claims", "run_catalogue", "MODULES"]


def all_claims() -> list[Claim]:
    """Every claim in the catalogue, in module order."""
    return [c for mod in MODULES for c in mod.CLAIMS]


def run_catalogue(names=None, *, progress=None) -> list[ClaimResult]:
    """Run the claims whose names (or name prefixes, e.g. a module name) are in ``names`` (all by default)."""
    claims = all_claims()
    if names:
        wanted = list(names)
        unknown = [n for n in wanted if not any(c.name == n or c.name.startswith(n + ".") for c in claims)]
        if unknown:
            known = ", ".join(c.name for c in claims)
            raise ValueError(f"`names` must be claim names or module names; unknown: {unknown}. Known claims: {known}")
        claims = [c for c in claims if any(c.name == n or c.name.startswith(n + ".") for n in wanted)]
    results = []
    for c in claims:
        r = run_claim(c)
        if progress is not None:
            progress(r)
        results.append(r)
    return results
