"""The epochs-to-approximation check of [WLL] Sec. 3.3 on planted histories, and its number in fig2's verdict."""

import math

import numpy as np

from dynmem.experiments import epochs


def _study(exp_hist, pol_hist):
    return {"targets": {t: {"per_width": {"8": {"relative_val_history": [h, h]}}}
                        for t, h in (("exp", exp_hist), ("pol", pol_hist))}}


def test_epochs_to_level_by_hand():
    assert epochs.epochs_to_level([1e-1, 1e-2, 5e-4, 1e-5]) == 3.0
    assert math.isinf(epochs.epochs_to_level([1e-1, 1e-2]))
    assert math.isnan(epochs.epochs_to_level([]))


def test_the_remark_holds_and_fails_on_planted_histories():
    fast = list(np.geomspace(1, 1e-6, 40))           # reaches 1e-3 at epoch 21
    slow = list(np.geomspace(1, 1e-4, 1000))          # at epoch 751
    r = epochs.epochs_to_approximation(_study(fast, slow))
    assert r["claim_holds"] and r["targets"]["exp"]["median"] == 21.0 and r["targets"]["pol"]["median"] == 751.0
    # polynomial as fast as exponential: fails
    assert epochs.epochs_to_approximation(_study(fast, fast))["claim_holds"] is False
    # exponential slow (more than 30 epochs): fails
    assert epochs.epochs_to_approximation(_study(slow, slow))["claim_holds"] is False
    # polynomial never reaching it within 1,000 epochs counts as slow
    never = [1e-2] * 1000
    r = epochs.epochs_to_approximation(_study(fast, never))
    assert r["claim_holds"] and "> 1000 (budget)" in r["why"]
    # exponential never reaching it: fails with a budget of 40 epochs, undecided with 12
    assert epochs.epochs_to_approximation(_study([1e-2] * 40, never))["claim_holds"] is False
    assert epochs.epochs_to_approximation(_study([1e-2] * 12, never))["claim_holds"] is None
    assert epochs.epochs_to_approximation({"targets": {}})["claim_holds"] is None


def test_fig2_verdict_reports_the_number():
    from dynmem.experiments import get_experiment

    fig2 = get_experiment("fig2")

    r = fig2.run(fig2.config("quick", widths=[2], seeds=[0],
                             overrides={"training__max_epochs": 3, "training__snapshots": [1, 3]}))
    assert all(len(h) == 3 for t in r["targets"].values() for row in t["per_width"].values()
               for h in row["relative_val_history"])
    v = fig2.verdict(r)
    assert "epochs to relative MSE" in v["why"] and "epochs_to_approximation" in v["numbers"]
