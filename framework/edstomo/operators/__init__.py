"""Linear operators with trailing batch axes: the projector, block systems, the gradient.

See :mod:`edstomo.operators.base` for the protocol (core shapes, batch axes,
adjoints, algebra, norms, row and column sums).
"""

from .base import (
    AdjointOperator,
    ComposedOperator,
    LinearOperator,
    MatrixOperator,
    ScaledOperator,
    SummedOperator,
)
from .blocks import BlockDiagonal, Concatenate, Diagonal, Identity, MixChannels
from .gradient import Gradient
from .projector import KERNELS, MODELS, ParallelBeamProjector, projector_for

__all__ = [
    "KERNELS",
    "MODELS",
    "AdjointOperator",
    "BlockDiagonal",
    "ComposedOperator",
    "Concatenate",
    "Diagonal",
    "Gradient",
    "Identity",
    "LinearOperator",
    "MatrixOperator",
    "MixChannels",
    "ParallelBeamProjector",
    "ScaledOperator",
    "SummedOperator",
    "projector_for",
]
