"""Shared machinery of the iterative (SIRT-family) solvers: options, loop, callbacks, result.

An :class:`IterativeSolver` reconstructs some channels of a :class:`~edstomo.data.TiltSeries`
with updates of the form

    x ← P( x + λ C Wᵀ u(x) ),

where ``u(x)`` is a row-weighted sinogram residual that each solver defines
(:meth:`IterativeSolver._setup` returns it, as a function of the forward
projection ``W x``), ``C`` holds inverse column sums of the (possibly stacked)
system, ``λ`` is the relaxation and ``P`` sets negative voxels to zero when
``nonnegativity`` is on.

One iteration is one call of :meth:`ParallelBeamProjector.update
<edstomo.projector.ParallelBeamProjector.update>`, which back projects ``u``,
updates and clips ``x`` in place and returns ``W x`` of the new estimate for
the next residual: with the compiled kernels the back projection is never
stored and the matrix is read once per iteration (see ``docs/performance.md``).

Array layout
------------
The estimate is held as one array ``x`` of shape ``(nz, nx, channels, slices)``:
the channel and slice axes are the projector's trailing batch axes, so each
iteration projects and back-projects every channel of every slice with one
sparse product each (see :mod:`edstomo.projector`).  Callbacks see it as a view
of shape ``(channels, nz, nx, slices)``, the layout of :class:`~edstomo.data.Volume`.

All element-wise work in an iteration goes through the array namespace of the
solver's device (``device="cpu"``: NumPy; ``"gpu"``: CuPy, see
:mod:`edstomo.backend`), in place where the array API allows it.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from . import backend, provenance, resources
from .data import TiltSeries, Volume
from .interfaces import Callback, IterationState, Solver
from .projector import MODELS, ParallelBeamProjector

__all__ = ["DTYPES", "IterativeSolver", "projector_for", "safe_reciprocal"]

#: Floating-point types a solver can compute in.
DTYPES: tuple[str, ...] = ("float32", "float64")

#: A residual function: takes the forward projection ``W x`` of the estimate, shape
#: (n_angles, n_det, channels, slices), which it may overwrite, and returns the row-weighted
#: residual sinogram ``u`` of that shape and the residual norm of the estimate.
Residual = Callable[[Any], "tuple[Any, float]"]

#: A progress report: called with (iterations done, iterations planned).
Progress = Callable[[int, int], None]


@lru_cache(maxsize=4)
def _cached_projector(
    angles: tuple[float, ...], shape: tuple[int, int], model: str, dtype: str
) -> ParallelBeamProjector:
    return ParallelBeamProjector(np.asarray(angles), shape, model=model, dtype=dtype)


def projector_for(angles_rad: Sequence[float], shape: tuple[int, int], model: str, dtype: str) -> ParallelBeamProjector:
    """The projector of a geometry, built once and reused (the four most recent are kept).

    Parameters
    ----------
    angles_rad : sequence of float
        Tilt angles in radians.
    shape : (int, int)
        Slice shape ``(nz, nx)`` in pixels.
    model : {"strip", "joseph"}
        Projection model.
    dtype : {"float32", "float64"}
        Arithmetic type of the projector.

    Returns
    -------
    ParallelBeamProjector
        A shared instance; callers must not modify it.
    """
    return _cached_projector(tuple(float(a) for a in angles_rad), tuple(shape), model, dtype)


def safe_reciprocal(values: Any, xp: Any) -> Any:
    """``1 / values`` where ``values > 0``, else 0 (rows or columns that no ray touches).

    Parameters
    ----------
    values : array
        Non-negative row or column sums.
    xp : module
        Array namespace of ``values``.
    """
    positive = values > 0
    return xp.where(positive, 1 / xp.where(positive, values, xp.ones_like(values)), xp.zeros_like(values))


def _check_channel_names(channels: Any) -> list[str] | None:
    if channels is None:
        return None
    if isinstance(channels, str) or not isinstance(channels, Sequence):
        raise ValueError(f"channels: expected a list of channel names, got {channels!r}")
    names = [str(c) for c in channels]
    if not names:
        raise ValueError("channels: the list of channels to reconstruct is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"channels: names {names} are not unique")
    return names


def _progress_reporter(
    progress: bool | Progress | None, total: int
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """``(report(done), close())`` for a progress option (False, True for tqdm, or a callable)."""
    if progress is None or progress is False:
        return (lambda done: None), (lambda: None)
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            warnings.warn("progress=True needs tqdm (pip install tqdm); no progress is shown", stacklevel=3)
            return (lambda done: None), (lambda: None)
        bar = tqdm(total=total, unit="it", leave=False)
        return (lambda done: bar.update(done - bar.n)), bar.close
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    raise ValueError(f"progress: expected True, False or a callable (done, total), got {progress!r}")


class IterativeSolver(Solver):
    """Base of the SIRT-family solvers: option checks, the iteration loop, callbacks and the result.

    Parameters
    ----------
    iterations : int
        Number of iterations n (≥ 0); a callback may stop earlier.
    relaxation : float
        Relaxation λ, in the open interval (0, 2).
    initial : None, float, ndarray or Volume
        Starting estimate: zeros (None), a constant, or maps of shape
        ``(channels, nz, nx, slices)`` (a :class:`Volume` must have the same channels).
    projector : {"strip", "joseph"}
        Projection model of W (see :mod:`edstomo.projector`).
    nonnegativity : bool
        Set negative voxels to zero after every update.
    channels : list of str, optional
        The channels to reconstruct; the default depends on the solver.
    dtype : {"float32", "float64"}
        Arithmetic type.
    progress : bool or callable, optional
        ``True`` shows a tqdm bar (if tqdm is installed); a callable is called
        as ``progress(done, total)`` after each iteration.
    device : {"cpu", "gpu"}
        Where the iteration runs: NumPy arrays on the CPU (compiled kernels
        when numba is installed), or CuPy arrays on a CUDA GPU.

    Subclasses implement :meth:`_default_channels`, :meth:`_check_channels`,
    :meth:`_setup` and may extend :meth:`_describe` and :meth:`_record`.
    """

    def __init__(
        self,
        iterations: int = 100,
        relaxation: float = 1.0,
        initial: Any = None,
        projector: str = "strip",
        nonnegativity: bool = True,
        channels: Sequence[str] | None = None,
        dtype: str = "float32",
        progress: bool | Progress | None = False,
        device: str = "cpu",
    ) -> None:
        if isinstance(iterations, (bool, np.bool_)) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"iterations: {iterations!r} must be a non-negative integer")
        try:
            lam = float(relaxation)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"relaxation: {relaxation!r} must be a number in the open interval (0, 2)") from exc
        if not 0.0 < lam < 2.0:
            raise ValueError(f"relaxation: {relaxation!r} must be in the open interval (0, 2)")
        if projector not in MODELS:
            raise ValueError(f"projector: {projector!r} is not a projection model; expected one of {list(MODELS)}")
        if not isinstance(nonnegativity, (bool, np.bool_)):
            raise ValueError(f"nonnegativity: {nonnegativity!r} must be True or False")
        if str(dtype) not in DTYPES:
            raise ValueError(f"dtype: {dtype!r} must be one of {list(DTYPES)}")
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ValueError(f"progress: expected True, False or a callable (done, total), got {progress!r}")
        if device not in backend.DEVICES:
            raise ValueError(f"device: {device!r} is not a device; expected one of {list(backend.DEVICES)}")
        if initial is not None and not isinstance(initial, (int, float, np.ndarray, Volume)):
            raise ValueError(f"initial: expected None, a number, an array or a Volume, got {type(initial).__name__}")
        self.iterations = int(iterations)
        self.relaxation = lam
        self.initial = initial
        self.projector = projector
        self.nonnegativity = bool(nonnegativity)
        self.channels = _check_channel_names(channels)
        self.dtype = str(dtype)
        self.device = device
        self._progress = progress

    # ------------------------------------------------------------- contract
    @abstractmethod
    def _default_channels(self, data: TiltSeries) -> list[str]:
        """The channels reconstructed when the user names none."""

    @abstractmethod
    def _check_channels(self, data: TiltSeries, channels: list[str]) -> None:
        """Raise ValueError when these channels cannot be reconstructed from ``data``."""

    @abstractmethod
    def _setup(self, data: TiltSeries, channels: list[str], projector: ParallelBeamProjector, xp: Any) -> Residual:
        """Prepare the data terms and return the residual function ``u(x)`` of one iteration."""

    def _describe(self, channels: list[str]) -> tuple[str, str]:
        """``(quantity, unit)`` of the reconstructed maps."""
        return "reconstruction", "arbitrary"

    def _record(self) -> dict[str, Any]:
        """Extra provenance parameters known only after :meth:`_setup` (e.g. estimated ratios)."""
        return {}

    def parameters(self) -> dict[str, Any]:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "initial"}
        if isinstance(self.initial, (np.ndarray, Volume)):
            params["initial"] = "given maps"
        else:
            params["initial"] = self.initial
        return params

    # ------------------------------------------------------------------ run
    def solve(self, data: TiltSeries, *, callback: Callback | None = None) -> Volume:
        """Reconstruct the selected channels of ``data``.

        Parameters
        ----------
        data : TiltSeries
            Sinograms (channels, tilts, positions, slices).
        callback : callable, optional
            Called after every iteration with an :class:`IterationState`
            (``iteration`` runs 1, 2, …; ``residual`` is the residual norm of
            that iteration's input estimate); returning True stops the loop.

        Returns
        -------
        Volume
            Maps of shape ``(channels, positions, positions, slices)`` with a
            provenance step naming the solver, its parameters and the
            iterations actually run.
        """
        if not isinstance(data, TiltSeries):
            raise TypeError(f"data: expected a TiltSeries, got {type(data).__name__}")
        channels = self.channels if self.channels is not None else self._default_channels(data)
        missing = [c for c in channels if c not in data.channels]
        if missing:
            raise ValueError(f"channels: {missing} not in the tilt series; its channels are {data.channels}")
        self._check_channels(data, channels)
        if data.n_positions < 1 or data.n_slices < 1:
            raise ValueError(f"data: shape {data.shape} has no positions or no slices")
        resources.check_iterations(self.iterations)
        resources.check_memory(
            resources.solve_bytes(
                len(channels), data.n_tilts, data.n_positions, data.n_slices, itemsize=np.dtype(self.dtype).itemsize
            ),
            f"solve: {self.name} of {len(channels)} channels, {data.n_tilts} tilts, {data.n_positions} positions, "
            f"{data.n_slices} slices",
        )

        shape = (data.n_positions, data.n_positions)
        proj = projector_for(data.angles.m_as("rad"), shape, self.projector, self.dtype)
        xp = backend.namespace_for(self.device)
        x = self._initial_estimate(channels, shape, data.n_slices, xp)
        residual = self._setup(data, channels, proj, xp)
        lam_c = xp.reshape(self.relaxation * safe_reciprocal(xp.asarray(proj.col_sums()), xp), shape)

        report, close = _progress_reporter(self._progress, self.iterations)
        done = 0
        projection = proj.forward(x) if self.iterations else None
        try:
            for iteration in range(1, self.iterations + 1):
                u, norm = residual(projection)
                last = iteration == self.iterations
                projection = proj.update(x, u, lam_c, nonnegative=self.nonnegativity, project=not last)
                done = iteration
                report(done)
                if callback is not None:
                    state = IterationState(iteration, xp.permute_dims(x, (2, 0, 1, 3)), norm, list(channels))
                    if callback(state):
                        break
        finally:
            close()

        quantity, unit = self._describe(channels)
        parameters = {**self.parameters(), "channels": list(channels), "iterations_run": done, **self._record()}
        record = provenance.step("reconstruct", self.name, **parameters)
        return Volume(
            data=np.ascontiguousarray(np.moveaxis(backend.to_numpy(x), 2, 0)),
            channels=list(channels),
            pixel_size=data.pixel_size,
            quantity=quantity,
            unit=unit,
            experiment=data.experiment,
            provenance=[*data.provenance, record],
        )

    def _initial_estimate(self, channels: list[str], shape: tuple[int, int], slices: int, xp: Any) -> Any:
        """The starting estimate, shape (nz, nx, channels, slices), in ``self.dtype``."""
        full = (*shape, len(channels), slices)
        dtype = getattr(xp, self.dtype)
        if self.initial is None:
            return xp.zeros(full, dtype=dtype)
        if isinstance(self.initial, (int, float)):
            if not np.isfinite(self.initial):
                raise ValueError(f"initial: {self.initial!r} must be finite")
            return xp.full(full, self.initial, dtype=dtype)
        if isinstance(self.initial, Volume):
            if self.initial.channels != list(channels):
                raise ValueError(
                    f"initial: volume channels {self.initial.channels} differ from the reconstructed {channels}"
                )
            maps = self.initial.data
        else:
            maps = self.initial
        expected = (len(channels), *shape, slices)
        if tuple(maps.shape) != expected:
            raise ValueError(f"initial: shape {tuple(maps.shape)} differs from (channels, nz, nx, slices) = {expected}")
        maps = xp.asarray(maps, dtype=dtype)
        if not bool(xp.all(xp.isfinite(maps))):
            raise ValueError("initial: contains NaN or infinite values")
        estimate = xp.zeros(full, dtype=dtype)  # C-ordered, so projections need no copy
        estimate[...] = xp.permute_dims(maps, (1, 2, 0, 3))
        return estimate
