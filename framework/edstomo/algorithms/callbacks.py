"""Callback objects for algorithms and solvers: progress, early stopping, history, checkpoints.

A callback has three hooks, each given an :class:`IterationState`:
``on_start`` (before the first step of a run), ``on_step`` (after every step;
returning True stops the run) and ``on_end`` (always, also after an error or
an early stop).  A plain function ``f(state)`` works as an ``on_step`` hook.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .. import backend
from ..errors import InputError

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "FunctionCallback",
    "History",
    "IterationState",
    "ProgressBar",
    "ProgressFunction",
    "as_callbacks",
]

LOGGER = logging.getLogger("edstomo.progress")


@dataclass
class IterationState:
    """What a callback sees after an iteration.

    Attributes
    ----------
    iteration : int
        Iterations done (1, 2, … after each step; the number done so far in ``on_start``/``on_end``).
    planned : int
        The iteration at which the current run will end unless stopped.
    estimate : array
        The current estimate, a view the callback must not modify; for solvers
        of :mod:`edstomo.engine` in the :class:`~edstomo.data.Volume` layout
        ``(channels, nz, nx, slices)``.
    residual : float or None
        Data misfit ‖b − A x‖ of the estimate the last step started from.
    channels : list of str or None
        Names of the estimate's channels.
    algorithm : Algorithm
        The running algorithm (for its ``history`` and other details).
    """

    iteration: int
    planned: int
    estimate: Any
    residual: float | None
    channels: list[str] | None
    algorithm: Any
    _to_volume: Callable[[Any], Any] | None = field(default=None, repr=False)

    def volume(self) -> Any:
        """The current estimate as a :class:`~edstomo.data.Volume` (a copy), when a solver runs the algorithm."""
        if self._to_volume is None:
            raise InputError("state: this algorithm runs outside a solver; its estimate has no Volume form")
        return self._to_volume(self.algorithm.x)


class Callback:
    """Base of callback objects; every hook does nothing unless overridden."""

    def on_start(self, state: IterationState) -> None:
        """Before the first step of a run."""

    def on_step(self, state: IterationState) -> bool | None:
        """After every step; return True to stop."""
        return None

    def on_end(self, state: IterationState) -> None:
        """After the run, however it ended."""


class FunctionCallback(Callback):
    """A function ``f(state) -> bool | None`` used as the ``on_step`` hook."""

    def __init__(self, function: Callable[[IterationState], bool | None]) -> None:
        self.function = function

    def on_step(self, state: IterationState) -> bool | None:
        return bool(self.function(state))


class ProgressFunction(Callback):
    """Calls ``report(done, planned)`` after every step (e.g. to drive a GUI or a study's progress)."""

    def __init__(self, report: Callable[[int, int], None]) -> None:
        self.report = report

    def on_step(self, state: IterationState) -> None:
        self.report(state.iteration, state.planned)


class ProgressBar(Callback):
    """Progress of a run: a tqdm bar with rate and ETA on a terminal, else quiet log lines.

    Parameters
    ----------
    label : str
        What is running (shown before the counts).
    stream : file, optional
        Where the bar goes (default ``sys.stderr``); when it is not a terminal,
        or tqdm is missing, lines are logged to the ``edstomo.progress`` logger
        instead, at most every ``every`` (fraction of the run) and every ``seconds``.
    every : float
        Fraction of the run between log lines (default 0.1).
    seconds : float
        Least time between log lines (default 10 s; the last line is always logged).
    """

    def __init__(self, label: str = "solve", stream: TextIO | None = None, every: float = 0.1, seconds: float = 10.0):
        self.label, self.stream, self.every, self.seconds = label, stream, float(every), float(seconds)
        self._bar: Any = None
        self._start = 0.0
        self._logged = (0, 0.0)

    def on_start(self, state: IterationState) -> None:
        self._start = time.perf_counter()
        self._logged = (state.iteration, self._start)
        stream = self.stream or sys.stderr
        if getattr(stream, "isatty", lambda: False)():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(
                total=state.planned, initial=state.iteration, desc=self.label, unit="it", file=stream, leave=False
            )

    def on_step(self, state: IterationState) -> None:
        if self._bar is not None:
            self._bar.update(state.iteration - self._bar.n)
            return
        now = time.perf_counter()
        last_iteration, last_time = self._logged
        step = max(1, math.ceil(self.every * state.planned))
        if state.iteration >= state.planned or (
            state.iteration - last_iteration >= step and now - last_time >= self.seconds
        ):
            self._logged = (state.iteration, now)
            rate = state.iteration / max(now - self._start, 1e-9)
            left = (state.planned - state.iteration) / rate if rate > 0 else float("inf")
            LOGGER.info(
                "%s: %d/%d iterations (%.0f %%), %.2f it/s, ETA %.1f s",
                self.label,
                state.iteration,
                state.planned,
                100.0 * state.iteration / max(state.planned, 1),
                rate,
                left,
            )

    def on_end(self, state: IterationState) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EarlyStopping(Callback):
    """Stop when the residual stops falling: relative change below ``rtol`` for ``patience`` steps in a row.

    Parameters
    ----------
    rtol : float
        Relative change ``|r_k − r_{k−1}| / r_{k−1}`` below which a step counts as stalled.
    patience : int
        Stalled steps in a row that stop the run.
    """

    def __init__(self, rtol: float = 1e-4, patience: int = 3) -> None:
        if not (np.isfinite(rtol) and rtol >= 0) or int(patience) < 1:
            raise InputError(f"EarlyStopping: rtol {rtol!r} must be >= 0 and patience {patience!r} >= 1")
        self.rtol, self.patience = float(rtol), int(patience)
        self.stalled = 0
        self.stopped_at: int | None = None

    def on_start(self, state: IterationState) -> None:
        self.stalled, self.stopped_at = 0, None

    def on_step(self, state: IterationState) -> bool:
        residuals = state.algorithm.history["residual"]
        if len(residuals) >= 2 and residuals[-2] > 0:
            change = abs(residuals[-1] - residuals[-2]) / residuals[-2]
            self.stalled = self.stalled + 1 if change < self.rtol else 0
        if self.stalled >= self.patience:
            self.stopped_at = state.iteration
            return True
        return False


class History(Callback):
    """Records the residual after every step and, optionally, copies of the estimate.

    Parameters
    ----------
    keep : sequence of int or "all", optional
        Iterations whose estimate is kept (as NumPy copies in ``estimates``).
    """

    def __init__(self, keep: Sequence[int] | str | None = None) -> None:
        self.keep = keep
        self.iterations: list[int] = []
        self.residuals: list[float] = []
        self.estimates: dict[int, np.ndarray] = {}

    def on_step(self, state: IterationState) -> None:
        self.iterations.append(state.iteration)
        self.residuals.append(float("nan") if state.residual is None else state.residual)
        if self.keep == "all" or (self.keep is not None and state.iteration in self.keep):
            self.estimates[state.iteration] = backend.to_numpy(state.estimate).copy()


class Checkpoint(Callback):
    """Saves the estimate as a Volume file every ``every`` iterations and at the end (atomically).

    Resume with ``solver.solve(data, initial=edstomo.load(path))``; the file's
    provenance records the iterations done.

    Parameters
    ----------
    path : path
        The HDF5 file to write (replaced at each checkpoint).
    every : int
        Iterations between checkpoints.
    """

    def __init__(self, path: str | Path, every: int = 10) -> None:
        if int(every) < 1:
            raise InputError(f"Checkpoint: every {every!r} must be a positive number of iterations")
        self.path, self.every = Path(path), int(every)
        self.saved: list[int] = []

    def _save(self, state: IterationState) -> None:
        state.volume().save(self.path)
        self.saved.append(state.iteration)

    def on_step(self, state: IterationState) -> None:
        if state.iteration % self.every == 0:
            self._save(state)

    def on_end(self, state: IterationState) -> None:
        if state.iteration and (not self.saved or self.saved[-1] != state.iteration):
            self._save(state)


def as_callbacks(callbacks: Callback | Callable | Sequence | None) -> list[Callback]:
    """A list of :class:`Callback` objects from None, one callback or function, or a list of them."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    result = []
    for item in callbacks:
        if isinstance(item, Callback):
            result.append(item)
        elif callable(item):
            result.append(FunctionCallback(item))
        else:
            raise InputError(f"callbacks: {item!r} is neither a Callback nor a function of the iteration state")
    return result
