"""The old import path of :mod:`dynmem.models.gated` (re-exports its public names)."""

from .models.gated import (  # noqa: F401
    GRUCell,
    LSTMCell,
    CTGRU,
    GatedTrajectory,
    GatedGradient,
    gated_forward,
    gated_value_and_grad,
)

__all__ = ['GRUCell', 'LSTMCell', 'CTGRU', 'GatedTrajectory', 'GatedGradient', 'gated_forward', 'gated_value_and_grad']
