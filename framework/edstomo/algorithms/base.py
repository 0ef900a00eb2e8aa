"""The step-based algorithm engine: ``setup``, ``step``, ``should_stop``, ``run`` with callbacks.

An :class:`Algorithm` holds an estimate ``x`` and improves it one ``step`` at a
time.  :meth:`Algorithm.run` calls :meth:`Algorithm.setup` once, then ``step``
until :meth:`Algorithm.should_stop` says so, the requested number of iterations
is done or a callback asks to stop; after every step each callback's
``on_step`` receives an :class:`~edstomo.algorithms.callbacks.IterationState`.
``run`` may be called again to continue from where it stopped.

Contract of a subclass:

* ``__init__`` stores the problem and the starting estimate ``self.x`` (an
  array of the operator's domain shape plus batch axes) and calls
  ``super().__init__(max_iterations=...)``;
* :meth:`setup` (optional) does one-time work (weights, norms, first residual);
* :meth:`should_stop` (optional) reports convergence (e.g. an exact solution);
* :meth:`step` does one iteration in place on ``self.x`` and returns the data
  misfit ‖b − A x‖ of the estimate it started from (or None);
* batch columns are independent: every reduction (inner product, norm used for
  a step size, stopping test on the data) is taken per column, over the core
  axes only, so that solving any subset of columns gives the same numbers as
  solving all of them.  :func:`column_dot` does this.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend
from ..errors import InputError
from .callbacks import Callback, IterationState, as_callbacks

__all__ = ["Algorithm", "check_shapes", "column_dot", "expand_core", "safe_reciprocal"]


def column_dot(a: Any, b: Any, core_ndim: int) -> Any:
    """Inner products of matching batch columns: ``Σ_core a·b``, shape = the batch axes (kept as length-1 core axes).

    Parameters
    ----------
    a, b : array, shape ``core + batch``
        Arrays of one shape.
    core_ndim : int
        Number of leading core axes to sum over.

    Returns
    -------
    array, shape ``(1,) * core_ndim + batch``
        Broadcasts against ``a``.
    """
    xp = backend.namespace(a)
    return xp.sum(a * b, axis=tuple(range(core_ndim)), keepdims=True)


def expand_core(values: Any, ndim: int, xp: Any) -> Any:
    """Core-shaped ``values`` with trailing length-1 axes added up to ``ndim`` (to broadcast over batch axes)."""
    values = xp.asarray(values)
    return xp.reshape(values, tuple(values.shape) + (1,) * (ndim - values.ndim))


def check_shapes(operator: Any, data: Any, x0: Any) -> None:
    """Raise InputError unless ``data`` starts with the operator's range shape and ``x0`` with its domain shape."""
    for name, array, core, side in (
        (("data", data, operator.range_shape, "range")),
        ("x0", x0, operator.domain_shape, "domain"),
    ):
        if tuple(array.shape[: len(core)]) != tuple(core):
            raise InputError(f"{name}: shape {tuple(array.shape)} does not match the operator's {side} {core}")


def safe_reciprocal(values: Any, xp: Any) -> Any:
    """``1 / values`` where ``values > 0``, else 0 (rows or columns that no ray touches)."""
    positive = values > 0
    return xp.where(positive, 1 / xp.where(positive, values, xp.ones_like(values)), xp.zeros_like(values))


class Algorithm(ABC):
    """Base of the iterative (and direct) reconstruction algorithms.

    Parameters
    ----------
    max_iterations : int
        Iterations :meth:`run` does when not told otherwise (≥ 0).

    Attributes
    ----------
    x : array
        The current estimate.
    iteration : int
        Iterations done so far.
    history : dict of str to list of float
        ``"residual"``: the data misfit returned by each step; ``"seconds"``:
        the wall time of each step.  Subclasses may add keys.
    stop_reason : str
        Why the last :meth:`run` ended.
    labels : list of str or None
        Names of the estimate's channels, for callbacks (set by solvers).
    """

    def __init__(self, *, max_iterations: int) -> None:
        if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations or max_iterations < 0:
            raise InputError(f"max_iterations: {max_iterations!r} must be an integer >= 0")
        self.max_iterations = int(max_iterations)
        self.iteration = 0
        self.history: dict[str, list[float]] = {"residual": [], "seconds": []}
        self.stop_reason = ""
        self.labels: list[str] | None = None
        self.view: Callable[[Any], Any] = lambda x: x
        self.to_volume: Callable[[Any], Any] | None = None
        self._ready = False
        self._target = self.max_iterations

    x: Any

    # ------------------------------------------------------------ contract
    def setup(self) -> None:  # noqa: B027 - optional hook
        """One-time preparation before the first step (default: nothing)."""

    @abstractmethod
    def step(self) -> float | None:
        """One iteration in place on ``self.x``; returns the data misfit of the estimate it started from."""

    def should_stop(self) -> bool:
        """Whether the algorithm has converged on its own before the planned iterations (default: never)."""
        return False

    # ----------------------------------------------------------------- run
    @property
    def residual(self) -> float | None:
        """The data misfit reported by the last step (None before the first)."""
        return self.history["residual"][-1] if self.history["residual"] else None

    def state(self) -> IterationState:
        """What callbacks see now."""
        return IterationState(
            iteration=self.iteration,
            planned=self._target,
            estimate=self.view(self.x),
            residual=self.residual,
            channels=self.labels,
            algorithm=self,
            _to_volume=self.to_volume,
        )

    def run(self, iterations: int | None = None, callbacks: Callback | Callable | Sequence | None = None) -> Any:
        """Iterate, with callbacks, and return the estimate.

        Parameters
        ----------
        iterations : int, optional
            Iterations to do in this call (default: up to ``max_iterations`` in all).
        callbacks : Callback, callable, or a list of them, optional
            Each callback's ``on_start``, ``on_step`` (after every iteration;
            returning True stops the run) and ``on_end`` are called; a plain
            callable is called with the :class:`IterationState` after every iteration.

        Returns
        -------
        array
            ``self.x``.
        """
        hooks = as_callbacks(callbacks)
        if not self._ready:
            self.setup()
            self._ready = True
        if iterations is not None and (isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0):
            raise InputError(f"iterations: {iterations!r} must be an integer >= 0")
        self._target = self.max_iterations if iterations is None else self.iteration + int(iterations)
        self.stop_reason = "planned iterations done"
        for hook in hooks:
            hook.on_start(self.state())
        try:
            while self.iteration < self._target:
                if self.should_stop():
                    self.stop_reason = "converged"
                    break
                start = time.perf_counter()
                misfit = self.step()
                self.iteration += 1
                self.history["residual"].append(float("nan") if misfit is None else float(misfit))
                self.history["seconds"].append(time.perf_counter() - start)
                state = self.state()
                asked = [hook for hook in hooks if hook.on_step(state)]
                if asked:
                    self.stop_reason = f"stopped by {type(asked[0]).__name__}"
                    break
        finally:
            for hook in hooks:
                hook.on_end(self.state())
        return self.x
