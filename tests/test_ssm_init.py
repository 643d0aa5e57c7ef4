"""SSM initialisers (dynmem.ssm_init) and the sensitivity law (dynmem.sensitivity)."""

import numpy as np
import pytest
import scipy.stats

import dynmem as dm
from dynmem.sensitivity import lambda_sensitivity, sensitivity_law
from dynmem.ssm_init import hippo_legs, hippo_n, lru_ring


def test_lru_ring_modulus_against_closed_form_cdf():
    r_min, r_max = 0.4, 0.99
    m = lru_ring(4000, r_min=r_min, r_max=r_max, max_phase=np.pi, rng=0)
    r = np.abs(m.Lambda_bar)
    cdf = lambda x: np.clip((x ** 2 - r_min ** 2) / (r_max ** 2 - r_min ** 2), 0, 1)
    ks = scipy.stats.kstest(r, cdf)
    assert ks.pvalue > 0.05  # measured D = 0.0111, p = 0.70 at seed 0
    assert scipy.stats.kstest(r, scipy.stats.uniform(r_min, r_max - r_min).cdf).pvalue < 1e-10  # not uniform in r
    ph = np.angle(m.Lambda_bar)
    assert ph.min() >= 0 and ph.max() <= np.pi
    # gamma normalisation: unit stationary variance per state for unit-norm B rows
    gamma2 = np.abs(m.B_bar[:, 0]) ** 2 / (1 - r ** 2)
    assert isinstance(m, dm.DiscreteDiagonalSSM) and np.all(np.isfinite(gamma2))
    np.testing.assert_array_equal(lru_ring(8, rng=3).Lambda_bar, lru_ring(8, rng=3).Lambda_bar)


def test_hippo_n_is_the_diagonalised_normal_part():
    m = 12
    A = hippo_legs(m)
    assert A[3, 1] == pytest.approx(-np.sqrt(7) * np.sqrt(3)) and A[2, 2] == -3 and A[1, 3] == 0
    p = np.sqrt(np.arange(m) + 0.5)
    An = A + np.outer(p, p)
    s = hippo_n(m, 2, dt_min=1e-3, dt_max=1e-1, rng=0)
    # Lambda / Delta: real parts -1/2; with Delta = -2 Re Lambda the spectrum is eig(An)
    delta = -2.0 * s.Lambda.real
    assert np.all((delta >= 1e-3) & (delta <= 1e-1))
    np.testing.assert_allclose(np.sort((s.Lambda / delta).imag), np.sort(np.linalg.eigvals(An).imag), atol=1e-9)
    np.testing.assert_allclose(np.linalg.eigvals(An).real, -0.5, atol=1e-9)
    with pytest.raises(ValueError, match="dt_min"):
        hippo_n(4, dt_min=1.0, dt_max=0.1)
    with pytest.raises(ValueError, match="r_min"):
        lru_ring(4, r_min=0.9, r_max=0.5)


def test_sensitivity_law_by_monte_carlo_within_3_standard_errors():
    lam = np.array([0.0, 0.5, 0.9, 0.95 * np.exp(1j)])
    res = lambda_sensitivity(lam, n_sequences=20000, rng=0)
    z = (res.mean_square - res.law) / res.stderr
    assert np.all(np.abs(z) < 3), z  # measured |z| <= 1.4
    np.testing.assert_allclose(res.state_mean_square, 1 / (1 - np.abs(lam) ** 2), rtol=0.05)
    assert sensitivity_law(0.5) == pytest.approx(1.25 / 0.75 ** 3)
    # on a model: the LRU ring's eigenvalues
    model = lru_ring(3, r_min=0.5, r_max=0.8, rng=1)
    res = lambda_sensitivity(model, n_sequences=20000, rng=1)
    assert np.all(np.abs(res.mean_square - res.law) < 3 * res.stderr)
