"""Argument checks at the public boundary: exception type and message.

House rule (dynmem/_validation.py): a message names the argument in backticks,
states the rule it broke and shows the value it got.  Each case below pins all
three with a regular expression.  The cases in the section "house-rule gaps"
at the end were once gaps (a message that blamed another argument, leaked an
internal name or omitted the value); they are fixed and pinned as regressions.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import dynmem as dm
from dynmem import CTRNN, DiscreteRNN, EulerRNN, LinearRNN
from dynmem import recurrences as rec
from dynmem._validation import as_float_array, check_choice, check_finite, check_increasing, check_int

KNOWN = r"'tanh', 'hardtanh', 'relu', 'identity'"
METHODS = r"'RK45', 'RK23', 'DOP853', 'Radau', 'BDF', 'LSODA'"
SIM_METHODS = METHODS + r", 'dopri5', 'tsit5', 'dop853'"  # simulate and adjoint_gradient also take dynmem.odeint's compiled methods

# Fixtures built once (construction is cheap and the objects are immutable).
W2, U2, b2, c2 = np.eye(2), np.ones((2, 1)), np.zeros(2), np.ones(2)
MODEL = CTRNN.random(3, 2, rng=0)
LIN = LinearRNN.random(3, 2, rng=0)
DISC = DiscreteRNN.random(3, 2, rng=0)
EULER = MODEL.discretize(0.1)
PATH = dm.PiecewiseConstant([0.0, 1.0, 5.0], np.ones((2, 2)))
X = np.zeros((2, 4, 2))
TRAJ = rec.forward(DISC, X)


def _args(**over):
    """Valid (W, U, b, c) for a 2 x 1 model with some replaced."""
    base = dict(W=W2, U=U2, b=b2, c=c2)
    base.update(over)
    return base


def _check(fn, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        fn()
    # the exact class, not a subclass, so TypeError and ValueError are not confused
    assert type(info.value) is exc
    return str(info.value)


# -- models: shapes ---------------------------------------------------------------

SHAPE_CASES = [
    ("W non-square", _args(W=np.zeros((2, 3))), r"`W` must be square; got shape \(2, 3\)\."),
    ("W 1-D", _args(W=np.zeros(4)), r"`W` must have 2 dimension\(s\); got shape \(4,\)\."),
    ("W empty", _args(W=np.zeros((0, 0)), U=np.zeros((0, 1)), b=np.zeros(0), c=np.zeros(0)),
     r"`W` must have at least one row \(hidden width m >= 1\); got shape \(0, 0\)\."),
    ("U rows", _args(U=np.zeros((3, 1))),
     r"`U` must have shape \(2, d\) to match `W` of shape \(2, 2\); got shape \(3, 1\)\."),
    ("U no columns", _args(U=np.zeros((2, 0))),
     r"`U` must have at least one column \(input dimension d >= 1\); got shape \(2, 0\)\."),
    ("U 1-D", _args(U=np.zeros(2)), r"`U` must have 2 dimension\(s\); got shape \(2,\)\."),
    ("b long", _args(b=np.zeros(3)), r"`b` must have shape \(2,\); got shape \(3,\)\."),
    ("b 2-D", _args(b=np.zeros((2, 1))), r"`b` must have shape \(2,\); got shape \(2, 1\)\."),
    ("c short", _args(c=np.zeros(1)), r"`c` must have shape \(2,\); got shape \(1,\)\."),
    ("c scalar", _args(c=1.0), r"`c` must have shape \(2,\); got shape \(\)\."),
]


@pytest.mark.parametrize("cls", [CTRNN, DiscreteRNN, EulerRNN])
@pytest.mark.parametrize("kw, pattern", [pytest.param(kw, p, id=i) for i, kw, p in SHAPE_CASES])
def test_model_shapes(cls, kw, pattern):
    _check(lambda: cls(**kw), ValueError, pattern)


@pytest.mark.parametrize(
    "kw, pattern",
    [pytest.param(kw, p, id=i) for i, kw, p in SHAPE_CASES if "b" not in i],
)
def test_linear_rnn_shapes(kw, pattern):
    kw = {k: v for k, v in kw.items() if k != "b"}
    _check(lambda: LinearRNN(**kw), ValueError, pattern)


def test_spectral_abscissa_non_square():
    _check(lambda: dm.spectral_abscissa(np.zeros((2, 3))), ValueError, r"`W` must be square; got shape \(2, 3\)\.")


# -- models: values ----------------------------------------------------------------

BAD_INDEX = {"W": (1, 0), "U": (1, 0), "b": (1,), "c": (1,)}


def _finite_cases():
    for cls in (CTRNN, DiscreteRNN, EulerRNN, LinearRNN):
        for name in ("W", "U", "b", "c"):
            if cls is LinearRNN and name == "b":
                continue
            for bad, shown in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
                yield pytest.param(cls, name, bad, shown, id=f"{cls.__name__}-{name}-{shown}")


@pytest.mark.parametrize("cls, name, bad, shown", list(_finite_cases()))
def test_non_finite_parameters(cls, name, bad, shown):
    kw = _args()
    arr = np.array(kw[name], dtype=float)
    arr[BAD_INDEX[name]] = bad
    kw[name] = arr
    if cls is LinearRNN:
        kw.pop("b")
    idx = re.escape(str(BAD_INDEX[name]))
    _check(lambda: cls(**kw), ValueError, rf"`{name}` must be finite; got {re.escape(shown)} at index {idx}\.")


@pytest.mark.parametrize("cls", [CTRNN, DiscreteRNN, EulerRNN])
@pytest.mark.parametrize("name", ["W", "U", "b", "c"])
def test_complex_parameters(cls, name):
    kw = _args()
    kw[name] = np.asarray(kw[name]) + 0j
    _check(lambda: cls(**kw), TypeError, rf"`{name}` must be real; got complex dtype complex128\.")


@pytest.mark.parametrize("cls", [CTRNN, DiscreteRNN, EulerRNN])
@pytest.mark.parametrize("name", ["W", "U", "b", "c"])
def test_string_parameters(cls, name):
    kw = _args(**{name: "abc"})
    _check(lambda: cls(**kw), TypeError, rf"`{name}` must be an array of real numbers; got the string 'abc'\.")


@pytest.mark.parametrize("name", ["W", "U", "b", "c"])
def test_string_array_and_object_parameters(name):
    kw = _args(**{name: np.full(np.shape(_args()[name]), "x")})
    _check(lambda: CTRNN(**kw), TypeError, rf"`{name}` must be an array of real numbers; got dtype <U1 from ")
    kw = _args(**{name: None})
    _check(lambda: CTRNN(**kw), TypeError, rf"`{name}` must be an array of real numbers; got dtype object from None\.")


def test_linear_rnn_complex_and_string():
    _check(lambda: LinearRNN(W2 * 1j, U2, c2), TypeError, r"`W` must be real; got complex dtype complex128\.")
    _check(lambda: LinearRNN(W2, U2, "c"), TypeError, r"`c` must be an array of real numbers; got the string 'c'\.")


@pytest.mark.parametrize(
    "make",
    [
        lambda act: CTRNN(W2, U2, b2, c2, activation=act),
        lambda act: DiscreteRNN(W2, U2, b2, c2, activation=act),
        lambda act: EulerRNN(W2, U2, b2, c2, activation=act),
        lambda act: CTRNN.random(2, activation=act),
        lambda act: DiscreteRNN.random(2, activation=act),
        lambda act: dm.get_activation(act),
    ],
    ids=["CTRNN", "DiscreteRNN", "EulerRNN", "CTRNN.random", "DiscreteRNN.random", "get_activation"],
)
def test_unknown_activation_lists_known_names(make):
    msg = _check(lambda: make("sigmoid"), ValueError, rf"`activation` must be one of {KNOWN}; got 'sigmoid'\.")
    for name in dm.available_activations():
        assert repr(name) in msg


def test_activation_of_wrong_type():
    _check(lambda: CTRNN(W2, U2, b2, c2, activation=3), TypeError, r"`activation` must be a name such as 'tanh'; got 3\.")


@pytest.mark.parametrize("cls", [CTRNN, EulerRNN])
@pytest.mark.parametrize("leak, shown", [(-0.1, "-0.1"), (np.nan, "nan"), (np.inf, "inf")])
def test_bad_leak(cls, leak, shown):
    _check(lambda: cls(W2, U2, b2, c2, leak=leak), ValueError,
           rf"`leak` must be a non-negative finite number; got {re.escape(shown)}\.")


def test_leak_of_wrong_type():
    _check(lambda: CTRNN(W2, U2, b2, c2, leak="a"), TypeError, r"`leak` must be a non-negative number; got 'a'\.")
    _check(lambda: CTRNN(W2, U2, b2, c2, leak=True), TypeError, r"`leak` must be a non-negative number; got True\.")


@pytest.mark.parametrize("model", [MODEL, LIN], ids=["CTRNN", "LinearRNN"])
@pytest.mark.parametrize("dt, shown", [(0.0, "0.0"), (-0.5, "-0.5"), (np.inf, "inf"), (np.nan, "nan")])
def test_discretize_non_positive_dt(model, dt, shown):
    _check(lambda: model.discretize(dt), ValueError, rf"`dt` must be a positive finite number; got {re.escape(shown)}\.")


def test_discretize_dt_of_wrong_type():
    _check(lambda: MODEL.discretize("0.1"), TypeError, r"`dt` must be a positive number; got '0\.1'\.")


def test_euler_rnn_bad_dt():
    _check(lambda: EulerRNN(W2, U2, b2, c2, dt=0), ValueError, r"`dt` must be a positive finite number; got 0\.0\.")


@pytest.mark.parametrize("model", [MODEL, LIN, DISC, EULER], ids=lambda m: type(m).__name__)
def test_unflatten_wrong_length(model):
    n = model.n_params
    _check(lambda: model.unflatten(np.zeros(n - 1)), ValueError,
           rf"`theta` must have length {n} \(n_params of this model\); got length {n - 1}\.")
    _check(lambda: model.unflatten(np.zeros(n + 2)), ValueError,
           rf"`theta` must have length {n} \(n_params of this model\); got length {n + 2}\.")


def test_unflatten_wrong_ndim_and_type():
    _check(lambda: MODEL.unflatten(np.zeros((3, 7))), ValueError, r"`theta` must have 1 dimension\(s\); got shape \(3, 7\)\.")
    _check(lambda: MODEL.unflatten("abc"), TypeError, r"`theta` must be an array of real numbers; got the string 'abc'\.")


def test_replace_is_validated():
    _check(lambda: MODEL.replace(leak=-1.0), ValueError, r"`leak` must be a non-negative finite number; got -1\.0\.")
    _check(lambda: MODEL.replace(c=np.zeros(2)), ValueError, r"`c` must have shape \(3,\); got shape \(2,\)\.")


@pytest.mark.parametrize(
    "fn, exc, pattern",
    [
        (lambda: CTRNN.random(0), ValueError, r"`hidden` must be >= 1; got 0\."),
        (lambda: LinearRNN.random(2.0), TypeError, r"`hidden` must be an integer; got 2\.0\."),
        (lambda: DiscreteRNN.random(2, 0), ValueError, r"`inputs` must be >= 1; got 0\."),
        (lambda: CTRNN.random(2, spectral_abscissa=np.nan), ValueError, r"`spectral_abscissa` must be finite; got nan\."),
        (lambda: LinearRNN.random(2, spectral_abscissa="a"), TypeError, r"`spectral_abscissa` must be a real number; got 'a'\."),
        (lambda: DiscreteRNN.random(2, spectral_radius=-1), ValueError,
         r"`spectral_radius` must be a non-negative finite number; got -1\.0\."),
        (lambda: CTRNN.random(2, input_scale=-1), ValueError, r"`input_scale` must be a non-negative finite number; got -1\.0\."),
        (lambda: DiscreteRNN.random(2, bias_scale=np.inf), ValueError,
         r"`bias_scale` must be a non-negative finite number; got inf\."),
    ],
    ids=["hidden0", "hidden-float", "inputs0", "abscissa-nan", "abscissa-str", "radius-neg", "input-scale", "bias-scale"],
)
def test_random_constructor_arguments(fn, exc, pattern):
    _check(fn, exc, pattern)


def test_kernel_times():
    _check(lambda: LIN.kernel([0.0, -0.5]), ValueError, r"`t` must be non-negative; got min\(t\) = -0\.5\.")
    _check(lambda: LIN.kernel([np.inf]), ValueError, r"`t` must be finite; got inf at index \(0,\)\.")
    _check(lambda: LIN.kernel([[0.0, 1.0]]), ValueError, r"`t` must have 1 dimension\(s\); got shape \(1, 2\)\.")


# -- inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("cls, values", [(dm.PiecewiseConstant, [1.0, 2.0, 3.0]), (dm.PiecewiseLinear, [1.0, 2.0, 3.0, 4.0])])
@pytest.mark.parametrize("knots, i, a, b", [([0.0, 2.0, 1.0, 3.0], 1, "2.0", "1.0"), ([0.0, 1.0, 1.0, 3.0], 1, "1.0", "1.0")])
def test_non_increasing_knots(cls, values, knots, i, a, b):
    # the value may be printed as 1.0 or np.float64(1.0); see test_increasing_message_prints_plain_numbers
    _check(lambda: cls(knots, values), ValueError,
           rf"`knots` must be strictly increasing; got knots\[{i}\] = (np\.float64\()?{a}\)? "
           rf"followed by knots\[{i + 1}\] = (np\.float64\()?{b}\)?\.")


@pytest.mark.parametrize("cls", [dm.PiecewiseConstant, dm.PiecewiseLinear])
def test_too_few_knots(cls):
    _check(lambda: cls([0.0], np.zeros((1, 1))), ValueError, r"`knots` must hold at least two times \(one piece\); got 1\.")
    _check(lambda: cls([[0.0, 1.0]], [1.0, 2.0]), ValueError, r"`knots` must have 1 dimension\(s\); got shape \(1, 2\)\.")


@pytest.mark.parametrize(
    "cls, values, pattern",
    [
        (dm.PiecewiseConstant, [1.0, 2.0, 3.0], r"`values` must have 2 rows \(one per piece / knot as documented\); got shape \(3, 1\)\."),
        (dm.PiecewiseConstant, np.zeros((1, 2)), r"`values` must have 2 rows \(one per piece / knot as documented\); got shape \(1, 2\)\."),
        (dm.PiecewiseLinear, [1.0, 2.0], r"`values` must have 3 rows \(one per piece / knot as documented\); got shape \(2, 1\)\."),
        (dm.PiecewiseLinear, np.zeros((4, 2)), r"`values` must have 3 rows \(one per piece / knot as documented\); got shape \(4, 2\)\."),
        (dm.PiecewiseConstant, np.zeros((2, 1, 1)), r"`values` must have 1 or 2 dimension\(s\); got shape \(2, 1, 1\)\."),
        (dm.PiecewiseConstant, [[1.0], [np.nan]], r"`values` must be finite; got nan at index \(1, 0\)\."),
        (dm.PiecewiseLinear, "abc", r"`values` must be an array of real numbers; got the string 'abc'\."),
    ],
)
def test_bad_values(cls, values, pattern):
    exc = TypeError if isinstance(values, str) else ValueError
    _check(lambda: cls([0.0, 1.0, 2.0], values), exc, pattern)


@pytest.mark.parametrize(
    "cls, knots, pattern",
    [
        (dm.PiecewiseConstant, [0.0, np.inf, 2.0], r"`knots` must be finite except for a last knot of \+inf; got array \[ ?0\., +inf, +2\.\]"),
        (dm.PiecewiseConstant, [0.0, np.nan, 2.0], r"`knots` must be finite except for a last knot of \+inf; got array \[ ?0\., +nan, +2\.\]"),
        (dm.PiecewiseConstant, [-np.inf, 1.0, 2.0], r"`knots` must be finite except for a last knot of \+inf; got array \[ *-inf, +1\., +2\.\]"),
        (dm.PiecewiseConstant, [0.0, 1.0, -np.inf], r"`knots` must be finite except for a last knot of \+inf; got array \[ *0\., +1\., +-inf\]"),
        (dm.PiecewiseLinear, [0.0, 1.0, np.inf], r"`knots` must be finite; got array \[ ?0\., +1\., +inf\]"),
        (dm.PiecewiseLinear, [0.0, np.inf, 2.0], r"`knots` must be finite; got array \[ ?0\., +inf, +2\.\]"),
    ],
)
def test_non_finite_knots(cls, knots, pattern):
    values = [1.0, 2.0] if cls is dm.PiecewiseConstant else [1.0, 2.0, 3.0]
    _check(lambda: cls(knots, values), ValueError, pattern)


@pytest.mark.parametrize(
    "path",
    [PATH, dm.PiecewiseLinear([0.0, 5.0], [[0.0, 1.0], [1.0, 0.0]]), dm.FunctionPath(lambda t: np.array([t, t]), [0.0, 5.0], 2)],
    ids=["constant", "linear", "function"],
)
def test_evaluation_outside_domain(path):
    dom = r"`t` must lie in the input's domain \[0\.0, 5\.0\]; "
    _check(lambda: path(5.5), ValueError, dom + r"got values in \[5\.5, 5\.5\]\.")
    _check(lambda: path(np.array([-1.0, 2.0])), ValueError, dom + r"got values in \[-1\.0, 2\.0\]\.")
    _check(lambda: path(np.nan), ValueError, r"`t` must be finite; got nan at index \(0,\)\.")
    _check(lambda: path(np.zeros((2, 2))), ValueError, r"`t` must have 1 dimension\(s\); got shape \(2, 2\)\.")


def test_step_arguments():
    _check(lambda: dm.step(1.0, t_jump=1.0, t_start=2.0), ValueError, r"`t_start` must be <= `t_jump` = 1\.0; got 2\.0\.")
    _check(lambda: dm.step(np.zeros((2, 2))), ValueError, r"`x` must have 1 dimension\(s\); got shape \(2, 2\)\.")
    _check(lambda: dm.step([1.0, np.nan]), ValueError, r"`x` must be finite; got nan at index \(1,\)\.")
    _check(lambda: dm.step("a"), TypeError, r"`x` must be an array of real numbers; got .*'a'")


@pytest.mark.parametrize("width, shown", [(0.0, "0.0"), (-1.0, "-1.0"), (np.inf, "inf"), (np.nan, "nan")])
def test_impulse_non_positive_width(width, shown):
    _check(lambda: dm.impulse(1.0, width=width), ValueError,
           rf"`width` must be a positive finite number; got {re.escape(shown)}\.")


def test_impulse_other_arguments():
    _check(lambda: dm.impulse(1.0, width="a"), TypeError, r"`width` must be a positive number; got 'a'\.")
    _check(lambda: dm.impulse(1.0, width=1.0, t0=0.5, t_end=1.5), ValueError,
           r"`t_end` must exceed t0 \+ width = 1\.5; got 1\.5\.")
    _check(lambda: dm.impulse([[1.0]], width=1.0), ValueError, r"`x` must have 1 dimension\(s\); got shape \(1, 1\)\.")


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(dim=0, t_end=1.0, dt=0.1), ValueError, r"`dim` must be >= 1; got 0\."),
        (dict(dim=1.5, t_end=1.0, dt=0.1), TypeError, r"`dim` must be an integer; got 1\.5\."),
        (dict(dim=True, t_end=1.0, dt=0.1), TypeError, r"`dim` must be an integer; got True\."),
        (dict(dim=1, t_end=1.0, dt=0.0), ValueError, r"`dt` must be a positive finite number; got 0\.0\."),
        (dict(dim=1, t_end=1.0, dt=-0.1), ValueError, r"`dt` must be a positive finite number; got -0\.1\."),
        (dict(dim=1, t_end=1.0, dt=0.1, scale=-1.0), ValueError, r"`scale` must be a non-negative finite number; got -1\.0\."),
        (dict(dim=1, t_end=np.inf, dt=0.1), ValueError, r"`t_end` must be finite and greater than t_start = 0\.0; got inf\."),
        (dict(dim=1, t_end=1.0, dt=0.1, t_start=1.0), ValueError, r"`t_end` must be finite and greater than t_start = 1\.0; got 1\.0\."),
        (dict(dim=1, t_end=-2.0, dt=0.1), ValueError, r"`t_end` must be finite and greater than t_start = 0\.0; got -2\.0\."),
    ],
    ids=["dim0", "dim-float", "dim-bool", "dt0", "dt-neg", "scale-neg", "t_end-inf", "t_end-eq", "t_end-lt"],
)
def test_white_noise_bad_arguments(kwargs, exc, pattern):
    _check(lambda: dm.white_noise(**kwargs), exc, pattern)


@pytest.mark.parametrize("kind", ["cubic", None, "Constant"])
def test_from_sequence_bad_kind(kind):
    _check(lambda: dm.from_sequence(np.zeros(3), 0.1, kind=kind), ValueError,
           rf"`kind` must be one of 'constant', 'linear'; got {re.escape(repr(kind))}\.")


def test_from_sequence_other_arguments():
    _check(lambda: dm.from_sequence(np.zeros(3), 0.0), ValueError, r"`dt` must be a positive finite number; got 0\.0\.")
    _check(lambda: dm.from_sequence(np.zeros((2, 2, 2)), 0.1), ValueError, r"`X` must have 1 or 2 dimension\(s\); got shape \(2, 2, 2\)\.")
    _check(lambda: dm.from_sequence(np.zeros(1), 0.1, kind="linear"), ValueError,
           r"`X` must hold at least two samples for kind='linear'; got 1\.")
    _check(lambda: dm.from_sequence([0.0, np.inf], 0.1), ValueError, r"`X` must be finite; got inf at index \(1,\)\.")


def test_function_path_arguments():
    _check(lambda: dm.FunctionPath(3, [0.0, 1.0], 1), TypeError, r"`fn` must be callable; got 3\.")
    _check(lambda: dm.FunctionPath(lambda t: np.zeros(1), [0.0, 1.0], 0), ValueError, r"`dim` must be >= 1; got 0\.")
    _check(lambda: dm.FunctionPath(lambda t: np.zeros(1), [0.0, 1.0], 1.0), TypeError, r"`dim` must be an integer; got 1\.0\.")
    _check(lambda: dm.FunctionPath(lambda t: np.zeros(2), [0.0, 1.0], 1), ValueError,
           r"`fn` must return an array of shape \(1,\); got shape \(2,\) at t = 0\.0\.")
    _check(lambda: dm.FunctionPath(lambda t: np.zeros(1), [1.0, 0.0], 1), ValueError,
           r"`knots` must be strictly increasing; got knots\[0\] = .*1\.0.* followed by knots\[1\] = .*0\.0")


# -- simulate ----------------------------------------------------------------------

SIM_CASES = [
    ("model-discrete", lambda: dm.simulate(DISC, PATH, [1.0]), TypeError,
     r"`model` must be a CTRNN or a LinearRNN \(discrete models run with dynmem\.recurrences\.forward\); got DiscreteRNN\(hidden=3"),
    ("model-euler", lambda: dm.simulate(EULER, PATH, [1.0]), TypeError, r"`model` must be a CTRNN or a LinearRNN .*; got EulerRNN\("),
    ("model-str", lambda: dm.simulate("m", PATH, [1.0]), TypeError, r"`model` must be a CTRNN or a LinearRNN .*; got 'm'\."),
    ("x-array", lambda: dm.simulate(MODEL, np.ones(2), [1.0]), TypeError,
     r"`x` must be an input path from dynmem\.inputs \(e\.g\. inputs\.step\(x\) for a Heaviside input\); got array \[1\., 1\.\] of shape \(2,\)\."),
    ("x-callable", lambda: dm.simulate(MODEL, lambda t: np.ones(2), [1.0]), TypeError, r"`x` must be an input path from dynmem\.inputs .*; got <function"),
    ("x-dim", lambda: dm.simulate(MODEL, dm.step(1.0), [1.0]), ValueError,
     r"`x` must have dimension 2 to match the model's inputs; got dimension 1\."),
    ("method", lambda: dm.simulate(MODEL, PATH, [1.0], method="euler"), ValueError, rf"`method` must be one of {SIM_METHODS}; got 'euler'\."),
    ("method-case", lambda: dm.simulate(MODEL, PATH, [1.0], method="rk45"), ValueError, rf"`method` must be one of {SIM_METHODS}; got 'rk45'\."),
    ("t_eval-decreasing", lambda: dm.simulate(MODEL, PATH, [1.0, 0.5]), ValueError,
     r"`t_eval` must be strictly increasing; got t_eval\[0\] = .*1\.0.* followed by t_eval\[1\] = .*0\.5"),
    ("t_eval-repeated", lambda: dm.simulate(MODEL, PATH, [0.5, 1.0, 1.0]), ValueError,
     r"`t_eval` must be strictly increasing; got t_eval\[1\] = .*1\.0.* followed by t_eval\[2\] = .*1\.0"),
    ("t_eval-empty", lambda: dm.simulate(MODEL, PATH, []), ValueError, r"`t_eval` must hold at least one time; got an empty array\."),
    ("t_eval-after", lambda: dm.simulate(MODEL, PATH, [1.0, 6.0]), ValueError,
     r"`t_eval` must lie in \[t0, x\.t_end\] = \[0\.0, 5\.0\]; got values in \[1\.0, 6\.0\]\."),
    ("t_eval-before", lambda: dm.simulate(MODEL, PATH, [-0.5, 1.0]), ValueError,
     r"`t_eval` must lie in \[t0, x\.t_end\] = \[0\.0, 5\.0\]; got values in \[-0\.5, 1\.0\]\."),
    ("t_eval-before-t0", lambda: dm.simulate(MODEL, PATH, [0.5, 1.0], t0=0.75), ValueError,
     r"`t_eval` must lie in \[t0, x\.t_end\] = \[0\.75, 5\.0\]; got values in \[0\.5, 1\.0\]\."),
    ("t_eval-nan", lambda: dm.simulate(MODEL, PATH, [np.nan]), ValueError, r"`t_eval` must be finite; got nan at index \(0,\)\."),
    ("t_eval-2d", lambda: dm.simulate(MODEL, PATH, [[1.0]]), ValueError, r"`t_eval` must have 1 dimension\(s\); got shape \(1, 1\)\."),
    ("t0-before", lambda: dm.simulate(MODEL, PATH, [1.0], t0=-1.0), ValueError,
     r"`t0` must lie in the input's domain \[0\.0, 5\.0\]; got -1\.0\."),
    ("t0-after", lambda: dm.simulate(MODEL, PATH, [5.0], t0=5.5), ValueError,
     r"`t0` must lie in the input's domain \[0\.0, 5\.0\]; got 5\.5\."),
    ("t0-nan", lambda: dm.simulate(MODEL, PATH, [1.0], t0=np.nan), ValueError, r"`t0` must be finite; got nan\."),
    ("t0-str", lambda: dm.simulate(MODEL, PATH, [1.0], t0="0"), TypeError, r"`t0` must be a real number; got '0'\."),
    ("h0-shape", lambda: dm.simulate(MODEL, PATH, [1.0], h0=np.zeros(2)), ValueError, r"`h0` must have shape \(3,\); got shape \(2,\)\."),
    ("h0-2d", lambda: dm.simulate(MODEL, PATH, [1.0], h0=np.zeros((1, 3))), ValueError, r"`h0` must have shape \(3,\); got shape \(1, 3\)\."),
    ("h0-linear", lambda: dm.simulate(LIN, PATH, [1.0], h0=np.zeros(4)), ValueError, r"`h0` must have shape \(3,\); got shape \(4,\)\."),
    ("h0-nan", lambda: dm.simulate(MODEL, PATH, [1.0], h0=[0.0, np.nan, 0.0]), ValueError, r"`h0` must be finite; got nan at index \(1,\)\."),
    ("rtol-zero", lambda: dm.simulate(MODEL, PATH, [1.0], rtol=0), ValueError, r"`rtol` must be a positive finite number; got 0\.0\."),
    ("rtol-neg", lambda: dm.simulate(MODEL, PATH, [1.0], rtol=-1e-6), ValueError, r"`rtol` must be a positive finite number; got -1e-06\."),
    ("atol-zero", lambda: dm.simulate(MODEL, PATH, [1.0], atol=0.0), ValueError, r"`atol` must be a positive finite number; got 0\.0\."),
    ("atol-nan", lambda: dm.simulate(MODEL, PATH, [1.0], atol=np.nan), ValueError, r"`atol` must be a positive finite number; got nan\."),
    ("max_step", lambda: dm.simulate(MODEL, PATH, [1.0], max_step=0), ValueError, r"`max_step` must be a positive number; got 0\.0\."),
    ("divergence", lambda: dm.simulate(MODEL, PATH, [1.0], divergence_threshold=-1), ValueError,
     r"`divergence_threshold` must be a positive finite number; got -1\.0\."),
    ("on_failure", lambda: dm.simulate(MODEL, PATH, [1.0], on_failure="ignore"), ValueError,
     r"`on_failure` must be one of 'raise', 'report'; got 'ignore'\."),
    ("on_failure-bool", lambda: dm.simulate(MODEL, PATH, [1.0], on_failure=True), ValueError,
     r"`on_failure` must be one of 'raise', 'report'; got True\."),
]


@pytest.mark.parametrize("fn, exc, pattern", [pytest.param(f, e, p, id=i) for i, f, e, p in SIM_CASES])
def test_simulate_arguments(fn, exc, pattern):
    _check(fn, exc, pattern)


# -- recurrences -------------------------------------------------------------------

REC_CASES = [
    ("X-2d", lambda: rec.forward(DISC, np.zeros((4, 2))), ValueError,
     r"`X` must have shape \(batch, T, d\) with d = 2; got shape \(4, 2\) \(add a batch axis with X\[None\]\)\."),
    ("X-1d", lambda: rec.forward(DISC, np.zeros(4)), ValueError, r"`X` must have shape \(batch, T, d\) with d = 2; got shape \(4,\)\.$"),
    ("X-4d", lambda: rec.forward(DISC, np.zeros((1, 1, 4, 2))), ValueError,
     r"`X` must have shape \(batch, T, d\) with d = 2; got shape \(1, 1, 4, 2\)\.$"),
    ("X-2d-vag", lambda: rec.value_and_grad(DISC, np.zeros((4, 2)), np.zeros((1, 4))), ValueError, r"\(add a batch axis with X\[None\]\)"),
    ("X-dim", lambda: rec.forward(DISC, np.zeros((1, 4, 3))), ValueError,
     r"`X` must have shape \(batch, T, 2\) to match the model's inputs; got shape \(1, 4, 3\)\."),
    ("X-empty-batch", lambda: rec.forward(DISC, np.zeros((0, 4, 2))), ValueError,
     r"`X` must hold at least one sequence of at least one step; got shape \(0, 4, 2\)\."),
    ("X-empty-time", lambda: rec.forward(DISC, np.zeros((1, 0, 2))), ValueError,
     r"`X` must hold at least one sequence of at least one step; got shape \(1, 0, 2\)\."),
    ("X-nan", lambda: rec.forward(DISC, np.full((1, 2, 2), np.nan)), ValueError, r"`X` must be finite; got nan at index \(0, 0, 0\)\."),
    ("X-complex", lambda: rec.forward(DISC, np.zeros((1, 2, 2), complex)), TypeError, r"`X` must be real; got complex dtype complex128\."),
    ("h0-1d", lambda: rec.forward(DISC, X, h0=np.zeros(4)), ValueError, r"`h0` must have shape \(3,\) or \(2, 3\); got shape \(4,\)\."),
    ("h0-2d", lambda: rec.forward(DISC, X, h0=np.zeros((3, 3))), ValueError, r"`h0` must have shape \(3,\) or \(2, 3\); got shape \(3, 3\)\."),
    ("h0-3d", lambda: rec.forward(DISC, X, h0=np.zeros((2, 3, 1))), ValueError, r"`h0` must have 1 or 2 dimension\(s\); got shape \(2, 3, 1\)\."),
    ("ctrnn-forward", lambda: rec.forward(MODEL, X), TypeError,
     r"`model` must be a DiscreteRNN or an EulerRNN \(use CTRNN\.discretize\(dt\)\); got CTRNN\(hidden=3"),
    ("ctrnn-vag", lambda: rec.value_and_grad(MODEL, X, np.zeros((2, 4))), TypeError, r"`model` .*CTRNN\.discretize\(dt\).*; got CTRNN\("),
    ("ctrnn-backward", lambda: rec.backward(MODEL, TRAJ, np.zeros((2, 4))), TypeError, r"`model` .*CTRNN\.discretize\(dt\).*; got CTRNN\("),
    ("linear-forward", lambda: rec.forward(LIN, X), TypeError, r"`model` .*CTRNN\.discretize\(dt\).*; got LinearRNN\("),
    ("str-forward", lambda: rec.forward("m", X), TypeError, r"`model` must be a DiscreteRNN or an EulerRNN .*; got 'm'\."),
    ("Y-shape", lambda: rec.value_and_grad(DISC, X, np.zeros((2, 3))), ValueError, r"`Y` must have shape \(2, 4\); got shape \(2, 3\)\."),
    ("Y-1d", lambda: rec.value_and_grad(DISC, X, np.zeros(8)), ValueError, r"`Y` must have shape \(2, 4\); got shape \(8,\)\."),
    ("Y-transposed", lambda: rec.value_and_grad(DISC, X, np.zeros((4, 2))), ValueError, r"`Y` must have shape \(2, 4\); got shape \(4, 2\)\."),
    ("loss", lambda: rec.value_and_grad(DISC, X, np.zeros((2, 4)), loss="mae"), ValueError, r"`loss` must be one of 'mse', 'sse'; got 'mae'\."),
    ("dy-shape", lambda: rec.backward(DISC, TRAJ, np.zeros((2, 3))), ValueError, r"`dy` must have shape \(2, 4\); got shape \(2, 3\)\."),
    ("dh_final-shape", lambda: rec.backward(DISC, TRAJ, np.zeros((2, 4)), dh_final=np.zeros(3)), ValueError,
     r"`dh_final` must have shape \(2, 3\); got shape \(3,\)\."),
    ("trajectory-other-model", lambda: rec.backward(DiscreteRNN.random(3, 2, rng=0), TRAJ, np.zeros((2, 4))), ValueError,
     r"`trajectory` must come from forward\(\) with this same `model`; it was computed for DiscreteRNN\(hidden="),
]


@pytest.mark.parametrize("fn, exc, pattern", [pytest.param(f, e, p, id=i) for i, f, e, p in REC_CASES])
def test_recurrence_arguments(fn, exc, pattern):
    _check(fn, exc, pattern)


# -- adjoint_gradient ----------------------------------------------------------------

T_OBS, Y_OBS = [1.0, 2.0], [0.0, 0.0]

ADJ_CASES = [
    ("t_obs-decreasing", lambda: dm.adjoint_gradient(MODEL, PATH, [2.0, 1.0], Y_OBS), ValueError,
     r"`t_obs` must be strictly increasing; got t_obs\[0\] = .*2\.0.* followed by t_obs\[1\] = .*1\.0"),
    ("t_obs-repeated", lambda: dm.adjoint_gradient(MODEL, PATH, [1.0, 1.0], Y_OBS), ValueError,
     r"`t_obs` must be strictly increasing; got t_obs\[0\] = .*1\.0.* followed by t_obs\[1\] = .*1\.0"),
    ("t_obs-empty", lambda: dm.adjoint_gradient(MODEL, PATH, [], []), ValueError, r"`t_obs` must hold at least one time; got an empty array\."),
    ("t_obs-nan", lambda: dm.adjoint_gradient(MODEL, PATH, [np.nan], [0.0]), ValueError, r"`t_obs` must be finite; got nan at index \(0,\)\."),
    ("y_obs-long", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, [0.0, 0.0, 0.0]), ValueError, r"`y_obs` must have shape \(2,\); got shape \(3,\)\."),
    ("y_obs-2d", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, [[0.0, 0.0]]), ValueError, r"`y_obs` must have shape \(2,\); got shape \(1, 2\)\."),
    ("weights-negative", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, weights=[1.0, -0.5]), ValueError,
     r"`weights` must be non-negative; got min\(weights\) = -0\.5\."),
    ("weights-shape", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, weights=[1.0]), ValueError,
     r"`weights` must have shape \(2,\); got shape \(1,\)\."),
    ("running_target", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, running_target=3.0), TypeError,
     r"`running_target` must be callable r\(t\) or None; got 3\.0\."),
    ("running_target-array", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, running_target=np.zeros(3)), TypeError,
     r"`running_target` must be callable r\(t\) or None; got array \[0\., 0\., 0\.\] of shape \(3,\)\."),
    ("running_weight", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, running_target=lambda t: 0 * t, running_weight=-1.0),
     ValueError, r"`running_weight` must be a non-negative finite number; got -1\.0\."),
    ("method", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, method="euler"), ValueError,
     rf"`method` must be one of {SIM_METHODS}; got 'euler'\."),
    ("quadrature_nodes", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, quadrature_nodes=0), ValueError,
     r"`quadrature_nodes` must be >= 1; got 0\."),
    ("rtol", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, rtol=0.0), ValueError, r"`rtol` must be a positive finite number; got 0\.0\."),
    ("model", lambda: dm.adjoint_gradient(DISC, PATH, T_OBS, Y_OBS), TypeError, r"`model` must be a CTRNN or a LinearRNN .*; got DiscreteRNN\("),
    ("x", lambda: dm.adjoint_gradient(MODEL, [1.0], T_OBS, Y_OBS), TypeError, r"`x` must be an input path from dynmem\.inputs .*; got \[1\.0\]\."),
    ("h0", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, h0=[0.0]), ValueError, r"`h0` must have shape \(3,\); got shape \(1,\)\."),
    ("t0-nan", lambda: dm.adjoint_gradient(MODEL, PATH, T_OBS, Y_OBS, t0=np.nan), ValueError, r"`t0` must be finite; got nan\."),
]


@pytest.mark.parametrize("fn, exc, pattern", [pytest.param(f, e, p, id=i) for i, f, e, p in ADJ_CASES])
def test_adjoint_arguments(fn, exc, pattern):
    _check(fn, exc, pattern)


# -- the helpers themselves ------------------------------------------------------------


def test_helpers_refuse_booleans_as_numbers():
    _check(lambda: check_finite("a", True), TypeError, r"`a` must be a real number; got True\.")
    _check(lambda: check_int("n", False), TypeError, r"`n` must be an integer; got False\.")
    _check(lambda: check_int("n", np.int64(0), minimum=1), ValueError, r"`n` must be >= 1; got 0\.")
    assert check_int("n", np.int64(4)) == 4 and type(check_int("n", np.int64(4))) is int


def test_check_choice_refuses_non_strings():
    _check(lambda: check_choice("kind", 1, ("a", "b")), ValueError, r"`kind` must be one of 'a', 'b'; got 1\.")


def test_check_increasing_shape_and_non_strict():
    _check(lambda: check_increasing("t", np.zeros((2, 2))), ValueError, r"`t` must be one-dimensional; got shape \(2, 2\)\.")
    t = np.array([0.0, 1.0, 1.0, 2.0])
    assert check_increasing("t", t, strict=False) is t
    _check(lambda: check_increasing("t", np.array([0.0, 2.0, 1.0]), strict=False), ValueError, r"`t` must be non-decreasing; got t\[1\]")


def test_as_float_array_describes_large_arrays_by_shape():
    big = np.zeros((3, 4), dtype="U1")
    _check(lambda: as_float_array("A", big), TypeError, r"`A` must be an array of real numbers; got dtype <U1 from array of shape \(3, 4\) and dtype <U1\.")


def test_as_float_array_copy_flag():
    a = np.arange(3.0)
    assert np.shares_memory(as_float_array("a", a), a)
    assert not np.shares_memory(as_float_array("a", a, copy=True), a)
    assert as_float_array("a", [True, False]).dtype == np.float64


# -- house-rule gaps (fixed) -----------------------------------------------------------
# Each case is a bad call whose message once broke the house rule (named an
# argument the caller did not pass, left out the value, or let a raw numpy error
# escape); the comment says what it used to do, the pattern what the rule asks
# for and what dynmem now says.

GAP_CASES = [
    # was: adjoint_gradient forwarded t_obs to simulate as t_eval, and the message blamed `t_eval`.
    ("adjoint-t_obs-outside", lambda: dm.adjoint_gradient(MODEL, PATH, [1.0, 6.0], Y_OBS), ValueError, r"`t_obs`.*6\.0"),
    ("adjoint-t_obs-before", lambda: dm.adjoint_gradient(MODEL, PATH, [-1.0, 2.0], Y_OBS), ValueError, r"`t_obs`.*-1\.0"),
    # was: unflatten handed a non-finite theta to the constructor, which blamed `W`.
    ("unflatten-nan", lambda: MODEL.unflatten(np.full(MODEL.n_params, np.nan)), ValueError, r"`theta` must be finite; got nan"),
    # was: step built knots [t_jump, t_end], and a bad t_end or t_jump was reported as `knots`.
    ("step-t_end-before-jump", lambda: dm.step(1.0, t_jump=1.0, t_end=0.5), ValueError, r"`t_end`.*0\.5"),
    ("step-t_jump-nan", lambda: dm.step(1.0, t_jump=np.nan), ValueError, r"`t_jump`.*nan"),
    # was: impulse did not check t0, and a NaN t0 was reported as a bad `t_end`.
    ("impulse-t0-nan", lambda: dm.impulse(1.0, width=0.1, t0=np.nan), ValueError, r"`t0`.*nan"),
    # was: white_noise did not check t_start: NaN blamed `t_end`, -inf escaped as OverflowError.
    ("white_noise-t_start-nan", lambda: dm.white_noise(1, 1.0, 0.1, t_start=np.nan), ValueError, r"`t_start`.*nan"),
    ("white_noise-t_start-neg-inf", lambda: dm.white_noise(1, 1.0, 0.1, t_start=-np.inf), ValueError, r"`t_start`.*-inf"),
    # was: from_sequence reported a sequence with no columns as `values`, a bad t_start as
    # `knots`, and an empty sequence without the value.
    ("from_sequence-no-columns", lambda: dm.from_sequence(np.zeros((3, 0)), 0.1), ValueError, r"`X`.*\(3, 0\)"),
    ("from_sequence-t_start-inf", lambda: dm.from_sequence(np.zeros(3), 0.1, t_start=np.inf), ValueError, r"`t_start`.*inf"),
    ("from_sequence-empty", lambda: dm.from_sequence(np.zeros((0, 1)), 0.1), ValueError, r"`X` must hold at least one sample.*got.*\(0, 1\)"),
    # backward: a non-Trajectory is a type error whose message says what it got (it did not).
    ("backward-not-a-trajectory", lambda: rec.backward(DISC, "traj", np.zeros((2, 4))), TypeError, r"`trajectory`.*got 'traj'"),
]


@pytest.mark.parametrize("fn, exc, pattern", [pytest.param(f, e, p, id=i) for i, f, e, p in GAP_CASES])
def test_house_rule_gaps(fn, exc, pattern):
    _check(fn, exc, pattern)


@pytest.mark.parametrize("copy", [False, True])
def test_as_float_array_ndim_check_sees_scalars(copy):
    # np.ascontiguousarray turns a 0-d array into shape (1,), so without copy=True a
    # scalar passes an ndim=1 (or shape=(1,)) check that it fails with copy=True.
    _check(lambda: as_float_array("t", 1.0, ndim=1, copy=copy), ValueError, r"`t` must have 1 dimension\(s\); got shape \(\)\.")
    _check(lambda: as_float_array("h0", 0.5, shape=(1,), copy=copy), ValueError, r"`h0` must have shape \(1,\); got shape \(\)\.")


def test_scalar_where_a_time_grid_is_required():
    # consequences of the above at the public boundary
    _check(lambda: LIN.kernel(1.0), ValueError, r"`t` must have 1 dimension\(s\); got shape \(\)\.")
    _check(lambda: dm.simulate(MODEL, PATH, 1.0), ValueError, r"`t_eval` must have 1 dimension\(s\); got shape \(\)\.")


def test_increasing_message_prints_plain_numbers():
    # With numpy >= 2 the !r of a numpy scalar reads "np.float64(1.0)"; the rule
    # wants the value as a user would type it.
    msg = _check(lambda: dm.PiecewiseConstant([0.0, 2.0, 1.0], [1.0, 2.0]), ValueError, r"`knots` must be strictly increasing")
    assert "knots[1] = 2.0 followed by knots[2] = 1.0." in msg


def test_as_square_matrix_is_the_one_square_check():
    from dynmem._validation import as_square_matrix

    W = np.arange(4.0).reshape(2, 2)
    out = as_square_matrix("W", W)
    assert out.dtype == np.float64 and out.shape == (2, 2)
    assert as_square_matrix("W", W, copy=True) is not W
    with pytest.raises(ValueError, match=r"^`M` must be square; got shape \(2, 3\)\.$"):
        as_square_matrix("M", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^`P` must have at least one row \(an m x m transition matrix\); got shape"):
        as_square_matrix("P", np.zeros((0, 0)), rows_hint=" (an m x m transition matrix)")
    with pytest.raises(ValueError, match=r"`W`"):
        as_square_matrix("W", [[1.0, np.nan], [0.0, 1.0]])
    # every module's square check says the same
    import dynmem as dm
    from dynmem.kernel.chains import MarkovChain
    from dynmem.testing import departure_from_normality

    for call in (lambda: dm.spectral_radius(np.zeros((2, 3))), lambda: departure_from_normality(np.zeros((2, 3))),
                 lambda: dm.LinearRNN(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros(2))):
        with pytest.raises(ValueError, match=r"`W` must be square; got shape \(2, 3\)\."):
            call()
    with pytest.raises(ValueError, match=r"`P` must be square; got shape \(2, 3\)\."):
        MarkovChain(np.full((2, 3), 1 / 3))
