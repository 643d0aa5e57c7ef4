"""The model wing: the contract and one module per family.

* :mod:`~dynmem.models.contract` - the protocols (what a model can do), the
  layer records and :class:`~dynmem.models.contract.ParamArrays`, the one
  parameter-array base;
* :mod:`~dynmem.models.rnn` - CTRNN, LinearRNN, DiscreteRNN, EulerRNN;
* :mod:`~dynmem.models.gated` - GRU / LSTM / CTGRU cells;
* :mod:`~dynmem.models.ssm` - diagonal state-space models;
* :mod:`~dynmem.models.stack` - stacks of discrete layers;
* :mod:`~dynmem.models.residual` - the residual Euler net of the trained experiments;
* :mod:`~dynmem.models.interop` - PyTorch modules and state dicts as models;
* :mod:`~dynmem.models.sequences` - the one door for every discrete model
  (``forward``, ``value_and_grad``, ``outputs_many``).

Models know nothing of how they are run by the engines above them; the array
kernels they call (:mod:`dynmem.recurrences`) sit below them.  Code outside
this package asks what a model can do (the protocols), never which class it is.
"""

from ..recurrences import Recurrence
from .contract import (
    ClosedFormMemory,
    ContinuousModel,
    CTRNNField,
    CTRNNForm,
    DiscreteMap,
    DiscreteModel,
    EulerStep,
    LayerGradient,
    LayerPass,
    LinearKernel,
    LinearSystem,
    ParamArrays,
    Parametrized,
    SequenceLayer,
    Trainable,
)
from .rnn import CTRNN, DiscreteRNN, EulerRNN, LinearRNN, recurrence_coefficients
from .gated import CTGRU, GatedGradient, GatedTrajectory, GRUCell, LSTMCell, gated_forward, gated_value_and_grad
from .ssm import DiagonalSSM, DiscreteDiagonalSSM, SSMGradient, ssm_reparam_value_and_grad, ssm_value_and_grad
from .stack import Stack, StackGradient, StackTrajectory
from .residual import ResidualGradient, ResidualRNN
from .sequences import forward, outputs_many, value_and_grad

__all__ = [
    # the contract
    "Parametrized", "ContinuousModel", "DiscreteModel", "DiscreteMap", "SequenceLayer", "LayerPass", "LayerGradient",
    "LinearSystem", "CTRNNField", "CTRNNForm", "LinearKernel", "EulerStep", "Recurrence", "ClosedFormMemory",
    "Trainable", "ParamArrays",
    # the families
    "CTRNN", "LinearRNN", "DiscreteRNN", "EulerRNN", "recurrence_coefficients",
    "GRUCell", "LSTMCell", "CTGRU", "GatedTrajectory", "GatedGradient", "gated_forward", "gated_value_and_grad",
    "DiagonalSSM", "DiscreteDiagonalSSM", "SSMGradient", "ssm_value_and_grad", "ssm_reparam_value_and_grad",
    "Stack", "StackTrajectory", "StackGradient", "ResidualRNN", "ResidualGradient",
    # the door for every discrete model
    "forward", "value_and_grad", "outputs_many",
]
