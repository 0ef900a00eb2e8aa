"""Reconstruction algorithms on linear operators, and the callbacks that watch them.

:class:`Algorithm` is the step-based engine (``setup``/``step``/``should_stop``/``run``);
:class:`SART` (SIRT, OS-SART, SART), :class:`CGLS` and :class:`PDHG` (Chambolle–Pock, with the
proximal maps of :mod:`edstomo.algorithms.proximal` and :class:`TotalVariationTerm`) are built on it; the
callbacks in :mod:`edstomo.algorithms.callbacks` show progress, stop early,
record history and save checkpoints.  Solver plugins wrap these for tilt
series (see :mod:`edstomo.engine`).
"""

from .base import Algorithm, column_dot, expand_core, safe_reciprocal
from .callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    FunctionCallback,
    History,
    IterationState,
    ProgressBar,
    ProgressFunction,
    as_callbacks,
)
from .cgls import CGLS
from .direct import Direct
from .pdhg import PDHG, DualTerm, ProxTerm, dual_steps
from .sart import ORDERINGS, SART, angle_subsets
from .tv import TotalVariationTerm

__all__ = [
    "CGLS",
    "ORDERINGS",
    "PDHG",
    "SART",
    "Algorithm",
    "Callback",
    "Checkpoint",
    "Direct",
    "DualTerm",
    "EarlyStopping",
    "FunctionCallback",
    "History",
    "IterationState",
    "ProgressBar",
    "ProgressFunction",
    "ProxTerm",
    "TotalVariationTerm",
    "angle_subsets",
    "as_callbacks",
    "column_dot",
    "dual_steps",
    "expand_core",
    "safe_reciprocal",
]
