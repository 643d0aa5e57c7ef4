"""dynmem.residual.ResidualRNN on the model contract and dynmem.training.train_epochs.

The reproduction tests compare with tests/fixtures/residual_fit_reference.npz, a REGRESSION FIXTURE written
by the old training loop of dynmem/experiments/trained.py (commit 9cbd0a2, before issue 22 item 3 moved it
into the library; tests/fixtures/make_residual_fit_reference.py says how).  Gradients are checked against
central differences, outputs against the EulerRNN the model wraps, built by hand.

The fixture was written on one CPU; numba compiles for the CPU it runs on, so the last bits move between
machines.  Measured by recompiling for numba's ``generic`` target (no AVX2): every array moved by at most
6e-16 relative to its largest entry, epochs, steps and stop reasons not at all.  So counts are compared
exactly and floats within ``REL = 1e-12`` of the largest entry (about 1,600 times that drift, and far
below any change a training bug makes); ``test_the_tolerance_catches_a_change_just_above_it`` keeps it able
to fail.  On the machine that wrote the fixture the results are bit-identical.
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dynmem as dm
from dynmem.experiments import trained as tr
from dynmem.models import DiscreteModel, Parametrized, Trainable
from dynmem.residual import MarginPenalty, ResidualRNN, init_residual, time_weights
from dynmem.training import EpochResult, TrainOptions, train_epochs

FIXTURES = Path(__file__).with_name("fixtures")
_spec = importlib.util.spec_from_file_location("make_residual_fit_reference", FIXTURES / "make_residual_fit_reference.py")
REF = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(REF)


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURES / "residual_fit_reference.npz") as z:
        return {k: z[k] for k in z.files}


REL = 1e-12


def _same(actual, expected, what=""):
    """``actual`` equals the fixture's ``expected`` within ``REL`` of expected's largest entry (same shape)."""
    a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != fixture {e.shape}"
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    err = float(np.max(np.abs(a - e))) if e.size else 0.0
    assert err <= REL * scale, f"{what}: max |difference| {err:.3g} > {REL:g} x {scale:.3g}"


def _case(name):
    kw, init, changes = REF.CASES[name]
    seed = sorted(REF.CASES).index(name)
    return kw, init, {**REF.BASE, **changes}, seed, REF.case_data(seed)


def _options(training) -> TrainOptions:
    """The case's training written out by hand as TrainOptions (independent of tr.training_options)."""
    sch = training["schedule"] or {}
    kind = sch.get("kind", "plateau") if sch else None
    pen = training["penalty"]
    return TrainOptions(
        lr=training["lr"], batch_size=training["batch_size"], max_epochs=training["max_epochs"],
        min_epochs=training["min_epochs"], optimizer=training["optimizer"], weight_decay=training["weight_decay"],
        schedule=kind, lr_min=sch.get("lr_min", 0.0), plateau_factor=sch.get("factor", 0.1),
        plateau_patience=sch.get("patience", 10), plateau_threshold=sch.get("threshold", 1e-4),
        clip_norm=training["clip_norm"], time_weight_power=training["time_weight_power"],
        penalty=MarginPenalty(pen["weight"], pen["level"]) if pen else None, snapshots=training["snapshots"])


# ---------------------------------------------------------------- against the old loop (cross-CPU tolerance)


@pytest.mark.parametrize("name", sorted(REF.CASES))
def test_train_epochs_reproduces_the_old_loop(name, reference):
    kw, init, training, seed, data = _case(name)
    kw = dict(kw)
    model = init_residual(kw.pop("hidden"), init, np.random.default_rng([seed, 5]), **kw)
    for k, v in model.params().items():
        _same(v, reference[f"{name}/p0/{k}"], f"{name}/p0/{k}")
    _same(model.W, reference[f"{name}/W0"], f"{name}/W0")
    res = model.value_and_grad(data["X"], data["Y"], weights=time_weights(12, training["time_weight_power"]))
    _same(res.loss, reference[f"{name}/loss0"], "loss0")
    for k in model.param_names:
        _same(res.grads[k], reference[f"{name}/grad0/{k}"], f"{name}/grad0/{k}")
    out = train_epochs(model, data, _options(training), seed=seed)
    assert isinstance(out, EpochResult)
    _same(out.history[:, :5], reference[f"{name}/history"], f"{name}/history")
    assert (out.epochs, out.steps, out.stopped) == (int(reference[f"{name}/epochs"]), int(reference[f"{name}/steps"]),
                                                    str(reference[f"{name}/stopped"]))
    _same(out.best_val, reference[f"{name}/best_val"], "best_val")
    _same(out.last_val, reference[f"{name}/last_val"], "last_val")
    assert sorted(out.snapshots) == training["snapshots"]
    for k in model.param_names:
        _same(out.model.params()[k], reference[f"{name}/params/{k}"], f"{name}/params/{k}")
        _same(out.best_model.params()[k], reference[f"{name}/best/{k}"], f"{name}/best/{k}")
        for e, snap in out.snapshots.items():
            _same(snap.params()[k], reference[f"{name}/snap{e}/{k}"], f"{name}/snap{e}/{k}")


@pytest.mark.parametrize("name", sorted(REF.CASES))
def test_experiment_wrappers_reproduce_the_old_loop(name, reference):
    kw, init, training, seed, data = _case(name)
    net = tr.Net(**kw)
    p0 = tr.init_params(net, init, np.random.default_rng([seed, 5]))
    assert tuple(p0) == net.names
    _same(tr.recurrent_matrix(net, p0), reference[f"{name}/W0"], f"{name}/W0")
    loss, grads = tr.loss_and_grad(net, p0, data["X"], data["Y"], tr.time_weights(12, training["time_weight_power"]))
    _same(loss, reference[f"{name}/loss0"], "loss0")
    fs = tr.fit(net, p0, data, training, seed=seed)
    _same(fs.history[:, :5], reference[f"{name}/history"], f"{name}/history")
    _same(fs.best_val, reference[f"{name}/best_val"], "best_val")
    for k in net.names:
        _same(grads[k], reference[f"{name}/grad0/{k}"], f"{name}/grad0/{k}")
        _same(fs.params[k], reference[f"{name}/params/{k}"], f"{name}/params/{k}")
        _same(fs.best_params[k], reference[f"{name}/best/{k}"], f"{name}/best/{k}")
        for e, snap in fs.snapshots.items():
            _same(snap[k], reference[f"{name}/snap{e}/{k}"], f"{name}/snap{e}/{k}")


def test_the_tolerance_catches_a_change_just_above_it(reference):
    name = sorted(REF.CASES)[0]
    for key in (f"{name}/W0", f"{name}/history", f"{name}/loss0"):
        e = np.asarray(reference[key], dtype=float)
        _same(e.copy(), e, key)  # equal passes
        bumped = e.copy().reshape(-1)
        i = int(np.argmax(np.abs(bumped)))
        bumped[i] += 2.0 * REL * abs(bumped[i])  # one entry moved by twice the tolerance
        with pytest.raises(AssertionError, match="max \\|difference\\|"):
            _same(bumped.reshape(e.shape), e, key)
    with pytest.raises(AssertionError, match="shape"):
        _same(np.zeros(3), np.zeros(4), "shape")


# ---------------------------------------------------------------- the model contract


def _random_model(rng, form, g, bias, m=3, d=1, dt=0.5, activation="tanh"):
    p = {"U": rng.standard_normal((m, d)), "b": 0.3 * rng.standard_normal(m), "c": rng.standard_normal(m)}
    if form == "free":
        p["M"] = -np.eye(m) + 0.4 * rng.standard_normal((m, m))
    else:
        p["w"] = rng.uniform(0.2, 1.5, m)  # away from relu's kink
        if form == "orth":
            p["P"] = np.linalg.qr(rng.standard_normal((m, m)))[0] + 0.1 * rng.standard_normal((m, m))
    if bias:
        p["d"] = rng.standard_normal(1)
    return ResidualRNN(form=form, g=g, activation=activation, dt=dt, **p)


FORM_G = [("free", "identity"), ("diag", "softplus"), ("diag", "relu"), ("diag", "exp"), ("orth", "relu"),
          ("orth", "softplus"), ("orth", "identity")]


@settings(max_examples=20, deadline=None)
@given(form_g=st.sampled_from(FORM_G), bias=st.booleans(), seed=st.integers(0, 2**31 - 1),
       power=st.sampled_from([0.0, 2.0]), loss=st.sampled_from(["mse", "sse"]),
       activation=st.sampled_from(["tanh", "identity"]))  # smooth: no kink for the differences
def test_gradient_matches_central_differences(form_g, bias, seed, power, loss, activation):
    rng = np.random.default_rng(seed)
    model = _random_model(rng, *form_g, bias, activation=activation)
    X = rng.standard_normal((4, 7, 1))
    Y = rng.standard_normal((4, 7))
    wt2 = time_weights(7, power)
    res = model.value_and_grad(X, Y, loss=loss, weights=wt2)
    assert res.flat.shape == (model.n_params,)
    theta = model.flatten()
    f = lambda th: model.unflatten(th).value_and_grad(X, Y, loss=loss, weights=wt2).loss  # noqa: E731
    for _ in range(3):
        v = rng.standard_normal(theta.size)
        h = 1e-5
        fd = (8 * (f(theta + h * v) - f(theta - h * v)) - (f(theta + 2 * h * v) - f(theta - 2 * h * v))) / (12 * h)
        an = float(res.flat @ v)
        assert abs(an - fd) <= 1e-7 * max(1.0, abs(fd)), (an, fd)


@settings(max_examples=15, deadline=None)
@given(form_g=st.sampled_from(FORM_G), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_outputs_are_those_of_the_euler_rnn_it_wraps(form_g, bias, seed):
    rng = np.random.default_rng(seed)
    form, g = form_g
    model = _random_model(rng, form, g, bias, d=2)
    gw = {"identity": lambda w: w, "relu": lambda w: np.maximum(w, 0), "softplus": lambda w: np.log1p(np.exp(w)),
          "exp": np.exp}[g]
    if form == "free":
        W = model.M
    elif form == "diag":
        W = -np.diag(gw(model.w))
    else:
        W = -model.P.T @ np.diag(gw(model.w)) @ model.P
    np.testing.assert_allclose(model.W, W, rtol=1e-13, atol=1e-14)
    euler = dm.EulerRNN(W, model.U, model.b, model.c, dt=model.dt, activation=model.activation)
    X = rng.standard_normal((3, 9, 2))
    S0 = rng.standard_normal((3, 3))
    d = model.d[0] if bias else 0.0
    np.testing.assert_allclose(model.outputs(X, S0), euler.outputs(X, S0) + d, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.readout(S0), S0 @ model.c + d, rtol=1e-13, atol=1e-14)
    # the loss of value_and_grad is the mean squared error of outputs(X, 0)
    Y = rng.standard_normal((3, 9))
    r = model.outputs(X, np.zeros((3, 3))) - Y
    assert math.isclose(model.value_and_grad(X, Y).loss, float(np.mean(r * r)), rel_tol=1e-12)


def test_contract_membership_flatten_and_refusals():
    model = _random_model(np.random.default_rng(0), "orth", "softplus", True)
    assert isinstance(model, Parametrized) and isinstance(model, DiscreteModel) and isinstance(model, Trainable)
    assert model.param_names == ("U", "b", "c", "d", "w", "P") and model.n_params == 3 + 3 + 3 + 1 + 3 + 9
    assert model.state_size == 3 and model.dt == 0.5 and model.inputs == 1
    back = model.unflatten(model.flatten())
    for k in model.param_names:
        np.testing.assert_array_equal(getattr(back, k), getattr(model, k))
    assert not model.U.flags.writeable
    x = np.array([[0.3]])
    h = model.equilibrium(x)  # W = -P^T diag(softplus w) P is negative definite: the fixed point exists
    np.testing.assert_allclose(np.tanh(h @ model.W.T + x @ model.U.T + model.b), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="`M` is not a parameter of form 'orth'"):
        model.replace(M=np.eye(3))
    with pytest.raises(ValueError, match="`P` is required"):
        ResidualRNN(U=np.ones((2, 1)), b=np.zeros(2), c=np.ones(2), w=np.ones(2), form="orth")
    with pytest.raises(ValueError, match="`g` must be one of"):
        ResidualRNN(U=np.ones((2, 1)), b=np.zeros(2), c=np.ones(2), w=np.ones(2), form="diag", g="tanh")
    with pytest.raises(ValueError, match="length"):
        model.unflatten(np.zeros(3))


def test_margin_penalty_hook_by_hand():
    model = _random_model(np.random.default_rng(1), "diag", "relu", False).replace(w=np.array([0.3, -1.0, 2.0]))
    v, g = MarginPenalty(0.01, 1.0)(model)
    assert math.isclose(v, 0.01 * 0.7) and np.array_equal(g["w"], [-0.01, 0.0, 0.0])
    assert MarginPenalty(0.01, 1.0)(_random_model(np.random.default_rng(1), "free", "identity", False)) == (0.0, {})


def test_library_train_accepts_a_residual_rnn():
    rng = np.random.default_rng(2)
    model = init_residual(3, {"kind": "stable-diagonal", "rates": [0.1, 1.0]}, rng, form="diag", g="softplus", dt=0.5)
    X = rng.standard_normal((16, 10, 1))
    Y = 0.5 * np.cumsum(X[:, :, 0], axis=1) * 0.1
    res = dm.train(model, X, Y, steps=40, lr=0.02)
    assert isinstance(res.model, ResidualRNN) and res.success and res.history[-1] < res.history[0]


# ---------------------------------------------------------------- train_epochs


def _small(seed=0, form="free", g="identity"):
    kw, init, training, _, data = _case("free_tanh_cosine")
    model = init_residual(4, {"kind": "stable-diagonal", "rates": [0.1, 1.0]}, np.random.default_rng(seed), form=form,
                          g=g, dt=0.1)
    return model, data


def test_train_epochs_resumes_to_the_uninterrupted_numbers(tmp_path):
    model, data = _small()
    opts = TrainOptions(lr=0.01, batch_size=16, max_epochs=5, schedule="plateau", plateau_patience=0,
                        plateau_threshold=0.5, snapshots=(2, 4))
    ref = train_epochs(model, data, opts, seed=3)
    ck = str(tmp_path / "ck.npz")
    import dataclasses

    step = dataclasses.replace(opts, checkpoint=ck, key="k", time_budget=0.0)
    calls = 0
    while True:
        out = train_epochs(model, data, step, seed=3)
        calls += 1
        if out.epochs >= 5:
            break
        assert out.stopped == "time_budget"
    assert calls == 5 and out.resumed == 4 and sorted(out.snapshots) == [2, 4]
    np.testing.assert_array_equal(out.model.flatten(), ref.model.flatten())
    np.testing.assert_array_equal(out.best_model.flatten(), ref.best_model.flatten())
    np.testing.assert_array_equal(out.history[:, :5], ref.history[:, :5])
    again = train_epochs(model, data, step, seed=3)  # finished: returns at once
    assert again.epochs == 5 and again.steps == ref.steps


def test_train_epochs_threshold_and_min_epochs():
    model, data = _small()
    base = TrainOptions(lr=0.01, batch_size=16, max_epochs=6)
    import dataclasses

    assert train_epochs(model, data, dataclasses.replace(base, threshold=1e9), seed=0).epochs == 1
    out = train_epochs(model, data, dataclasses.replace(base, threshold=1e9, min_epochs=3), seed=0)
    assert (out.stopped, out.epochs) == ("threshold", 3)
    out = train_epochs(model, data, base, seed=0)
    assert (out.stopped, out.epochs, out.steps) == ("max_epochs", 6, 6 * 3)


def test_train_epochs_trains_an_euler_rnn_and_refuses_bad_options():
    rng = np.random.default_rng(4)
    model = dm.EulerRNN(-np.eye(3), rng.standard_normal((3, 1)), np.zeros(3), 0.5 * rng.standard_normal(3), dt=0.2)
    X = rng.standard_normal((32, 8, 1))
    Y = 0.2 * np.cumsum(X[:, :, 0], axis=1)
    out = train_epochs(model, {"X": X, "Y": Y}, TrainOptions(lr=0.02, batch_size=8, max_epochs=5), seed=0)
    assert isinstance(out.model, dm.EulerRNN) and out.history[-1, 3] < out.history[0, 3]
    with pytest.raises(ValueError, match="time_weight_power"):
        train_epochs(model, {"X": X, "Y": Y}, TrainOptions(lr=0.02, batch_size=8, max_epochs=1, time_weight_power=2.0),
                     seed=0)
    with pytest.raises(ValueError, match="adamw"):
        TrainOptions(lr=0.01, batch_size=8, max_epochs=1, weight_decay=0.1)
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        TrainOptions(lr=0.01, batch_size=8, max_epochs=1, schedule="step")
    with pytest.raises(TypeError, match="`penalty` must be callable"):
        TrainOptions(lr=0.01, batch_size=8, max_epochs=1, penalty=0.1)
