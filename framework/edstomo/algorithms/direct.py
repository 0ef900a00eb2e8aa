"""A direct (one-step) method run by the same engine as the iterative ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Algorithm

__all__ = ["Direct"]


class Direct(Algorithm):
    """One step that computes the estimate in closed form (e.g. filtered back projection).

    Parameters
    ----------
    compute : callable
        ``compute() -> array`` of the shape of ``x0``: the result.
    x0 : array
        The estimate before the step (overwritten by the result, in place).

    The run has one iteration, so progress, callbacks and provenance work as
    for iterative methods.
    """

    def __init__(self, compute: Callable[[], Any], x0: Any) -> None:
        super().__init__(max_iterations=1)
        self.compute, self.x = compute, x0

    def step(self) -> None:
        self.x[...] = self.compute()
