"""The old import path of :mod:`dynmem.models.stack` (re-exports its public names)."""

from .models.stack import (  # noqa: F401
    Stack,
    StackTrajectory,
    StackGradient,
)

__all__ = ['Stack', 'StackTrajectory', 'StackGradient']
