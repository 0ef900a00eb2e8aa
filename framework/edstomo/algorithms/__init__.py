"""Reconstruction algorithms on linear operators, and the callbacks that watch them.

:class:`Algorithm` is the step-based engine (``setup``/``step``/``should_stop``/``run``);
:class:`SART` (SIRT, OS-SART, SART) and :class:`CGLS` are built on it; the
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
from .sart import ORDERINGS, SART, angle_subsets

__all__ = [
    "CGLS",
    "ORDERINGS",
    "SART",
    "Algorithm",
    "Callback",
    "Checkpoint",
    "Direct",
    "EarlyStopping",
    "FunctionCallback",
    "History",
    "IterationState",
    "ProgressBar",
    "ProgressFunction",
    "angle_subsets",
    "as_callbacks",
    "column_dot",
    "expand_core",
    "safe_reciprocal",
]
