"""The old import path of :mod:`dynmem.models.ssm` (re-exports its public names)."""

from .models.ssm import (  # noqa: F401
    DiagonalSSM,
    DiscreteDiagonalSSM,
    SSMGradient,
    ssm_value_and_grad,
    ssm_reparam_value_and_grad,
)

__all__ = ['DiagonalSSM', 'DiscreteDiagonalSSM', 'SSMGradient', 'ssm_value_and_grad', 'ssm_reparam_value_and_grad']
