"""The trained-experiment machinery (dynmem.experiments): protocol ingredients against hand-computed values,
gradients against finite differences, resumable training, the study findings and the replication report."""

import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dynmem.experiments import ablation, experiment_names, get_experiment, report, study
from dynmem.experiments import trained as tr
from dynmem.experiments.protocols import protocol
from dynmem.io import atomic_write_json, read_json
from dynmem.residual import ResidualRNN


# ---------------------------------------------------------------- protocols as data


def test_paper_protocol_holds_the_papers_numbers():
    p = protocol("paper")
    t = p["training"]
    assert (t["lr"], t["batch_size"], t["max_epochs"], t["stop"]) == (0.005, 128, 1000, {"kind": "threshold", "value": 1e-8})
    assert (p["data"]["n_train"], p["data"]["n_test"], p["data"]["T_train"], p["model"]["dt"]) == (12800, 12800, 32, 0.1)
    b = tr.perturbation_betas(p["perturbation"]["betas"])
    assert b[0] == 0.0 and b.size == 37 and b[1] == 1e-11 and math.isclose(b[-1], 1e-11 * 2.0 ** 35)
    assert p["perturbation"]["norm"] == "block-spectral" and p["perturbation"]["repeats"] == 3


def test_code_protocol_beta_grid_and_recipe():
    p = protocol("code")
    b = tr.perturbation_betas(p["perturbation"]["betas"])
    np.testing.assert_allclose(b[1:], [1e-3 * 2.0 ** (i / 2) for i in range(21)], rtol=1e-14)
    t = p["training"]
    assert t["clip_norm"] == 0.5 and t["schedule"]["factor"] == 0.1 and t["schedule"]["patience"] == 10
    assert t["penalty"] == {"kind": "margin", "weight": 0.01, "level": 1.0}
    assert p["identity_swap"] is True and p["parameterisation"]["fig2"] == {"form": "orth", "g": "relu"}


def test_protocol_overrides_and_refusals():
    p = protocol("paper", training__max_epochs=7, perturbation={"norm": "entrywise-max"})
    assert p["training"]["max_epochs"] == 7 and p["perturbation"] == {"norm": "entrywise-max"}
    assert protocol("paper")["training"]["max_epochs"] == 1000  # a fresh copy every call
    with pytest.raises(ValueError, match="'nope' is not a key"):
        protocol("paper", training__nope=1)
    with pytest.raises(ValueError, match="`protocol` must be one of"):
        protocol("torch")


# ---------------------------------------------------------------- ingredients against hand-computed values


def test_time_weights_by_hand():
    # omega = ((i+1)/(T+1))^2 = [1, 4, 9, 16] / 25, rescaled to sum T = 4: omega * 4 / (30/25) = [1, 4, 9, 16] * 2/15
    np.testing.assert_allclose(tr.time_weights(4, 2.0), (np.array([1.0, 4.0, 9.0, 16.0]) * 2.0 / 15.0) ** 2, rtol=1e-14)
    np.testing.assert_array_equal(tr.time_weights(5, 0.0), np.ones(5))


def test_margin_penalty_by_hand_and_by_differences():
    net = tr.Net(hidden=3, form="orth", g="relu")
    pen = {"kind": "margin", "weight": 0.01, "level": 1.0}
    v, g = tr.margin_penalty(net, {"w": np.array([0.3, -1.0, 2.0])}, pen)
    assert math.isclose(v, 0.01 * 0.7) and np.array_equal(g["w"], [-0.01, 0.0, 0.0])
    assert tr.margin_penalty(net, {"w": np.array([-0.3, -1.0])}, pen) == (0.0, {})  # no positive w: no penalty
    assert tr.margin_penalty(net, {"w": np.array([1.5, 2.0])}, pen) == (0.0, {})  # margin above the level
    net = tr.Net(hidden=3, form="diag", g="softplus")
    w = np.array([0.2, -0.4, 1.0])
    v, g = tr.margin_penalty(net, {"w": w}, pen)
    assert math.isclose(v, 0.01 * (1.0 - math.log1p(math.exp(-0.4))), rel_tol=1e-12)
    h = 1e-6
    e = np.eye(3)
    fd = [(tr.margin_penalty(net, {"w": w + h * e[i]}, pen)[0] - tr.margin_penalty(net, {"w": w - h * e[i]}, pen)[0])
          / (2 * h) for i in range(3)]
    np.testing.assert_allclose(g["w"], fd, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("norm", ["entrywise-max", "block-spectral"])
def test_perturbation_directions_have_unit_norm(norm):
    net = tr.Net(hidden=5, form="orth", g="relu", output_bias=True)
    dirs = tr.directions(net, norm, 4, np.random.default_rng(0))
    for name, d in dirs.items():
        for k in range(4):
            if norm == "entrywise-max":
                expect = np.abs(d[k]).max()  # the code's rule: max |entry| of every tensor is beta
            elif name == "w":
                expect = np.abs(d[k]).max()  # diag(w) in the spectral norm
            elif d[k].ndim == 2:
                expect = np.linalg.svd(d[k], compute_uv=False)[0]
            else:
                expect = np.sqrt(np.sum(d[k] ** 2))
            assert math.isclose(expect, 1.0, rel_tol=1e-12), (name, k)


def test_identity_swap_evaluates_relu_w_as_identity():
    rng = np.random.default_rng(3)
    net = tr.Net(hidden=4, form="orth", g="relu", dt=1.0, output_bias=True)
    p = tr.init_params(net, protocol("code")["init"], rng)
    p["w"] = np.array([0.5, -0.2, 1.0, 2.0])
    X = rng.standard_normal((6, 10, 1))
    Y = rng.standard_normal((6, 10))
    spec = {"norm": "entrywise-max", "betas": {"start": 1e-3, "ratio": 2.0, "count": 3, "zero": True},
            "repeats": 2, "directions": "common", "blowup_factor": 10.0}
    swapped = tr.perturbation_study(net, p, spec, X, Y, np.ones(10), identity_swap=True)
    plain = tr.perturbation_study(net, p, spec, X, Y, np.ones(10), identity_swap=False)
    # with relu(w) = [0.5, 0, 1, 2], W = -P^T diag(relu w) P has eigenvalue 0: margin 0 either way
    assert abs(swapped["margin"]) < 1e-12 and abs(plain["margin"]) < 1e-12 and swapped["identity_swap"]
    # at beta = 0 both evaluate the same model: relu(w) through the identity is relu(w) through relu
    hand = tr.evaluate(net, {k: v[None] for k, v in {**p, "w": np.maximum(p["w"], 0)}.items()}, X, Y, np.ones(10),
                       g="identity")[0]
    assert swapped["error0"] == pytest.approx(hand, rel=1e-14) and plain["error0"] == pytest.approx(hand, rel=1e-14)
    # beyond 0 they differ: the swapped model feels the noise on w_2 = 0 in both signs, relu cuts the negative half
    assert not np.allclose(swapped["errors"][1:], plain["errors"][1:], rtol=1e-12, atol=0)
    W = tr.recurrent_matrix(net, {**p, "w": np.maximum(p["w"], 0)}, g="identity")
    np.testing.assert_allclose(W, -p["P"].T @ np.diag([0.5, 0, 1, 2]) @ p["P"], atol=1e-14)


# ---------------------------------------------------------------- gradients


@settings(max_examples=12, deadline=None)
@given(form_g=st.sampled_from([("free", "identity"), ("diag", "softplus"), ("diag", "relu"), ("orth", "relu"),
                               ("orth", "softplus"), ("diag", "exp")]),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1), power=st.sampled_from([0.0, 2.0]))
def test_loss_gradient_matches_central_differences(form_g, bias, seed, power):
    form, g = form_g
    rng = np.random.default_rng(seed)
    net = tr.Net(hidden=3, form=form, g=g, dt=0.5, output_bias=bias)
    p = tr.init_params(net, {"kind": "torch-default"} if form == "orth" else {"kind": "stable-diagonal", "rates": [0.1, 1.0]}, rng)
    if form != "free":
        p["w"] = rng.uniform(0.2, 1.5, 3)  # away from relu's kink
    X = rng.standard_normal((4, 7, 1))
    Y = rng.standard_normal((4, 7))
    wt2 = tr.time_weights(7, power)
    _, grads = tr.loss_and_grad(net, p, X, Y, wt2)
    for name in net.names:
        d = rng.standard_normal(p[name].shape)
        h = 1e-5
        f = lambda s: tr.loss_and_grad(net, {**p, name: p[name] + s * d}, X, Y, wt2)[0]
        fd = (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)
        an = float(np.sum(grads[name] * d))
        assert abs(an - fd) <= 1e-7 * max(1.0, abs(fd)), (name, an, fd)


# ---------------------------------------------------------------- training: stopping rules and resumption


def _tiny(n=64, T=8, seed=0, form="free", g="identity"):
    proto = protocol("paper")
    net = tr.Net(hidden=4, form=form, g=g, dt=0.1)
    target = tr.make_target(proto["targets"]["pol"])
    data = tr.make_data(proto, target, seed, scale=n / 12800)
    data = {k: v[:, :T] if k in ("X", "Y", "Xv", "Yv") else v for k, v in data.items()}
    p0 = tr.init_params(net, proto["init"], np.random.default_rng(seed))
    training = {**proto["training"], "batch_size": 16, "max_epochs": 6, "snapshots": [2, 4]}
    return net, p0, data, training


def test_threshold_stop_respects_min_epochs():
    net, p0, data, training = _tiny()
    fs = tr.fit(net, p0, data, training, seed=0, threshold=1e9)
    assert fs.stopped == "threshold" and fs.epochs == 1
    fs = tr.fit(net, p0, data, {**training, "min_epochs": 3}, seed=0, threshold=1e9)
    assert fs.stopped == "threshold" and fs.epochs == 3
    fs = tr.fit(net, p0, data, training, seed=0, threshold=0.0)
    assert fs.stopped == "max_epochs" and fs.epochs == 6 and fs.steps == 6 * 4 and sorted(fs.snapshots) == [2, 4]


def test_width_to_width_threshold_chains_the_previous_width():
    cfg = study.study_config("fig2", "code", "quick", widths=[2, 3], seeds=[0])
    out = study.study_task("pol", 0, config=cfg)
    assert out["m2/threshold"] == 100.0  # the code's first threshold
    assert math.isclose(out["m3/threshold"], 0.5 * out["m2/last_val"], rel_tol=1e-15)


def test_resumed_training_equals_uninterrupted(tmp_path):
    net, p0, data, training = _tiny()
    ref = tr.fit(net, p0, data, training, seed=5)
    ck = str(tmp_path / "ck.npz")
    calls = 0
    while True:  # one epoch per call: stop after each epoch, resume from the checkpoint
        fs = tr.fit(net, p0, data, training, seed=5, checkpoint=ck, key="k", time_budget=0.0)
        calls += 1
        if fs.epochs >= training["max_epochs"]:
            break
        assert fs.stopped == "time_budget"
    assert calls == training["max_epochs"] and fs.resumed == training["max_epochs"] - 1
    for k in ref.params:
        np.testing.assert_array_equal(fs.params[k], ref.params[k])
        np.testing.assert_array_equal(fs.best_params[k], ref.best_params[k])
    np.testing.assert_array_equal(fs.history[:, :5], ref.history[:, :5])
    assert sorted(fs.snapshots) == sorted(ref.snapshots)
    again = tr.fit(net, p0, data, training, seed=5, checkpoint=ck, key="k")  # finished: returns at once
    assert again.epochs == ref.epochs and again.steps == ref.steps
    other = tr.fit(net, p0, data, {**training, "max_epochs": 2}, seed=5, checkpoint=ck, key="other")
    assert other.epochs == 2  # another run's checkpoint is not used


def test_interrupt_mid_epoch_resumes_from_the_last_checkpoint(tmp_path, monkeypatch):
    net, p0, data, training = _tiny()
    ref = tr.fit(net, p0, data, training, seed=2)
    ck = str(tmp_path / "ck.npz")
    real = ResidualRNN.value_and_grad  # the gradient fit's trainer (dynmem.training.train_epochs) calls
    count = {"n": 0}

    def flaky(*a, **k):
        count["n"] += 1
        if count["n"] == 4 * 3 + 2:  # in the middle of epoch 4
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ResidualRNN, "value_and_grad", flaky)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(net, p0, data, training, seed=2, checkpoint=ck, key="k", save_every=0.0)
    monkeypatch.setattr(ResidualRNN, "value_and_grad", real)
    fs = tr.fit(net, p0, data, training, seed=2, checkpoint=ck, key="k")
    assert fs.resumed == 1
    for k in ref.params:
        np.testing.assert_array_equal(fs.params[k], ref.params[k])


# ---------------------------------------------------------------- findings from data


def test_margin_error_fit_recovers_a_planted_slope():
    rng = np.random.default_rng(0)
    pts = []
    for s in range(4):
        e = np.geomspace(1e-6, 1e-2, 8)
        mg = 0.7 * e ** 0.5 * np.exp(0.01 * rng.standard_normal(8))
        pts += [{"seed": s, "error0": float(a), "margin": float(b)} for a, b in zip(e, mg)]
    fit = study.margin_error_fit(pts)
    assert fit["slope"]["lo"] < 0.5 < fit["slope"]["hi"] and abs(fit["slope"]["mean"] - 0.5) < 0.01
    flat = [{**p, "margin": 0.3 * math.exp(0.01 * rng.standard_normal())} for p in pts]
    fit = study.margin_error_fit(flat)
    assert fit["slope"]["lo"] < 0.0 < fit["slope"]["hi"]


def test_findings_follow_the_stated_criteria():
    fit = lambda lo: {"slope": {"mean": lo + 0.1, "lo": lo, "hi": lo + 0.2, "n": 3}}
    slopes = lambda b: {k: {"median": v} for k, v in dict(blowup=b, first_unstable=math.nan, margin=-1.0,
                                                           error0=-0.5, crossing=math.nan).items()}
    f = study.findings({"pol": {"margin_vs_error": fit(0.2), "slopes": slopes(-0.5)},
                        "exp": {"margin_vs_error": fit(-0.1), "slopes": slopes(0.1)}})
    assert f["pol"]["margin_to_zero_with_error"] and not f["pol"]["margin_bounded"]
    assert f["pol"]["blowup_shrinks_with_m"] and f["pol"]["error_falls_with_m"]
    assert f["exp"]["margin_bounded"] and not f["exp"]["blowup_shrinks_with_m"]


# ---------------------------------------------------------------- experiments, report, reproduce


def test_every_registered_experiment_is_a_documented_record():
    import inspect

    from dynmem.experiments.record import Experiment

    for name in experiment_names():
        exp = get_experiment(name)  # imports the entry
        assert isinstance(exp, Experiment) and exp.name == name, name
        for member in ("config", "run", "plot", "verdict"):
            assert inspect.getdoc(getattr(exp, member)).strip(), (name, member)
        for proto in exp.protocols:
            cfg = exp.config("quick", proto)
            assert isinstance(cfg, dict) and json.loads(json.dumps(cfg, default=str)) is not None
        with pytest.raises((ValueError, TypeError), match="no_such_setting"):  # named, not ignored
            exp.config("quick", exp.protocols[0], no_such_setting=1)
    with pytest.raises(ValueError, match="must be one of"):
        get_experiment("fig99")


def test_a_record_refuses_an_undocumented_member():
    from dynmem.experiments.record import Experiment

    def documented(*a, **k):
        """Does a thing."""

    def bare(*a, **k):
        return None

    ok = dict(name="x", title="t", claim="c", protocols=("paper",), config=documented, run=documented,
              plot=documented, verdict=documented)
    assert Experiment(**ok).default_protocol == "paper"
    with pytest.raises(TypeError, match=r"`run` .*has no docstring"):
        Experiment(**{**ok, "run": bare})
    with pytest.raises(ValueError, match="`protocols` must be a non-empty tuple"):
        Experiment(**{**ok, "protocols": ()})
    with pytest.raises(TypeError, match="`plot` must be callable"):
        Experiment(**{**ok, "plot": 3})
    # a per-result title: documented like every member, title_of falls back to the fixed title
    assert Experiment(**ok).title_of({"any": 1}) == "t"

    def per_run(result):
        """The title of one run."""
        return f"t ({result['w']})"

    assert Experiment(**ok, title_for=per_run).title_of({"w": "orth"}) == "t (orth)"
    with pytest.raises(TypeError, match=r"`title_for` .*has no docstring"):
        Experiment(**ok, title_for=lambda r: "t")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    from dynmem.reproduce import reproduce

    out = tmp_path_factory.mktemp("exp")
    reproduce(["fig2", "fig8b", "ablation"], out=str(out), quick=True)
    return out


def test_quick_study_records_protocol_and_budget(quick_results):
    d = read_json(os.path.join(quick_results, "fig2-paper.json"))
    assert d["protocol"]["name"] == "paper" and d["protocol"]["training"]["max_epochs"] == 12
    assert d["reproduce"]["complete"] and d["size"] == "quick"
    steps = sum(sum(d["targets"][t]["per_width"][str(m)]["steps"]) for t in d["targets"] for m in d["widths"])
    assert d["budget"]["steps_total"] == steps > 0
    pts = d["targets"]["pol"]["points"]
    assert {p["kind"] for p in pts} == {"snapshot", "final"}  # checkpoints along training enter the fit
    assert d["targets"]["pol"]["margin_vs_error"]["n_points"] > len(d["widths"]) * len(d["seeds"])


def test_report_is_generated_from_the_json(quick_results):
    with open(os.path.join(quick_results, "REPORT.md")) as fh:
        text = fh.read()
    rows = report.in_context(report.report_rows(str(quick_results)))
    assert [r["stem"] for r in rows] == ["fig2-paper", "fig8b-paper", "ablation-paper"]
    # a stable parameterisation is judged beside fig2 under the same protocol: nothing to remove, nothing shown
    if rows[0]["verdict"] not in ("reproduced", "partly"):
        assert rows[1]["verdict"] == "not informative" and "fig2-paper" in rows[1]["why"]
    else:
        assert rows[1]["verdict"] == report.report_rows(str(quick_results))[1]["verdict"]
    for r in rows:
        assert f"`{r['stem']}`" in text and f"**{r['verdict']}**" in text and f"({r['stem']}.png)" in text
    v = get_experiment("fig2").verdict(report._decode(read_json(os.path.join(quick_results, "fig2-paper.json"))))
    assert rows[0]["verdict"] == v["verdict"] and report.markdown_text(report.in_words(v["why"])) in text
    # a finding edited in the JSON changes the report: nothing is typed in
    path = os.path.join(quick_results, "fig8b-paper.json")
    d = read_json(path)
    d["targets"]["pol"]["per_width"][str(d["widths"][0])]["unstable"][0] = [0, 5]
    atomic_write_json(path, d)
    row = [r for r in report.report_rows(str(quick_results)) if r["stem"] == "fig8b-paper"][0]
    assert row["numbers"]["n_unstable_perturbed_W"] >= 5 and row["verdict"] != "reproduced"


def test_ablation_switches_one_ingredient_each():
    cfg = ablation.config("quick", "paper")
    base = cfg["variants"][0]["study"]["overrides"]
    code = protocol("code")
    for v in cfg["variants"][1:]:
        extra = {k: x for k, x in v["study"]["overrides"].items() if base.get(k) != x}
        p = protocol("paper", **v["study"]["overrides"])
        if v["name"] == "perturbation":
            assert p["perturbation"]["norm"] == "entrywise-max"
        elif v["name"] == "dt":
            assert extra == {"model__dt": 1.0}
        elif v["name"] == "budget":
            assert extra == {"training__max_epochs": ablation.BUDGET_FACTOR * ablation.SIZES["quick"]["max_epochs"]}
        elif v["name"] == "target":
            assert p["targets"] == code["targets"]
        elif v["name"] == "parameterisation":
            assert p["parameterisation"] == code["parameterisation"] and p["identity_swap"]
        elif v["name"] == "training":
            assert p["training"]["clip_norm"] == 0.5 and p["training"]["stop"]["kind"] == "width-to-width"
    with pytest.raises(ValueError, match="`ingredients` must be among"):
        ablation.config("quick", ingredients=["colour"])


def test_resume_redoes_malformed_and_skips_finished(tmp_path, monkeypatch, patch_experiment):
    from dynmem import reproduce as rp

    out = str(tmp_path)
    for bad in ("[]", "null", "{\"reproduce\": {\"complete\": true", ""):
        with open(os.path.join(out, "fig11-dynmem.json"), "w") as fh:
            fh.write(bad)
        rp.reproduce(["fig11"], out=out, report=False)
        assert read_json(os.path.join(out, "fig11-dynmem.json"))["reproduce"]["complete"]
    patch_experiment("fig11", run=lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    rp.reproduce(["fig11"], out=out, report=False)  # finished: skipped
    old = os.path.join(out, ".dynmem-stale.png")
    open(old, "w").close()
    os.utime(old, (1, 1))
    rp.reproduce(["fig11"], out=out, report=False)
    assert not os.path.exists(old)


def test_cli_ctrl_c_ends_with_one_line(tmp_path, monkeypatch, capsys, patch_experiment):
    from dynmem import cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    patch_experiment("fig11", run=interrupted)
    assert cli.main(["reproduce", "fig11", "--out", str(tmp_path), "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0]
    assert [f for f in os.listdir(tmp_path) if f.endswith((".json", ".png"))] == []


def test_study_figure_survives_margins_that_are_all_zero(quick_results, tmp_path):
    # the code protocol's relu(w) with some w <= 0 gives a singular W: margin 0 at every point
    d = report._decode(read_json(os.path.join(quick_results, "fig2-paper.json")))
    for r in d["targets"].values():
        for p in r["points"]:
            p["margin"] = -1e-16
    path = str(tmp_path / "zero.png")
    study.plot_study(d, path, "zero margins")
    assert os.path.getsize(path) > 10_000


def test_fig3_through_a_sweep_store_equals_the_serial_run(tmp_path):
    # the teachers run as sweep tasks when there is a workdir (the store name carries the config's digest)
    fig3 = get_experiment("fig3")
    cfg = fig3.config("quick", pool=[{"kind": "power", "p": 1.5}, {"kind": "rnn", "abscissa": -0.5}], widths=[4],
                      epochs=3, T=40, T_long=80)
    serial = fig3.run(cfg)
    stored = fig3.run({**cfg, "workdir": str(tmp_path)})
    assert any(f.startswith("store-fig3-") for f in os.listdir(tmp_path))
    assert stored["summary"] == serial["summary"]
    assert [t["memory"] for t in stored["teachers"]] == [t["memory"] for t in serial["teachers"]]


def test_fig11_basin_ends_match_solve_ivp_in_v():
    from scipy.integrate import solve_ivp

    from dynmem.experiments.fig11 import basin_ends

    W = np.array([[1.0, 1.0], [-4.0, -3.0]])
    grid = np.linspace(-0.95, 0.95, 5)
    ends = basin_ends(W, grid)
    assert ends.shape == (25, 2)
    # the same flow integrated in v = tanh(z), from starts away from |v| = 1 (where 1 - v^2 rounds to 0)
    for k, (a, b) in enumerate((a, b) for a in grid for b in grid):
        if max(abs(a), abs(b)) > 0.5:
            continue
        sol = solve_ivp(lambda _t, v: (1 - v * v) * (W @ v), (0, 200), [a, b], rtol=1e-10, atol=1e-13)
        assert np.abs(ends[k] - sol.y[:, -1]).max() < 1e-4, (a, b, ends[k], sol.y[:, -1])
    with pytest.raises(ValueError, match=r"`W` must be invertible"):
        basin_ends(np.ones((2, 2)), grid)
    with pytest.raises(ValueError, match=r"`grid` must lie in \(-1, 1\)"):
        basin_ends(W, [0.0, 1.0])


@pytest.mark.parametrize("figure, protocol_name, expected", [
    ("fig2", "paper", "[WLL] Fig. 2: trained tanh RNN, free W"),
    ("fig8b", "paper", "[WLL] Fig. 8b: trained tanh RNN, W = -diag(softplus(w))"),
    ("fig2", "code", "[WLL] Fig. 2: trained tanh RNN, W = -P^T diag(relu(w)) P"),
    ("fig8b", "code", "[WLL] Fig. 8b: trained tanh RNN, W = -P^T diag(softplus(w)) P"),
])
def test_study_titles_name_the_w_the_run_was_trained_with(figure, protocol_name, expected):
    from dynmem.experiments import trained_figure as tf
    from dynmem.experiments.protocols import protocol as get_protocol

    cfg = tf.config(figure, "quick", protocol_name)
    result = {"experiment": figure, "protocol_name": protocol_name, "protocol": get_protocol(protocol_name),
              "config": cfg}
    title = tf.TITLE_FIG2 if figure == "fig2" else tf.TITLE_FIG8B
    assert tf.titled(result, title) == expected
    assert get_experiment(figure).title_of(result) == expected  # what the report's heading reads
    # a result that does not say how W was formed keeps the registry's title
    assert tf.titled({"experiment": figure}, title) == title
