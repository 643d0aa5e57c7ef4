"""dynmem: recurrent neural networks as dynamical systems.

``import dynmem as dm``; the public names below are re-exported from the
modules that define them (one module per concept).  ``dynmem.symbolic``
(sympy), ``dynmem.strategies`` and ``dynmem.testing`` (hypothesis) and the
catalogue ``dynmem.theory`` are imported on demand, to keep ``import dynmem``
light.
"""

from . import (
    activations,
    adjoint,
    errors,
    inputs,
    margins,
    memory,
    models,
    plotting,
    recurrences,
    reparam,
    spectra,
    stability,
    targets,
    training,
)
from . import gated, interop, residual, ssm  # the old import paths of the families in dynmem.models
from .activations import Activation, available_activations, get_activation
from .errors import DynmemOverflowWarning
from .adjoint import AdjointResult, adjoint_gradient
from .inputs import (
    FunctionPath,
    InputPath,
    PiecewiseConstant,
    PiecewiseLinear,
    from_sequence,
    impulse,
    step,
    white_noise,
)
from .decay import DecayFit, fit_decay
from .memory import MemoryResult, linear_memory, memory_function
from .models import CTRNN, DiscreteRNN, EulerRNN, LinearRNN
from .models.gated import CTGRU, GatedGradient, GatedTrajectory, GRUCell, LSTMCell, gated_forward, gated_value_and_grad
from .models.ssm import DiagonalSSM, DiscreteDiagonalSSM, SSMGradient, ssm_reparam_value_and_grad, ssm_value_and_grad
from .models.stack import Stack, StackGradient, StackTrajectory
from .spectra import (
    SpectralSummary,
    check_hurwitz,
    eigenvector_condition,
    is_hurwitz,
    log_norm,
    lyapunov,
    max_transient_growth,
    spectral_abscissa,
    spectral_radius,
    spectral_summary,
    stability_radius,
    transient_growth,
)
from .recurrences import GradientResult, Trajectory, backward
from .models.sequences import forward, outputs_many, value_and_grad
from .reparam import Reparam, get_reparam
from .stability import PerturbationCurve, StabilityBoundary, perturbation_curve, stability_boundary
from .expsum import ExpSumFit, fit_exponential_sum
from .training import TrainResult, train, train_ctrnn
from .simulate import PiecewiseSolution, SimulationError, SimulationResult, simulate
from .sweep import Grid, SweepInterrupted, SweepRun, SweepTable, TaskRecord, dask_executor, load_sweep, run_sweep
from .norms import Gramians, HinfNorm, StateSpace, frequency_response, gramians, h2_norm, hankel_singular_values, hinf_norm, state_space
from .capacity import LinearMemoryCapacity, MemoryCapacity, linear_memory_capacity, memory_capacity
from .lyapunov_exponents import LyapunovSpectrum, kaplan_yorke_dimension, lyapunov_spectrum
from .fixed_points import FixedPoints, find_fixed_points
from .ssm_init import hippo_n, lru_ring
from .sensitivity import LambdaSensitivity, lambda_sensitivity, sensitivity_law
from .margins import (EffectiveMargin, FrontierFit, ModalDecomposition, discrete_margin, discrete_stability_radius,
                      effective_margin, frontier_error, linear_frontier, modal_decomposition, shift_threshold)

from .version import __version__

__all__ = [
    "__version__",
    # numerical-failure policy (dynmem.errors)
    "DynmemOverflowWarning",
    # models
    "CTRNN",
    "LinearRNN",
    "DiscreteRNN",
    "EulerRNN",
    # gated cells and state-space models
    "GRUCell",
    "CTGRU",
    "LSTMCell",
    "gated_forward",
    "gated_value_and_grad",
    "GatedTrajectory",
    "GatedGradient",
    "DiagonalSSM",
    "DiscreteDiagonalSSM",
    "ssm_value_and_grad",
    "ssm_reparam_value_and_grad",
    "SSMGradient",
    # stacks
    "Stack",
    "StackTrajectory",
    "StackGradient",
    # spectra
    "spectral_abscissa",
    "spectral_radius",
    "log_norm",
    "stability_radius",
    "lyapunov",
    "transient_growth",
    "max_transient_growth",
    "eigenvector_condition",
    "is_hurwitz",
    "check_hurwitz",
    "spectral_summary",
    "SpectralSummary",
    # activations
    "Activation",
    "available_activations",
    "get_activation",
    # inputs
    "InputPath",
    "PiecewiseConstant",
    "PiecewiseLinear",
    "FunctionPath",
    "step",
    "impulse",
    "white_noise",
    "from_sequence",
    # continuous time
    "simulate",
    "SimulationResult",
    "PiecewiseSolution",
    "SimulationError",
    "adjoint_gradient",
    "AdjointResult",
    # discrete time
    "forward",
    "backward",
    "value_and_grad",
    "outputs_many",
    "Trajectory",
    "GradientResult",
    # memory
    "memory_function",
    "linear_memory",
    "MemoryResult",
    "fit_decay",
    "DecayFit",
    # reparameterisations, training, stability
    "Reparam",
    "get_reparam",
    "fit_exponential_sum",
    "ExpSumFit",
    "train",
    "train_ctrnn",
    "TrainResult",
    "perturbation_curve",
    "PerturbationCurve",
    "stability_boundary",
    "StabilityBoundary",
    # sweeps
    "Grid",
    "run_sweep",
    "load_sweep",
    "dask_executor",
    "SweepRun",
    "SweepTable",
    "TaskRecord",
    "SweepInterrupted",
    # stability margins (dynmem.margins)
    "shift_threshold",
    "discrete_margin",
    "discrete_stability_radius",
    "modal_decomposition",
    "ModalDecomposition",
    "effective_margin",
    "EffectiveMargin",
    "frontier_error",
    "FrontierFit",
    "linear_frontier",
    # system norms (dynmem.norms)
    "StateSpace",
    "state_space",
    "Gramians",
    "gramians",
    "h2_norm",
    "HinfNorm",
    "hinf_norm",
    "hankel_singular_values",
    "frequency_response",
    # memory capacity, Lyapunov spectra, fixed points
    "MemoryCapacity",
    "memory_capacity",
    "LinearMemoryCapacity",
    "linear_memory_capacity",
    "LyapunovSpectrum",
    "lyapunov_spectrum",
    "kaplan_yorke_dimension",
    "FixedPoints",
    "find_fixed_points",
    # SSM initialisers and sensitivity
    "lru_ring",
    "hippo_n",
    "LambdaSensitivity",
    "lambda_sensitivity",
    "sensitivity_law",
]
