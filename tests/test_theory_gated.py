"""The gated/SSM claims of the catalogue: their checks compute, and they fail on wrong inputs."""

import numpy as np
import sympy as sp

from dynmem.theory_loader import load_theory
from dynmem.ssm import DiagonalSSM

theory = load_theory()
gs = theory.gated_and_ssm


def test_claims_are_registered_and_verified():
    names = {c.name for c in theory.all_claims()}
    assert {"gated_and_ssm.gru_linearisation_at_zero", "gated_and_ssm.ssm_closed_form_memory"} <= names
    for r in theory.run_catalogue(["gated_and_ssm"]):
        assert r.outcome.outcome == "verified", r.outcome.detail
    res = {r.claim.name: r for r in theory.run_catalogue(["gated_and_ssm.ssm_closed_form_memory"])}
    assert res["gated_and_ssm.ssm_closed_form_memory"].outcome.numbers["max_rel_error"] <= 1e-8


def test_symbolic_residual_is_nonzero_for_a_wrong_closed_form():
    rJ, rB, f0 = gs.gru_linearisation_symbolic(1, 1)
    assert rJ == sp.zeros(1, 1) and rB == sp.zeros(1, 1) and f0 == sp.zeros(1, 1)
    # dropping the (1 - z0) factor (a plausible slip) leaves a non-zero residual
    W = sp.Symbol("W_hn0")
    z0 = 1 / (1 + sp.exp(-(sp.Symbol("b_iz0") + sp.Symbol("b_hz0"))))
    r0 = 1 / (1 + sp.exp(-(sp.Symbol("b_ir0") + sp.Symbol("b_hr0"))))
    wrong = sp.simplify((rJ[0, 0] + (1 - z0) * (r0 * W - 1)) - (r0 * W - 1))
    assert wrong != 0


def test_formula_needs_the_zero_n_biases_and_the_small_amplitude_gap_grows_with_amplitude():
    cell = gs._zero_rest_cell(3, 3, 1)
    J, B = gs.gru_linearisation_closed_form(cell)
    np.testing.assert_allclose(cell.linearize(np.zeros(3)).W, J, atol=1e-14)
    t = np.linspace(0.0, 8.0, 9)
    errs, slope = gs.small_amplitude_memory_error(cell, t, amplitudes=(1e-1, 1e-2))
    assert errs[0] > 5 * errs[1] and 0.8 < slope < 1.2
    biased = cell.replace(bias_hh=cell.bias_hh + 0.3)  # h* moves off 0; App. J's h* = 0 formula no longer applies
    lin = biased.linearize()
    J2, _ = gs.gru_linearisation_closed_form(biased)
    assert np.max(np.abs(lin.W - J2)) > 1e-3


def test_simulated_ssm_memory_is_independent_of_the_closed_form():
    ssm = DiagonalSSM.random(3, 2, rng=5)
    t = np.linspace(0.1, 5.0, 12)
    sim = gs.ssm_simulated_memory(ssm, t, "impulse")
    np.testing.assert_allclose(sim, np.abs(ssm.kernel(t)).sum(axis=1), rtol=1e-9)
    # a wrong identity (Im instead of Re) is far off
    E = np.exp(np.outer(t, ssm.Lambda))
    wrong = np.abs(((E * ssm.C) @ ssm.B).imag).sum(axis=1)
    assert np.max(np.abs(sim - wrong)) > 1e-2 * np.max(sim)
