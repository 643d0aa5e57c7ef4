"""Kernel limits of RNNs trained online on ergodic data ([LSS], [RNTK]).

THEORY.md section 7.  The exact model of [LSS] could not be checked against
the paper's body; this package implements the documented class, with its
structural choices (``"diagonal"`` / ``"mean-field"`` recurrence, output scale
``N^{-beta}``) as explicit options.
"""
