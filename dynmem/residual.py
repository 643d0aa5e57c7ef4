"""The old import path of :mod:`dynmem.models.residual` (re-exports its public names)."""

from .models.residual import (  # noqa: F401
    G_MAPS,
    FORMS,
    ResidualRNN,
    ResidualGradient,
    MarginPenalty,
    g_map,
    g_prime,
    g_inverse,
    recurrent_matrix,
    time_weights,
    init_residual,
    stacked_outputs,
    stacked_errors,
    DIVERGENCE,
)

__all__ = ['G_MAPS', 'FORMS', 'ResidualRNN', 'ResidualGradient', 'MarginPenalty', 'g_map', 'g_prime', 'g_inverse', 'recurrent_matrix', 'time_weights', 'init_residual', 'stacked_outputs', 'stacked_errors', 'DIVERGENCE']
