"""The theorem catalogue runs, computes, and meets its expectations; `dynmem verify` reports it."""

import dataclasses
import json

import numpy as np
import pytest

from dynmem import cli
from dynmem.theory_loader import load_theory

theory = load_theory()
CLAIMS = theory.all_claims()


@pytest.fixture(scope="module")
def results():
    return {r.claim.name: r for r in theory.run_catalogue()}


def test_catalogue_covers_each_module_and_both_refutations():
    modules = {c.module for c in CLAIMS}
    assert {"linear_memory", "inverse_approximation", "stable_reparameterisation", "approximation_rates"} <= modules
    refuted = {c.name for c in CLAIMS if c.expected == "refuted"}
    assert {"inverse_approximation.lemma_A8_nonnormal", "inverse_approximation.hurwitz_implies_decaying_memory"} <= refuted
    assert len({c.name for c in CLAIMS}) == len(CLAIMS)


@pytest.mark.parametrize("name", [c.name for c in CLAIMS])
def test_claim_outcome_matches_expectation(results, name):
    r = results[name]
    assert r.as_expected, f"{name}: expected {r.claim.expected}, got {r.outcome.outcome}: {r.outcome.detail}"
    # Nothing passes without computing: every outcome carries measured numbers.
    assert r.outcome.numbers, f"{name} reported no numbers"
    assert r.claim.statement and r.claim.assumptions and r.claim.source


def test_refutations_carry_their_counterexamples(results):
    a8 = results["inverse_approximation.lemma_A8_nonnormal"].outcome
    assert a8.numbers["normP"] > 100 and a8.numbers["bound"] == 0.5
    ms = results["inverse_approximation.hurwitz_implies_decaying_memory"].outcome
    assert ms.numbers["alpha"] < 0 and ms.numbers["starts_to_corners"] > 0 and ms.numbers["fit"] == "non-decaying"


def test_verify_cli_table_json_and_exit_status(tmp_path, capsys):
    path = tmp_path / "out" / "verify.json"
    status = cli.main(["verify", "--claim", "approximation_rates", "--json", str(path)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "approximation_rates.muntz_distance" in printed and "0 differ from their expectation" in printed
    data = json.loads(path.read_text())
    assert {d["name"] for d in data} == {c.name for c in CLAIMS if c.module == "approximation_rates"}
    assert all(d["as_expected"] and d["outcome"] == "verified" for d in data)


def test_verify_exit_status_is_nonzero_when_an_expectation_fails(monkeypatch, capsys):
    mod = theory.inverse_approximation
    flipped = [dataclasses.replace(c, expected="verified") if c.name.endswith("lemma_A8_nonnormal") else c
               for c in mod.CLAIMS]
    monkeypatch.setattr(mod, "CLAIMS", flipped)
    status = cli.main(["verify", "--claim", "inverse_approximation.lemma_A8_nonnormal"])
    out = capsys.readouterr().out
    assert status == 1
    assert "UNEXPECTED" in out and "expected verified, got refuted" in out


def test_verify_unknown_claim_and_list(capsys):
    assert cli.main(["verify", "--claim", "no_such_claim"]) == 2
    assert "unknown: ['no_such_claim']" in capsys.readouterr().err
    assert cli.main(["verify", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(c.name in listed for c in CLAIMS)


def test_an_exception_in_a_check_is_inconclusive():
    def boom():
        raise RuntimeError("solver exploded")

    claim = theory.Claim("x.y", "s", "a", "src", "numeric", "verified", boom)
    r = theory.run_claim(claim)
    assert r.outcome.outcome == "inconclusive" and "solver exploded" in r.outcome.detail and not r.as_expected


# -- planted wrong statements: each rewritten claim can fail ------------------------------------------------


@pytest.mark.parametrize("wrong", ["log_norm", "one_percent_high", "one_percent_low"])
def test_spectral_margin_refutes_a_planted_wrong_margin(wrong):
    import dynmem as dm

    margin = {"log_norm": lambda W: -dm.log_norm(W),  # -mu_2(W) <= -alpha(W), equal only for normal W
              "one_percent_high": lambda W: -1.01 * dm.spectral_abscissa(W),
              "one_percent_low": lambda W: -0.99 * dm.spectral_abscissa(W)}[wrong]
    out = theory.inverse_approximation.spectral_margin_check(margin)
    assert out.outcome == "refuted", out.detail


def _tail_only(chain, Z, g):
    # the target with the unobserved X_{k-2} dropped: tanh(X_k - 0.7 X_{k-1})
    return np.tanh(Z.values[:, -1, 0] - 0.7 * Z.values[:, -2, 0])


def _unconditional(chain, Z, g):
    H3 = chain.histories(3)
    return np.full(Z.n, np.sum(H3.weights * g(H3.values)))


def _plug_in_mean(chain, Z, g):
    # X_{k-2} replaced by its stationary mean inside tanh (Jensen's gap)
    mean = chain.stationary() @ chain.states[:, 0]
    return np.tanh(Z.values[:, -1, 0] - 0.7 * Z.values[:, -2, 0] + 0.6 * mean)


@pytest.mark.parametrize("wrong", [_tail_only, _unconditional, _plug_in_mean])
def test_long_time_conditional_mean_refutes_a_planted_wrong_limit(wrong):
    out = theory.kernel_limit.conditional_mean_check(wrong)
    assert out.outcome == "refuted", out.detail
    # off by far more than the solver's 2.6e-11: the check is not at the edge of its tolerance
    assert out.numbers["max_diff_ivp_vs_closed_form"] > 1e-2


def test_constrained_lower_bound_refutes_a_bound_twenty_percent_too_large():
    out = theory.approximation_rates.constrained_lower_bound_check(bound_factor=1.2)
    assert out.outcome == "refuted", out.detail
    ok = theory.approximation_rates.constrained_lower_bound_check()
    # the near-optimal fit comes within 16% of the true bound (measured ratio 1.156)
    assert ok.outcome == "verified" and 1.0 <= ok.numbers["ratio"] < 1.2


# dynamical-systems identities (theory/dynamical_systems.py): each planted wrong formula is refuted


def test_linear_lyapunov_claim_refutes_log_singular_values():
    # log sigma_i(W) equals log|eig| only for normal W; the maps of the check are non-normal
    out = theory.dynamical_systems.linear_lyapunov_check(
        lambda W: np.sort(np.log(np.linalg.svd(W, compute_uv=False)))[::-1], max_examples=2)
    assert out.outcome == "refuted" and out.numbers["max_abs_error"] > 1e-2, out.detail


@pytest.mark.parametrize("wrong", [lambda A, b: A.shape[0], lambda A, b: 1])
def test_capacity_claim_refutes_state_dimension_and_rank_of_b(wrong):
    out = theory.dynamical_systems.capacity_rank_check(wrong, max_examples=6)
    assert out.outcome == "refuted", out.detail


@pytest.mark.parametrize("wrong", ["squared", "one_percent_high"])
def test_h2_claim_refutes_a_planted_wrong_norm(wrong):
    import dynmem as dm

    h2 = {"squared": lambda m: dm.h2_norm(m) ** 2, "one_percent_high": lambda m: 1.01 * dm.h2_norm(m)}[wrong]
    out = theory.dynamical_systems.h2_quadrature_check(h2, max_examples=3)
    assert out.outcome == "refuted", out.detail
