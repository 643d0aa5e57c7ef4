r"""The protocols of the trained [WLL] experiments, as data (docs/theory.md section 4.1).

A *protocol* is every ingredient of a trained experiment: the model and its
discretisation, the parameterisation of the recurrent matrix, the data, the
optimiser and its budget, the stopping rule, and the perturbation study.  The
paper's text and its public code describe different experiments; dynmem runs
either by name and writes the whole protocol into every result, so that a
number is never separated from the recipe that produced it.

``"paper"``
    [WLL] Fig. 2 and App. D as written: a tanh CTRNN (run through its
    forward-Euler recurrence on the sampling grid ``dt = 0.1``), free ``W``
    (Fig. 2) or ``W = -diag(softplus(w))`` (Fig. 4), plain MSE, Adam with
    ``lr = 0.005``, batch 128, 12,800 training and 12,800 test sequences,
    up to 1,000 epochs, stop once the validation loss reaches ``1e-8``;
    train on ``t in {0.1, ..., 3.2}``, evaluate on ``{0.1, ..., 10.0}``;
    perturbations ``beta in {0} U {1e-11 * 2^k, k = 0..35}``, 3 random
    draws per ``beta`` in the block-spectral norm, maximum taken.
``"code"``
    The public code (``radarFudan/Curse-of-memory`` at commit 136766ee, LF
    task): ``h_{k+1} = h_k + dt sigma(A x_k + a - Wbar h_k)`` with ``dt = 1``,
    an encoder ``A x + a`` and a decoder ``c^T h + d`` with biases,
    ``Wbar = P^T diag(relu(w)) P`` (``"rnn"``), ``diag(relu(w))``
    (``"diagonalrnn"``) or ``P^T diag(softplus(w)) P`` (``"softplusrnn"``),
    relu swapped for the identity at evaluation; AdamW (``lr = 0.01``,
    no weight decay) with ReduceLROnPlateau (x0.1, patience 10), gradient
    clipping at total norm 0.5, time-weighted MSE, margin penalty
    ``0.01 relu(1 - margin)``, width-to-width early stop; entrywise max-abs
    noise on every parameter tensor, ``beta in {0} U {1e-3 * 2^{i/2}}``.
``"dynmem"``
    The protocol dynmem used before (:mod:`dynmem.experiments.wll_training`):
    ``dt = 1``, ``T = 100``, 2,000 Adam steps on 128 sequences.

Where a source is silent, the value chosen here is marked as dynmem's choice
in :data:`CHOICES`, and every result carries those notes.
"""

from __future__ import annotations

import copy

__all__ = ["PROTOCOLS", "CHOICES", "protocol", "protocol_names"]


def _paper() -> dict:
    return {
        "name": "paper",
        "source": "[WLL] text: Fig. 2 and App. D (ICLR 2024, arXiv 2305.19190)",
        "model": {
            "kind": "CTRNN through its forward-Euler recurrence",
            "recurrence": "h_{k+1} = h_k + dt * sigma(W h_k + U x_k + b), y_k = c^T h_{k+1}",
            "activation": "tanh",
            "dt": 0.1,
            "output_bias": False,
        },
        "parameterisation": {"fig2": {"form": "free", "g": "identity"},
                             "fig8b": {"form": "diag", "g": "softplus"}},
        "identity_swap": False,
        "init": {"kind": "stable-diagonal", "rates": [0.1, 1.0]},
        "data": {
            "input": "x_k ~ N(0, 1) i.i.d. on the grid (piecewise constant path)",
            "input_scale": 1.0,
            "output": "y_k = sum_{j <= k} dt rho(j dt) x_{k-j}",
            "n_train": 12800,
            "n_test": 12800,
            "T_train": 32,
            "T_eval": 100,
            "validation": "separate",
        },
        "targets": {"pol": {"kind": "power", "p": 1.5, "scale": 1.0}, "exp": {"kind": "exp", "rate": 1.0}},
        "training": {
            "optimizer": "adam",
            "lr": 0.005,
            "weight_decay": 0.0,
            "batch_size": 128,
            "max_epochs": 1000,
            "min_epochs": 1,
            "stop": {"kind": "threshold", "value": 1e-8},
            "schedule": None,
            "clip_norm": None,
            "loss": "mse",
            "time_weight_power": 0.0,
            "penalty": None,
            "keep": "best-validation",
            "snapshots": [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
        },
        "perturbation": {
            "norm": "block-spectral",
            "parameters": "trainable",
            "betas": {"kind": "geometric", "start": 1e-11, "ratio": 2.0, "count": 36, "zero": True},
            "repeats": 3,
            "directions": "independent per beta",
            "aggregate": "max over draws; ball-sup (running max over beta) reported beside it",
            "error": "test MSE on the evaluation horizon",
            "blowup_factor": 10.0,
        },
        "widths": [8, 16, 32, 64],
        "seeds": [0, 1, 2],
    }


def _code() -> dict:
    return {
        "name": "code",
        "source": "radarFudan/Curse-of-memory @ 136766ee: src/models/recurrent/*.py, src/models/lf_module.py, "
                  "src/utils/temporally_weighted_error.py, src/perturb.py, scripts/lf_all.sh, configs/experiment/LF",
        "model": {
            "kind": "residual Euler recurrence with encoder and decoder biases",
            "recurrence": "h_{k+1} = h_k + dt * sigma(A x_k + a - Wbar h_k), y_k = c^T h_{k+1} + d",
            "activation": "tanh",
            "dt": 1.0,
            "output_bias": True,
        },
        "parameterisation": {"fig2": {"form": "orth", "g": "relu"},            # "rnn"
                             "fig8b": {"form": "orth", "g": "softplus"},        # "softplusrnn"
                             "diagonalrnn": {"form": "diag", "g": "relu"}},
        "identity_swap": True,
        "init": {"kind": "torch-default", "w": "N(0, 1)", "P": "orthogonal (QR of N(0, 1))",
                 "encoder": "U(-1, 1) (nn.Linear, fan_in 1)", "decoder": "U(-1/sqrt(m), 1/sqrt(m))"},
        "data": {
            "input": "x_k = dt * N(0, 1) i.i.d.",
            "input_scale": 1.0,
            "output": "y_k = sum_{s <= k} rho(s dt) x_{k-s}",
            "n_train": 128000,
            "n_val": 12800,
            "n_test": 12800,
            "T_train": 100,
            "T_eval": 100,
            "validation": "validation",
        },
        "targets": {"pol": {"kind": "power", "p": 1.1, "scale": 0.1}, "exp": {"kind": "exp", "rate": 1.0}},
        "training": {
            "optimizer": "adamw",
            "lr": 0.01,
            "weight_decay": 0.0,
            "batch_size": 512,
            "max_epochs": 1000,
            "min_epochs": 2,
            "stop": {"kind": "width-to-width", "first": 100.0, "factor": 0.5},
            "schedule": {"kind": "plateau", "factor": 0.1, "patience": 10, "threshold": 1e-4},
            "clip_norm": 0.5,
            "loss": "time-weighted mse",
            "time_weight_power": 2.0,
            "penalty": {"kind": "margin", "weight": 0.01, "level": 1.0},
            "keep": "best-validation",
            "snapshots": [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
        },
        "perturbation": {
            "norm": "entrywise-max",
            "parameters": "every tensor (w, P, A, a, c, d)",
            "betas": {"kind": "geometric", "start": 1e-3, "ratio": 2.0 ** 0.5, "count": 21, "zero": True},
            "repeats": 30,
            "directions": "common: repeat r uses the same noise at every beta (torch.manual_seed(r))",
            "aggregate": "running max over beta and repeats (monotone by construction)",
            "error": "time-weighted test MSE",
            "blowup_factor": 10.0,
        },
        "widths": [8, 16, 32, 64],
        "seeds": [0, 1, 2],
    }


def _dynmem() -> dict:
    return {
        "name": "dynmem",
        "source": "dynmem 0.1 (dynmem.experiments.wll_training): the protocol used before the replication issue",
        "model": {"kind": "EulerRNN", "recurrence": "h_{k+1} = h_k + tanh(W h_k + U x_k + b), y_k = c^T h_{k+1}",
                  "activation": "tanh", "dt": 1.0, "output_bias": False},
        "parameterisation": {"fig2": {"form": "free", "g": "identity"}, "fig8b": {"form": "diag", "g": "softplus"}},
        "identity_swap": False,
        "init": {"kind": "stable-diagonal", "rates": [0.1, 1.0]},
        "data": {"input": "x_k ~ N(0, 1)", "n_train": 128, "n_test": 32, "T_train": 100, "T_eval": 100},
        "targets": {"pol": {"kind": "power", "p": 1.5, "scale": 1.0}},
        "training": {"optimizer": "adam", "lr": 5e-3, "steps": 2000, "batch_size": None},
        "perturbation": {"norm": "block-spectral", "samples": 100, "betas": "geomspace(1e-4, 2, 22)"},
        "widths": [8, 16, 32, 64],
        "seeds": [0, 1, 2],
    }


PROTOCOLS = {"paper": _paper, "code": _code, "dynmem": _dynmem}

#: Where the sources are silent or inconsistent: what dynmem does, per protocol.
CHOICES = {
    "paper": [
        "The text does not give the input law: x_k ~ N(0, 1) i.i.d. on the sampling grid (dynmem's choice).",
        "The text does not give the discretisation: forward Euler on the sampling grid dt = 0.1 (dynmem's choice).",
        "The text does not give the initialisation: W0 = -diag(r), r log-spaced in [0.1, 1], U ~ N(0, 1), b = 0, "
        "c ~ N(0, 1/m) (dynmem's choice, as in the 'dynmem' protocol).",
        "The text calls the train grid {0.1..3.2} and the test grid {0.1..10.0} 'the same horizon': both readings "
        "are available (data.T_eval = 100 is the default reading; the ablation runs T_eval = T_train = 32).",
        "The text names only train and test sets: validation (the stopping rule and the best checkpoint) uses "
        "12,800 sequences of its own, so the test set never selects the model (data.validation = 'test' restores "
        "the earlier reading, in which the test sequences cut to T_train validated).",
        "The 3 draws per beta are independent across beta (the text does not say); E_m(beta) is their maximum, "
        "and the ball-sup running maximum is reported beside it.",
    ],
    "code": [
        "numpy draws replace torch's generator: the same laws, not the same numbers.",
        "The code's width-8 run stops after min_epochs = 2 (its threshold is 100); later widths stop once the "
        "validation loss is below 0.5 x the previous width's best validation loss (its best checkpoint, as the code's train.py reads it), as scripts/lf_all.sh does.",
        "The perturbed model is the best-validation checkpoint, as the code's ModelCheckpoint(monitor=val/loss).",
        "The identity swap applies to the relu parameterisations only (SoftplusRNN keeps softplus at evaluation, "
        "as in the code).",
    ],
    "dynmem": [],
}


def protocol_names() -> tuple[str, ...]:
    """The protocol names, in a stable order."""
    return tuple(PROTOCOLS)


def protocol(name: str, **overrides) -> dict:
    """A fresh, JSON-serialisable copy of one protocol, with dotted overrides.

    Parameters
    ----------
    name : {"paper", "code", "dynmem"}
    **overrides
        ``section__key=value`` replaces ``protocol[section][key]`` (for
        example ``training__max_epochs=50``); a top-level key is replaced by
        ``key=value``.  Unknown keys are refused.

    Returns
    -------
    dict
        With ``"choices"``: the notes of :data:`CHOICES` for this protocol.
    """
    if name not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}; got {name!r}.")
    p = PROTOCOLS[name]()
    for key, value in overrides.items():
        path = key.split("__")
        node = p
        for part in path[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"protocol override {key!r}: {part!r} is not a section of protocol {name!r}.")
            node = node[part]
        if not isinstance(node, dict) or path[-1] not in node:
            raise ValueError(f"protocol override {key!r}: {path[-1]!r} is not a key of protocol {name!r}.")
        node[path[-1]] = copy.deepcopy(value)
    p["choices"] = list(CHOICES[name])
    return p
