"""Activations: numpy forms, numba scalar forms, registry and kink convention."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynmem.activations import (
    HARDTANH,
    IDENTITY,
    RELU,
    TANH,
    Activation,
    act_and_deriv_scalar,
    act_scalar,
    available_activations,
    dact_scalar,
    get_activation,
)

NAMES = ("tanh", "hardtanh", "relu", "identity")
CODES = {"tanh": TANH, "hardtanh": HARDTANH, "relu": RELU, "identity": IDENTITY}

# Closed forms written independently of dynmem (exp-based tanh, piecewise by cases).
def _tanh_closed(z):
    z = np.asarray(z, dtype=float)
    e = np.exp(-2.0 * np.abs(z))
    return np.sign(z) * (1.0 - e) / (1.0 + e)


def _dtanh_closed(z):
    # 1 / cosh(z)^2, computed stably.
    z = np.asarray(z, dtype=float)
    e = np.exp(-2.0 * np.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


CLOSED = {
    "tanh": (_tanh_closed, _dtanh_closed),
    "hardtanh": (
        lambda z: np.where(z < -1.0, -1.0, np.where(z > 1.0, 1.0, z)),
        lambda z: np.where((z > -1.0) & (z < 1.0), 1.0, 0.0),
    ),
    "relu": (lambda z: np.where(z > 0.0, z, 0.0), lambda z: np.where(z > 0.0, 1.0, 0.0)),
    "identity": (lambda z: np.asarray(z, dtype=float) * 1.0, lambda z: np.ones_like(np.asarray(z, dtype=float))),
}

# A grid that includes the kinks, zero, and large magnitudes.
GRID = np.unique(np.concatenate([np.linspace(-6.0, 6.0, 241), [-1.0, 0.0, 1.0, -1e-12, 1e-12, -30.0, 30.0]]))


def test_registry_names_and_codes():
    assert available_activations() == NAMES
    for name in NAMES:
        act = get_activation(name)
        assert isinstance(act, Activation)
        assert act.name == name
        assert act.code == CODES[name]
    # codes are distinct, so one kernel can dispatch on them
    assert len({get_activation(n).code for n in NAMES}) == len(NAMES)


def test_registry_metadata_matches_theory():
    # THEORY.md section 1: identity and hardtanh in A0, tanh in A1, relu in neither.
    assert get_activation("identity").wll_class == "A0"
    assert get_activation("hardtanh").wll_class == "A0"
    assert get_activation("tanh").wll_class == "A1"
    assert get_activation("relu").wll_class == ""
    assert get_activation("tanh").smooth and get_activation("identity").smooth
    assert not get_activation("relu").smooth and not get_activation("hardtanh").smooth
    assert get_activation("relu").kinks == (0.0,)
    assert set(get_activation("hardtanh").kinks) == {-1.0, 1.0}


def test_activation_passthrough_is_identity():
    act = get_activation("relu")
    assert get_activation(act) is act
    custom = Activation("custom", IDENTITY, lambda z: 2.0 * z, lambda z: 2.0 + 0.0 * z, (), "")
    assert get_activation(custom) is custom


def test_activation_call_uses_fn():
    act = get_activation("tanh")
    z = np.array([-2.0, 0.3, 4.0])
    np.testing.assert_array_equal(act(z), act.fn(z))


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"`activation` must be one of 'tanh', 'hardtanh', 'relu', 'identity'; got 'sigmoid'") as info:
        get_activation("sigmoid")
    for name in available_activations():
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("bad", [1, None, 2.5, ["tanh"]])
def test_non_string_activation_is_type_error(bad):
    with pytest.raises(TypeError, match=r"`activation` must be a name such as 'tanh'; got "):
        get_activation(bad)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_fn_and_deriv_match_closed_forms(name):
    act = get_activation(name)
    f, df = CLOSED[name]
    np.testing.assert_allclose(act.fn(GRID), f(GRID), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(act.deriv(GRID), df(GRID), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_forms_preserve_shape(name):
    act = get_activation(name)
    z = np.linspace(-2, 2, 24).reshape(2, 3, 4)
    assert act.fn(z).shape == z.shape
    assert act.deriv(z).shape == z.shape
    assert act.fn(z).dtype == np.float64 and act.deriv(z).dtype == np.float64


def test_identity_fn_returns_a_copy():
    z = np.array([1.0, 2.0])
    out = get_activation("identity").fn(z)
    out[0] = 5.0
    assert z[0] == 1.0


@pytest.mark.parametrize("name", NAMES)
@given(z=st.floats(min_value=-8.0, max_value=8.0, allow_nan=False))
def test_deriv_matches_central_differences_away_from_kinks(name, z):
    act = get_activation(name)
    eps = 1e-6
    # stay well away from any kink so the stencil never straddles one
    if any(abs(z - k) < 1e-3 for k in act.kinks):
        z = z + 0.01
    fd = (act.fn(np.array(z + eps)) - act.fn(np.array(z - eps))) / (2 * eps)
    # central-difference error is O(eps^2 |f'''|) + O(rounding / eps) ~ 1e-10
    assert abs(float(fd) - float(act.deriv(np.array(z)))) < 1e-8


def test_tanh_is_class_a1():
    # sigma' = 1 - sigma^2 for tanh (the A1 relation with a = b = 1)
    act = get_activation("tanh")
    np.testing.assert_allclose(act.deriv(GRID), 1.0 - act.fn(GRID) ** 2, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_numba_scalars_match_numpy(name):
    act = get_activation(name)
    code = act.code
    f_np = act.fn(GRID)
    df_np = act.deriv(GRID)
    f_nb = np.array([act_scalar(code, float(z)) for z in GRID])
    df_nb = np.array([dact_scalar(code, float(z)) for z in GRID])
    both = np.array([act_and_deriv_scalar(code, float(z)) for z in GRID])
    np.testing.assert_allclose(f_nb, f_np, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(df_nb, df_np, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(both[:, 0], f_np, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(both[:, 1], df_np, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
@given(z=st.floats(min_value=-50.0, max_value=50.0, allow_nan=False))
def test_numba_scalars_match_numpy_random(name, z):
    act = get_activation(name)
    assert act_scalar(act.code, z) == pytest.approx(float(act.fn(np.array(z))), rel=1e-15, abs=1e-300)
    assert dact_scalar(act.code, z) == pytest.approx(float(act.deriv(np.array(z))), rel=1e-14, abs=1e-15)
    s, ds = act_and_deriv_scalar(act.code, z)
    assert s == pytest.approx(act_scalar(act.code, z), rel=1e-15, abs=1e-300)
    assert ds == pytest.approx(dact_scalar(act.code, z), rel=1e-15, abs=1e-300)


def test_scalar_tanh_against_math():
    for z in (-3.0, -0.1, 0.0, 0.7, 20.0):
        assert act_scalar(TANH, z) == pytest.approx(math.tanh(z), rel=1e-15)
        assert dact_scalar(TANH, z) == pytest.approx(1.0 / math.cosh(z) ** 2, rel=1e-12)


def test_kink_convention_numpy():
    relu = get_activation("relu")
    ht = get_activation("hardtanh")
    assert float(relu.deriv(np.array(0.0))) == 0.0
    assert float(relu.fn(np.array(0.0))) == 0.0
    np.testing.assert_array_equal(ht.deriv(np.array([-1.0, 1.0])), [0.0, 0.0])
    np.testing.assert_array_equal(ht.fn(np.array([-1.0, 1.0])), [-1.0, 1.0])
    # just inside the kinks the slope is 1
    np.testing.assert_array_equal(ht.deriv(np.array([-1.0 + 1e-12, 1.0 - 1e-12])), [1.0, 1.0])
    assert float(relu.deriv(np.array(1e-300))) == 1.0


def test_kink_convention_numba():
    assert dact_scalar(RELU, 0.0) == 0.0
    assert act_and_deriv_scalar(RELU, 0.0) == (0.0, 0.0)
    for z in (-1.0, 1.0):
        assert dact_scalar(HARDTANH, z) == 0.0
        assert act_and_deriv_scalar(HARDTANH, z) == (z, 0.0)
    assert dact_scalar(HARDTANH, 1.0 - 1e-12) == 1.0
    assert dact_scalar(RELU, 1e-300) == 1.0



def test_vectorised_tanh_block_is_within_4_ulp_of_long_double():
    from dynmem.activations import tanh_block

    rng = np.random.default_rng(0)
    z = np.concatenate([
        3.0 * rng.standard_normal(20000),
        1e-6 * rng.standard_normal(2000),  # small arguments: expm1 keeps them accurate
        np.linspace(-25.0, 25.0, 5001),  # across the reduction boundaries and the clamp at |x| = 20
        10.0 ** rng.uniform(-300, 3, 2000) * rng.choice([-1.0, 1.0], 2000),
        [0.0, -0.0, 5e-324, 19.06, 20.0, 40.0, 1e300, -1e300],
    ])
    a, s = np.empty_like(z), np.empty_like(z)
    tanh_block(z, a, s)
    ref = np.tanh(z.astype(np.longdouble))
    rel = np.abs(a - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)
    assert float(rel.max()) <= 4 * np.finfo(float).eps
    assert np.all(np.signbit(a) == np.signbit(z))
    np.testing.assert_allclose(s, (1 - ref * ref).astype(float), rtol=0, atol=4 * np.finfo(float).eps)


def test_vectorised_tanh_block_non_finite():
    from dynmem.activations import tanh_block

    z = np.array([np.inf, -np.inf, np.nan])
    a, s = np.empty(3), np.empty(3)
    tanh_block(z, a, s)
    assert a[0] == 1.0 and a[1] == -1.0 and np.isnan(a[2])
    assert s[0] == 0.0 and s[1] == 0.0 and np.isnan(s[2])


# ---------------------------------------------------------------------------- the registry's facts


@pytest.mark.parametrize("name", ["tanh", "hardtanh", "relu", "identity", "erf"])
def test_recorded_derivative_bound_is_the_sup_on_a_fine_grid(name):
    from dynmem.activations import get_kernel_activation, sup_derivative

    z = np.linspace(-20.0, 20.0, 400_001)
    measured = float(np.max(np.abs(get_kernel_activation(name).deriv(z))))
    assert sup_derivative(name) == pytest.approx(measured, rel=1e-9)


@pytest.mark.parametrize("name", ["tanh", "hardtanh", "relu", "identity", "erf"])
def test_closed_form_flag_matches_the_kernel_module(name):
    from dynmem.activations import get_kernel_activation
    from dynmem.kernel.recurrent_ntk import closed_form_expectations

    one = np.array([1.0])
    if get_kernel_activation(name).gaussian_closed_form:
        K, D = closed_form_expectations(name, one, one, 0.5 * one)
        assert np.isfinite(K).all() and np.isfinite(D).all()
    else:
        with pytest.raises(ValueError, match="no closed form"):
            closed_form_expectations(name, one, one, 0.5 * one)


def test_unknown_activations_are_refused_where_a_bound_is_needed():
    from dynmem.activations import Activation, IDENTITY, sup_derivative
    from dynmem.kernel import LSSNetwork

    with pytest.raises(ValueError, match=r"`activation` must be one of .*got 'softsign'"):
        sup_derivative("softsign")
    custom = Activation("double", IDENTITY, lambda z: 2.0 * z, lambda z: 2.0 + 0.0 * z, (), "")
    with pytest.raises(ValueError, match=r"'double' has no recorded derivative bound sup\|sigma'\|"):
        sup_derivative(custom)
    with pytest.raises(ValueError, match=r"no recorded derivative bound"):
        LSSNetwork(np.ones(3), np.ones((3, 1)), 0.1 * np.ones(3), np.ones(3), activation=custom)
    # with its bound given, the contraction check reads it: sup|b| * 2 = 1.2 >= 1 is refused
    bounded = Activation("double", IDENTITY, lambda z: 2.0 * z, lambda z: 2.0 + 0.0 * z, (), "", sup_deriv=2.0)
    with pytest.raises(ValueError, match=r"sup\|sigma'\| = 2.0 for double"):
        LSSNetwork(np.ones(3), np.ones((3, 1)), 0.6 * np.ones(3), np.ones(3), activation=bounded)
