r"""Convergence of the trained finite network to the [LSS] kernel limit.

docs/theory.md section 7; [LSS] arXiv 2308.14555.  For each width ``N`` and seed,
:func:`kernel_convergence` trains an :class:`~dynmem.kernel.network.LSSNetwork`
online along one stream (:func:`~dynmem.kernel.network.train_online`) and
measures

.. math::

    E_N = \sup_{t \in \text{grid}} \|h^N_t - h_t\|_{L^2(\nu)}, \qquad
    \epsilon_N = \frac{\|K_N(0) - A\|_{L^2(\nu\otimes\nu)}}{\|A\|_{L^2(\nu\otimes\nu)}},

where :math:`h_t` solves the limit ODE (:mod:`dynmem.kernel.limit`) with the
QMC limit kernel :math:`A` (:mod:`dynmem.kernel.ntk`) on the exactly
enumerated histories of the chain, and the maximal parameter drift
:math:`\max_{t,i}\|\theta^i(t) - \theta^i(0)\|_\infty`.  The rates are the
slopes of :math:`\log E_N` and :math:`\log\epsilon_N` against
:math:`\log N` (:func:`scipy.stats.linregress` on all (N, seed) pairs), with a
95% confidence interval from the slope's standard error and the Student t
quantile.  docs/theory.md expects both slopes near :math:`-1/2` at
:math:`\beta = 1/2`.

Reproducibility: every (N, seed) task draws its randomness from
``numpy.random.SeedSequence(root_entropy, spawn_key=(seed, N))`` (what
``SeedSequence.spawn`` does, keyed by the task rather than by its position),
so the results are identical with or without an ``executor`` and do not
depend on which other widths are in the study.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_float_array, check_int, check_positive, describe
from .chains import AR1Chain, HistoryGrid, HistoryTarget, MarkovChain
from .limit import LimitSolution, l2_nu, solve_limit_ode
from .network import LSSNetwork, ParamLaw, check_beta, train_online
from .ntk import empirical_ntk, kernel_error, limit_kernel

# The log-log slope fit lives in dynmem.decay (re-exported here, where it was); the plots of a
# width sweep are dynmem.plotting.plot_error_vs_width / plot_trajectories (an analysis does not
# import the plotting layer).
from ..decay import SlopeFit, loglog_slope  # noqa: E402,F401

__all__ = ["ConvergenceResult", "SlopeFit", "kernel_convergence", "default_chain", "default_target", "loglog_slope"]

_LIMIT_KEY = 2**31 - 1  # spawn key of the QMC limit kernel
_GRID_KEY = 2**31 - 2   # spawn key of the sampled history grid (AR(1) chains)


def default_chain() -> MarkovChain:
    """The two-state chain on ``{-1, +1}`` used by default (``P = [[0.7, 0.3], [0.4, 0.6]]``)."""
    return MarkovChain([[0.7, 0.3], [0.4, 0.6]], [-1.0, 1.0])


def default_target() -> HistoryTarget:
    r"""The default target :math:`Y_k = X_k X_{k-1}` (needs memory; nonlinear)."""
    return HistoryTarget.product([0, 1])


@dataclass(frozen=True)
class ConvergenceResult:
    r"""What :func:`kernel_convergence` measured.

    Attributes
    ----------
    N_values : ndarray of int, shape (n_N,)
    seeds : tuple of int, length n_s
    times : ndarray, shape (n_t,)
        Recording times :math:`t = k/N`.
    histories : HistoryGrid
        The probe grid (the chain's histories with stationary weights).
    target_values : ndarray, shape (n_hist,)
        :math:`E[Y \mid Z]` on the grid.
    limit : LimitSolution
    h_limit : ndarray, shape (n_t, n_hist)
    h_network : ndarray, shape (n_N, n_s, n_t, n_hist)
    error_curves : ndarray, shape (n_N, n_s, n_t)
        :math:`\|h^N_t - h_t\|_{L^2(\nu)}`.
    errors : ndarray, shape (n_N, n_s)
        :math:`\sup_t` of the curves.
    slope : SlopeFit
        Of ``errors`` against ``N`` (all pairs).
    seed_slopes : ndarray, shape (n_s,)
        The slope per seed.
    ntk_errors : ndarray, shape (n_N, n_s)
        Relative :math:`L^2(\nu\otimes\nu)` error of the empirical NTK at initialisation.
    ntk_slope : SlopeFit
    drift : ndarray, shape (n_N, n_s)
        Maximal parameter drift over the run.
    kernel_stderr : float
        Largest QMC standard error of :math:`A` (over scrambles).
    settings : dict
    success : bool
    message : str
    seconds : float
    """

    N_values: np.ndarray
    seeds: tuple
    times: np.ndarray
    histories: HistoryGrid
    target_values: np.ndarray
    limit: LimitSolution
    h_limit: np.ndarray
    h_network: np.ndarray
    error_curves: np.ndarray
    errors: np.ndarray
    slope: SlopeFit
    seed_slopes: np.ndarray
    ntk_errors: np.ndarray
    ntk_slope: SlopeFit
    drift: np.ndarray
    kernel_stderr: float
    settings: dict = field(default_factory=dict)
    success: bool = True
    message: str = ""
    seconds: float = float("nan")


def _convergence_task(task: dict) -> dict:
    """One (N, seed) training run; module level so process pools can pickle it."""
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(task["entropy"], spawn_key=(int(task["seed"]), int(task["N"])))
    init_ss, stream_ss = ss.spawn(2)
    net = LSSNetwork.initialise(task["N"], task["d"], law=task["law"], paired=True, beta=task["beta"],
                                recurrence=task["recurrence"], activation=task["activation"],
                                rng=np.random.default_rng(init_ss))
    H = task["H"]
    K0 = empirical_ntk(net, H)
    ntk_err = kernel_error(K0, task["A"], task["weights"])
    res = train_online(net, task["chain"], task["target"], alpha=task["alpha"], t_final=task["t_final"],
                       record_times=task["times"], histories=H, burn_in=task["burn_in"],
                       rng=np.random.default_rng(stream_ss))
    return dict(N=int(task["N"]), seed=int(task["seed"]), h=res.h, drift=res.max_drift, ntk_error=ntk_err,
                success=bool(res.success), message=res.message, learning_rate=res.learning_rate,
                loss=res.loss, seconds=time.perf_counter() - t0)


def _root_entropy(rng) -> int:
    if isinstance(rng, np.random.SeedSequence):
        return int(rng.entropy)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return int(rng)
    raise TypeError(f"`rng` must be None, a non-negative int, a SeedSequence or a Generator; got {describe(rng)}.")


def kernel_convergence(N_values, seeds=(0, 1, 2), *, beta: float = 0.5, alpha: float = 1.0, t_final: float = 4.0,
                       n_times: int = 21, chain=None, target: HistoryTarget | None = None, L: int = 8,
                       recurrence: str = "diagonal", activation: str = "tanh", law: ParamLaw | None = None,
                       n_histories: int = 256, burn_in: int = 100, qmc_points: int = 4096,
                       qmc_scrambles: int = 8, executor=None, rng=None, progress: bool = False) -> ConvergenceResult:
    r"""Train networks of each width and measure their distance to the kernel limit.

    Parameters
    ----------
    N_values : sequence of int
        Widths (even: the initialisation is paired, so :math:`h^N_0 = 0 = h_0`).
    seeds : sequence of int
        Replicates per width.
    beta : float
        Output scale exponent in [1/2, 1).
    alpha : float
        Learning-rate constant (step :math:`\alpha / N^{2-2\beta}`).
    t_final : float
        Rescaled training time; ``n_times`` equispaced recordings in ``[0, t_final]``.
    chain : MarkovChain or AR1Chain, optional
        A finite chain (its histories are enumerated exactly, with their
        stationary weights); default :func:`default_chain`.  For an
        :class:`~dynmem.kernel.chains.AR1Chain` the grid is ``n_histories``
        independent stationary histories with equal weights (a Monte Carlo
        :math:`\nu`), and the errors are measured in that empirical
        :math:`L^2`.
    target : HistoryTarget, optional
        Default :func:`default_target`; must read at most ``L`` values.
    L : int
        Length of the probe histories (the grid of the limit ODE).  The grid
        truncates the infinite past at the memory fixed point of the oldest
        value, an error of order :math:`(\sup|b|\sup|\sigma'|)^L` (reported in
        ``settings["truncation_bound"]``).
    recurrence, activation, law
        As :class:`~dynmem.kernel.network.LSSNetwork`.
    n_histories : int
        Size of the sampled grid for an AR(1) chain (ignored for finite chains).
    burn_in : int
        Steps without learning at the start of each stream.
    qmc_points, qmc_scrambles : int
        Scrambled Sobol points per scramble and scrambles for :math:`A`.
    executor : concurrent.futures.Executor, optional
        If given, the (N, seed) tasks are mapped over it (largest ``N``
        first); results are identical to the serial run.
    rng : None, int, SeedSequence or Generator
        Root of every task's seed (see the module docstring).
    progress : bool or callable
        One line per task: printed to stderr when True, handed to the
        callable when one is given (``dynmem reproduce`` redraws it in place
        on a terminal).

    Returns
    -------
    ConvergenceResult
    """
    start = time.perf_counter()
    N_list = [check_int("N_values", n, minimum=2) for n in N_values]
    if not N_list:
        raise ValueError("`N_values` must hold at least one width; got an empty sequence.")
    for n in N_list:
        if n % 2:
            raise ValueError(f"`N_values` must be even (paired initialisation); got {n}.")
    seeds = tuple(check_int("seeds", s, minimum=0) for s in seeds)
    if not seeds:
        raise ValueError("`seeds` must hold at least one seed; got an empty sequence.")
    beta = check_beta(beta)
    alpha = check_positive("alpha", alpha)
    t_final = check_positive("t_final", t_final)
    n_times = check_int("n_times", n_times, minimum=2)
    L = check_int("L", L, minimum=1)
    chain = default_chain() if chain is None else chain
    if not isinstance(chain, (MarkovChain, AR1Chain)):
        raise TypeError(f"`chain` must be a MarkovChain or an AR1Chain; got {describe(chain)}.")
    n_histories = check_int("n_histories", n_histories, minimum=1)
    target = default_target() if target is None else target
    if not isinstance(target, HistoryTarget):
        raise TypeError(f"`target` must be a HistoryTarget; got {describe(target)}.")
    if target.length > L:
        raise ValueError(f"`L` must be >= the target's length {target.length}; got {L}.")
    law = ParamLaw() if law is None else law
    entropy = _root_entropy(rng)

    if isinstance(chain, MarkovChain):
        grid = chain.histories(L)
    else:
        grid = chain.history_sample(L, n_histories, rng=np.random.default_rng(
            np.random.SeedSequence(entropy, spawn_key=(_GRID_KEY,))))
    y = target(grid.values)
    lk = limit_kernel(grid, recurrence=recurrence, activation=activation, law=law, n_points=qmc_points,
                      n_scrambles=qmc_scrambles, rng=np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_LIMIT_KEY,))))
    limit = solve_limit_ode(lk.K, grid.weights, y, alpha=alpha)
    times = np.linspace(0.0, t_final, n_times)
    h_lim = limit(times)
    say = progress if callable(progress) else (lambda line: print(line, file=sys.stderr, flush=True))
    if progress:
        say(f"[kernel_convergence] limit kernel on {grid.n} histories: QMC stderr {lk.max_stderr:.2g}; "
            f"{len(N_list) * len(seeds)} training tasks")

    common = dict(entropy=entropy, d=chain.dim, law=law, beta=beta, recurrence=recurrence, activation=activation,
                  H=grid.values, weights=grid.weights, A=lk.K, chain=chain, target=target, alpha=alpha,
                  t_final=t_final, times=times, burn_in=burn_in)
    tasks = [dict(common, N=n, seed=s) for n in N_list for s in seeds]
    order = sorted(range(len(tasks)), key=lambda j: -tasks[j]["N"])
    if executor is None:
        outs = {}
        for j in order:
            outs[j] = _convergence_task(tasks[j])
            if progress:
                o = outs[j]
                say(f"[kernel_convergence] N={o['N']} seed={o['seed']}: {o['seconds']:.1f}s")
    else:
        results = list(executor.map(_convergence_task, [tasks[j] for j in order]))
        outs = dict(zip(order, results))
    nN, nS = len(N_list), len(seeds)
    h_net = np.full((nN, nS, n_times, grid.n), np.nan)
    drift = np.full((nN, nS), np.nan)
    ntk_err = np.full((nN, nS), np.nan)
    messages = []
    for j, task in enumerate(tasks):
        a, b = divmod(j, nS)
        o = outs[j]
        h_net[a, b] = o["h"]
        drift[a, b] = o["drift"]
        ntk_err[a, b] = o["ntk_error"]
        if not o["success"]:
            messages.append(f"N={o['N']} seed={o['seed']}: {o['message']}")
    curves = l2_nu(h_net - h_lim[None, None], grid.weights)
    with np.errstate(invalid="ignore"):
        errors = np.max(curves, axis=2)
    Ns = np.repeat(np.asarray(N_list, float), nS)
    slope = loglog_slope(Ns, errors.ravel())
    seed_slopes = np.array([loglog_slope(N_list, errors[:, b]).slope for b in range(nS)])
    ntk_slope = loglog_slope(Ns, ntk_err.ravel())
    settings = dict(beta=beta, alpha=alpha, t_final=t_final, n_times=n_times, L=L, recurrence=recurrence,
                    activation=activation, law=dict(c_std=law.c_std, w_std=law.w_std, u_std=law.u_std, b_max=law.b_max),
                    burn_in=burn_in, qmc_points=qmc_points, qmc_scrambles=qmc_scrambles, chain=repr(chain),
                    chain_P=np.asarray(chain.P).tolist() if isinstance(chain, MarkovChain) else None,
                    chain_states=np.asarray(chain.states).tolist() if isinstance(chain, MarkovChain) else None,
                    grid="exact enumeration" if grid.exact else "stationary sample", target=target.name,
                    n_histories=grid.n,
                    root_entropy=entropy, truncation_bound=float(law.b_max) ** L,
                    evaluation="memory fixed point of the oldest value, then the recursion over the history",
                    limit_min_eigval_raw=limit.min_eigval_raw)
    ok = not messages
    return ConvergenceResult(np.asarray(N_list), seeds, times, grid, y, limit, h_lim, h_net, curves, errors, slope,
                             seed_slopes, ntk_err, ntk_slope, drift, lk.max_stderr, settings, ok,
                             "; ".join(messages) if messages else "ok", time.perf_counter() - start)
