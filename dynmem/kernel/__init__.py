"""Kernel limits of RNNs trained online on ergodic data ([LSS], [RNTK]).

docs/theory.md section 7.  The exact model of [LSS] could not be checked against
the paper's body; this package implements the documented class, with its
structural choices (``"diagonal"`` / ``"mean-field"`` recurrence, output scale
``N^{-beta}``) as explicit options.

Modules
-------
:mod:`~dynmem.kernel.chains`
    Ergodic data: :class:`MarkovChain`, :class:`AR1Chain`, history targets,
    exact enumeration of histories with stationary weights.
:mod:`~dynmem.kernel.network`
    The width-``N`` network (:class:`LSSNetwork`) and its online RTRL
    training (:func:`train_online`).
:mod:`~dynmem.kernel.ntk`
    Empirical NTK (:func:`empirical_ntk`) and the QMC limit kernel
    (:func:`limit_kernel`).
:mod:`~dynmem.kernel.limit`
    The limit ODE, solved exactly (:func:`solve_limit_ode`) and by
    ``solve_ivp`` (:func:`solve_limit_ode_ivp`).
:mod:`~dynmem.kernel.convergence`
    Width sweeps against the limit (:func:`kernel_convergence`).
:mod:`~dynmem.kernel.recurrent_ntk`
    The analytic recurrent NTK (:func:`rntk`) and the empirical one
    (:func:`empirical_rntk`) of the dense Elman RNN of [RNTK].  (The module
    was once ``dynmem.kernel.rntk``; that name is the function's alone now.)

The plots of the width sweeps are in :mod:`dynmem.plotting`.
"""

from .chains import AR1Chain, HistoryGrid, HistoryTarget, MarkovChain
from .convergence import ConvergenceResult, SlopeFit, default_chain, default_target, kernel_convergence, loglog_slope
from .limit import LimitSolution, l2_nu, solve_limit_ode, solve_limit_ode_ivp
from .network import RECURRENCES, LSSNetwork, ParamLaw, TrainingResult, train_online
from .ntk import LimitKernel, empirical_ntk, kernel_error, limit_kernel

__all__ = [
    "AR1Chain", "HistoryGrid", "HistoryTarget", "MarkovChain",
    "LSSNetwork", "ParamLaw", "RECURRENCES", "TrainingResult", "train_online",
    "LimitKernel", "empirical_ntk", "kernel_error", "limit_kernel",
    "LimitSolution", "l2_nu", "solve_limit_ode", "solve_limit_ode_ivp",
    "ConvergenceResult", "SlopeFit", "default_chain", "default_target", "kernel_convergence", "loglog_slope",
    "RNTKParams", "RNTKResult", "empirical_rntk", "init_params", "rnn_jacobian", "rnn_output", "rntk",
]
from .recurrent_ntk import RNTKParams, RNTKResult, empirical_rntk, init_params, rnn_jacobian, rnn_output, rntk  # noqa: E402
