"""Solver options chosen from the data alone: Poisson thinning and the held-out deviance.

A user has no ground truth, so an iteration count, a HAADF weight α or a
regularisation weight must be chosen from the data.  The method here is
Poisson cross-validation by *binomial thinning*: each count ``y ~ Poisson(μ)``
is split as ``y_fit ~ Binomial(y, p)``, ``y_held = y − y_fit``; then
``y_fit ~ Poisson(p μ)`` and ``y_held ~ Poisson((1 − p) μ)`` are independent.
The solver reconstructs the fit part (after the same preprocessing as the
data, e.g. the sinogram filter), predicts its mean ``μ̂_fit`` (the solver's
:meth:`~edstomo.engine.ReconstructionSolver.predict`), and is scored by the
Poisson deviance of the held-out counts against ``(1 − p)/p · μ̂_fit``::

    D = 2 Σ [ y_held log(y_held / μ̂_held) − (y_held − μ̂_held) ]

averaged over ``splits`` independent thinnings (solved together, as batch
columns of one solve, or one by one for a solver that cannot batch them) and
divided by the number of data.  Other options (``α``,
a regularisation weight) are tried on their candidate grid, one run each, and
the setting with the lowest deviance wins.  The iteration count is chosen along
the run: the deviance is taken at :func:`checkpoints` (every iteration up to 20,
then steps of 5 %; the run stops once the lowest deviance is behind by as many
iterations again, at least 20), and n is the smallest count whose deviance is
within ``tolerance`` (0.5 %) of the deviance's whole fall from n = 1 to its
minimum.  The held-out deviance of filtered data often keeps falling, ever more
slowly, long after the maps' quality has peaked (it weighs the low spatial
frequencies that the projections carry, not the noise the maps gain); the
tolerance stops where the fall has flattened out.

Choices (measured in ``docs/selection.md``): fraction ``p = 0.5`` (the fit
part's noise makes it stop a little earlier than the whole data would, which
offsets the deviance's preference for late n; 0.8 chose later n and worse maps
on a second phantom), 2 splits (the spread between splits is far below the
differences between settings), tolerance 0.5 %, seed 0, at most 500
iterations (:class:`SelectionOptions`).  The cost is one run of
``splits`` batch columns per candidate setting, to the chosen n and beyond.

Counts must be integers for the thinning to be exact.  Non-integer data (line
maps after background subtraction or smoothing, normalised tilts) are first
rounded stochastically (``⌊y⌋ + Bernoulli(y − ⌊y⌋)``, unbiased); the thinning is
then an approximation, recorded as ``exact_counts: false``.  Smoothed counts
have a variance below their mean; ``dispersion`` (variance / mean) rescales
them to the counts they are worth before the thinning (the microscope pipeline
sets it from its smoothing), and the rounding then adds little noise.  The
parts of smoothed data stay correlated between neighbouring pixels, which
makes the choice lean towards more iterations.  Channels a solver
uses but does not reconstruct (the HAADF of a bimodal solver) are not thinned.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from . import backend, provenance
from .algorithms.callbacks import Callback, IterationState
from .data import TiltSeries
from .errors import InputError
from .options import PluginOptions

__all__ = [
    "AUTO",
    "Curve",
    "SelectionOptions",
    "SelectionResult",
    "checkpoints",
    "choose",
    "poisson_deviance",
    "select",
    "thin",
    "to_counts",
]

#: The option value that asks a solver to choose the option from the data.
AUTO = "auto"

#: Iterations scored one by one before the checkpoints grow geometrically.
_DENSE = 20
#: Growth of the checkpoint spacing after the first :data:`_DENSE` iterations.
_GROWTH = 1.05
#: The run stops once the best n is behind by this many iterations, and by as many again as the best n.
_PATIENCE = 20


class SelectionOptions(PluginOptions):
    """How a solver chooses its ``"auto"`` options (the ``selection`` option of iterative solvers)."""

    splits: int = Field(2, ge=1, le=64, description="independent fit/held-out thinnings averaged")
    fraction: float = Field(0.5, gt=0, lt=1, description="share p of the counts in the fit part, in (0, 1)")
    seed: int = Field(0, ge=0, description="seed of the thinning")
    max_iterations: int = Field(500, ge=1, le=100_000, description="largest iteration count tried")
    dispersion: float = Field(
        1.0, gt=0, le=1e6, description="variance / mean of the data (1: counts; < 1: smoothed counts)"
    )
    slices: int | None = Field(
        None, ge=1, description="choose on this many evenly spaced slices (default: all; large series: fewer)"
    )
    tolerance: float = Field(
        0.005, ge=0, lt=1, description="n: the first within this share of the deviance's fall from n=1 to its minimum"
    )
    extend: int = Field(
        3, ge=0, le=20, description="steps a scale grid is extended by when its edge value wins (one option only)"
    )


def _check_fraction(fraction: Any) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction < 1:
        raise InputError(f"fraction: {fraction!r} must be a number in the open interval (0, 1)")
    return float(fraction)


def to_counts(values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Non-negative values as integer counts, and whether they already were integers.

    Non-integer values are rounded stochastically, ``⌊y⌋ + Bernoulli(y − ⌊y⌋)``,
    which keeps their mean.
    """
    values = np.asarray(values, dtype=np.float64)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise InputError("data: counts must be finite and >= 0 to be thinned")
    floor = np.floor(values)
    if np.array_equal(floor, values):
        return floor.astype(np.int64), True
    return (floor + (rng.random(values.shape) < values - floor)).astype(np.int64), False


def thin(
    series: TiltSeries,
    channels: Sequence[str],
    fraction: float,
    rng: np.random.Generator,
    dispersion: float = 1.0,
) -> tuple[TiltSeries, np.ndarray, bool]:
    """Split the counts of ``channels`` binomially into a fit part and a held-out part.

    Parameters
    ----------
    series : TiltSeries
        The data (counts).
    channels : list of str
        The channels to thin; the other channels are kept whole in the fit part.
    fraction : float
        Share ``p`` of the counts in the fit part, in (0, 1).
    rng : numpy Generator
        Source of the binomial draws.
    dispersion : float
        Variance / mean of the values (1 for counts).  Values are divided by it
        before the thinning and the parts multiplied by it after, so that smoothed
        counts (variance below their mean) are thinned as the counts they are worth.

    Returns
    -------
    fit : TiltSeries
        The series with ``channels`` replaced by their fit part (mean ``p μ``).
    held : ndarray, shape ``(len(channels), tilts, positions, slices)``
        The held-out counts (mean ``(1 − p) μ``), independent of the fit part.
    exact : bool
        Whether the values were integer counts (otherwise they were rounded stochastically).
    """
    fraction = _check_fraction(fraction)
    if isinstance(dispersion, bool) or not (isinstance(dispersion, (int, float)) and 0 < dispersion < np.inf):
        raise InputError(f"dispersion: {dispersion!r} must be a positive number (variance / mean of the data)")
    missing = [c for c in channels if c not in series.channels]
    if missing or not channels:
        raise InputError(f"channels: {list(channels)} must be channels of the series {series.channels}")
    data = np.array(series.data, dtype=np.float64)
    held = np.empty((len(channels), *series.shape[1:]))
    exact = True
    for channel in [
        c for c in series.channels if c in channels
    ]:  # drawn in the series' order, whatever the order asked
        counts, integer = to_counts(np.asarray(series.channel(channel), dtype=np.float64) / dispersion, rng)
        exact &= integer and dispersion == 1
        part = rng.binomial(counts, fraction)
        data[series.channels.index(channel)] = dispersion * part
        held[list(channels).index(channel)] = dispersion * (counts - part)
    record = provenance.step(
        "thin", None, fraction=fraction, channels=list(channels), dispersion=dispersion, exact_counts=exact
    )
    return series.with_step(record, data=data), held, exact


def poisson_deviance(counts: np.ndarray, mean: np.ndarray, axis: Any = None) -> Any:
    """Poisson deviance ``2 Σ [y log(y/μ) − (y − μ)]`` of counts ``y`` against means ``μ``.

    Means are floored at ``1e-9`` × the mean count (a mean of 0 where counts were
    seen would make the deviance infinite).  ``axis`` as in ``numpy.sum``.
    """
    y = np.asarray(counts, dtype=np.float64)
    floor = 1e-9 * max(float(np.mean(y)), 1e-300)
    mu = np.maximum(np.asarray(mean, dtype=np.float64), floor)
    positive = y > 0
    logs = np.where(positive, y * np.log(np.where(positive, y, 1.0) / mu), 0.0)
    return 2.0 * np.sum(logs - (y - mu), axis=axis)


def checkpoints(max_iterations: int) -> list[int]:
    """The iteration counts scored: 1 … 20, then steps of 5 % up to ``max_iterations`` (always included)."""
    points = list(range(1, min(_DENSE, max_iterations) + 1))
    while points[-1] < max_iterations:
        points.append(min(max_iterations, max(points[-1] + 1, round(points[-1] * _GROWTH))))
    return points


@dataclass
class Curve:
    """The held-out score of one setting of the grid options along the iterations.

    Attributes
    ----------
    settings : dict
        The values of the grid options (e.g. ``{"alpha": 0.8}``), as used on the fit parts.
    iterations : list of int
        The iteration counts scored.
    score : list of float
        Mean held-out deviance per datum (over the splits) at each count.
    per_split : list of list of float
        The same for each split (``splits × iterations``).
    solver : dict
        The solver that was run: ``{"name", "options"}`` (its options but ``selection``; channels as
        reconstructed), for reusing the curve (:func:`select`'s ``known``).
    reused : str or None
        The solver whose equivalent run this curve was taken from, without running again
        (:meth:`~edstomo.engine.ReconstructionSolver.equivalent`); None: run for this choice.
    """

    settings: dict[str, Any]
    iterations: list[int]
    score: list[float]
    per_split: list[list[float]]
    solver: dict[str, Any] = field(default_factory=dict)
    reused: str | None = None

    @property
    def best(self) -> tuple[int, float]:
        """``(n, score)`` of the lowest score."""
        index = int(np.argmin(self.score))
        return self.iterations[index], self.score[index]

    def chosen(self, tolerance: float) -> int:
        """The smallest n whose score is within ``tolerance`` × (score at the first n − lowest score) of the lowest."""
        scores = np.asarray(self.score)
        lowest = scores.min()
        within = np.nonzero(scores - lowest <= tolerance * (scores[0] - lowest))[0]
        return self.iterations[int(within[0])]


@dataclass
class SelectionResult:
    """What :func:`select` chose and the curves it chose from (for provenance and figures)."""

    requested: list[str]
    chosen: dict[str, Any]
    curves: list[Curve]
    splits: int
    fraction: float
    seed: int
    exact_counts: bool
    seconds: float
    iterations_run: int = 0
    settings: dict[str, Any] = field(default_factory=dict)  # the SelectionOptions used
    at_edge: list[str] = field(default_factory=list)  # grid options chosen at their smallest or largest candidate
    data_digest: str = ""  # of the data thinned (the kept slices); "" when a preprocess made the curves not reusable

    def record(self) -> dict[str, Any]:
        """A JSON-compatible record: the method, the choice and every curve."""
        return provenance.jsonable(
            {
                "method": "poisson-thinning",
                "score": "held-out Poisson deviance per datum",
                "requested": self.requested,
                "chosen": self.chosen,
                "splits": self.splits,
                "fraction": self.fraction,
                "seed": self.seed,
                "exact_counts": self.exact_counts,
                "seconds": round(self.seconds, 3),
                "iterations_run": self.iterations_run,
                "settings": self.settings,
                "at_edge": self.at_edge,
                "data_digest": self.data_digest,
                "curves": [
                    {
                        "settings": c.settings,
                        "iterations": c.iterations,
                        "score": c.score,
                        **({"reused_from": c.reused} if c.reused else {}),
                    }
                    for c in self.curves
                ],
            }
        )


class _HeldOutScore(Callback):
    """Scores the running estimate against the held-out counts at checkpoints; stops when past the minimum."""

    def __init__(
        self, held: np.ndarray, scales: np.ndarray, fraction: float, splits: int, points: list[int], dispersion: float
    ):
        self.dispersion = dispersion
        self.held = held / dispersion  # solver layout (tilts, positions, channels, columns), in counts
        self.factor = (1.0 - fraction) / fraction
        self.scales = scales  # (channels, columns)
        self.splits = splits
        self.points = set(points)
        self.size = held[..., : held.shape[-1] // splits].size
        self.iterations: list[int] = []
        self.per_split: list[np.ndarray] = []
        self.path = len(points) > 1

    def on_step(self, state: IterationState) -> bool:
        if state.iteration not in self.points:
            return False
        algorithm = state.algorithm
        predicted = np.asarray(backend.to_numpy(algorithm.predict(algorithm.x)), dtype=np.float64)
        mean = self.factor * predicted / self.scales[None, None] / self.dispersion
        columns = poisson_deviance(self.held, mean, axis=(0, 1, 2))
        self.per_split.append(columns.reshape(self.splits, -1).sum(axis=1) / self.size)
        self.iterations.append(state.iteration)
        if not self.path:
            return False
        scores = np.mean(self.per_split, axis=1)
        best = self.iterations[int(np.argmin(scores))]
        return state.iteration >= max(2 * best, best + _PATIENCE)


def select(
    solver: Any,
    data: TiltSeries,
    *,
    preprocess: Callable[[TiltSeries], TiltSeries] | None = None,
    known: Sequence[SelectionResult | None] = (),
) -> SelectionResult:
    """Choose a solver's ``"auto"`` options from ``data`` (see the module docstring).

    Parameters
    ----------
    solver : ReconstructionSolver
        A solver with some options set to ``"auto"`` and a ``selection`` option
        (:class:`SelectionOptions`).
    data : TiltSeries
        The measured counts (before any preprocessing given as ``preprocess``).
    preprocess : callable, optional
        What the data go through before the solver, applied to each fit part
        (e.g. the Gaussian sinogram filter); default none.
    known : list of SelectionResult, optional
        Choices already made on the same data (other solvers'). A candidate whose solver is
        equivalent to a run scored there (:meth:`~edstomo.engine.ReconstructionSolver.equivalent`,
        same selection settings, same data by digest, no ``preprocess``) takes that run's curve
        instead of running again; the curve records where it came from.

    Returns
    -------
    SelectionResult
        The chosen values (for the whole data, :meth:`ReconstructionSolver.whole`)
        and the curves of held-out deviance.
    """
    if not isinstance(data, TiltSeries):
        raise InputError(f"data: expected a TiltSeries, got {type(data).__name__}")
    requested = solver.requested_auto()
    if not requested:
        raise InputError(f"options: {solver.label()} has no option set to {AUTO!r}; nothing to choose")
    options = solver.options.selection
    start = time.perf_counter()
    fields = type(solver.options).model_fields
    path = "iterations" in requested
    grid_names = [name for name in requested if name != "iterations"]
    grids = [tuple(solver.candidates(name, data)) for name in grid_names]
    empty = [name for name, grid in zip(grid_names, grids) if not grid]
    if empty:
        raise InputError(f"options: {solver.label()} gives no candidate values for {empty}")
    channels = solver.channels_for(data)
    if options.slices is not None and options.slices < data.n_slices:
        kept = np.unique(np.linspace(0, data.n_slices - 1, options.slices).round().astype(int))
        data = data.replace(data=np.ascontiguousarray(data.data[..., kept]))
    digest = "" if preprocess is not None else _digest(data, channels)
    earlier = {
        _key(curve.solver): curve
        for result in known
        if result is not None and digest and result.data_digest == digest and result.settings == dict(options)
        for curve in result.curves
        if curve.reused is None
    }
    rng = np.random.default_rng(options.seed)
    fits, helds, exact = [], [], True
    for _ in range(options.splits):
        fit, held, integer = thin(data, channels, options.fraction, rng, options.dispersion)
        exact &= integer
        fits.append(preprocess(fit) if preprocess is not None else fit)
        helds.append(held)
    held = np.moveaxis(np.concatenate(helds, axis=-1), 0, 2)  # (tilts, positions, channels, columns)
    iterations = options.max_iterations if path else getattr(solver.options, "iterations", None)
    points = checkpoints(options.max_iterations) if path else [iterations]

    def scored_curve(settings: dict[str, Any]) -> Curve:
        fixed = {**settings, **({"iterations": iterations} if "iterations" in fields else {})}
        candidate = solver.with_options(**fixed).thinned(options.fraction)
        described = _described(candidate, channels)
        equivalent = candidate.equivalent()
        same = None if equivalent is None else earlier.get(_key(_described(equivalent.solver, channels)))
        if same is not None:
            return Curve(settings, same.iterations, same.score, same.per_split, described, same.solver["name"])
        scored, per_split = _scored(candidate, fits, held, options, points)
        if not scored:
            raise InputError(
                f"iterations: {solver.label()} ran {iterations!r} iterations, none scored; "
                "automatic options need an iterative run of at least 1 iteration"
            )
        return Curve(settings, scored, per_split.mean(axis=0).tolist(), per_split.tolist(), described)

    curves = [scored_curve(dict(zip(grid_names, values))) for values in itertools.product(*grids)]
    best = min(curves, key=lambda curve: curve.best[1])
    for _ in range(options.extend if len(grid_names) == 1 else 0):  # a lone scale grid follows a winning edge
        if not _at_edge(best.settings, grid_names, grids):
            break
        grid = sorted(grids[0])
        step = grid[1] / grid[0]
        value = grid[0] / step if best.settings[grid_names[0]] == grid[0] else grid[-1] * step
        grids[0] = (*grid, value) if value > grid[-1] else (value, *grid)
        curves.append(scored_curve({grid_names[0]: value}))
        curves.sort(key=lambda curve: curve.settings[grid_names[0]])
        best = min(curves, key=lambda curve: curve.best[1])
    run = sum(curve.iterations[-1] for curve in curves if curve.reused is None)
    chosen = {name: solver.whole(name, value, options.fraction) for name, value in best.settings.items()}
    if path:
        chosen["iterations"] = best.chosen(options.tolerance)
    edge = _at_edge(best.settings, grid_names, grids)
    if edge:
        where = "; ".join(
            f"{n} = {best.settings[n]!r} at the edge of its candidates {list(grids[grid_names.index(n)])}" for n in edge
        )
        warnings.warn(
            f"{solver.label()}: {where}: the held-out deviance may be lower beyond it", UserWarning, stacklevel=2
        )
    return SelectionResult(
        requested=requested,
        chosen=chosen,
        curves=curves,
        splits=options.splits,
        fraction=options.fraction,
        seed=options.seed,
        exact_counts=exact,
        seconds=time.perf_counter() - start,
        iterations_run=run,
        settings=dict(options),
        at_edge=edge,
        data_digest=digest,
    )


def _digest(data: TiltSeries, channels: Sequence[str]) -> str:
    """A digest of what a choice on ``data`` depends on: the values of every channel, their names and the
    geometry (tilt angles), so that a choice made on other data is never taken for this one's."""
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(repr((data.channels, list(channels), data.shape, str(data.data.dtype))).encode())
    hasher.update(np.ascontiguousarray(data.angles.m_as("rad"), dtype=np.float64).tobytes())
    hasher.update(np.ascontiguousarray(data.data).data)
    return hasher.hexdigest()


def _described(solver: Any, channels: Sequence[str]) -> dict[str, Any]:
    """The run a curve comes from: the solver's name and options (but ``selection``), channels resolved."""
    options = {k: v for k, v in solver.parameters().items() if k != "selection"}
    return {"name": solver.name, "options": {**options, "channels": list(channels)}}


def _key(described: dict[str, Any]) -> str:
    return provenance.canonical(described)


def _at_edge(settings: dict[str, Any], names: list[str], grids: list[tuple[Any, ...]]) -> list[str]:
    """The options on a scale grid (more than two positive candidates evenly spaced in log, e.g. a weight
    tried at factors of 2) whose chosen value is the grid's smallest or largest: the deviance may be lower
    beyond it.  Other grids (α in [0, 1)) may end at a bound of the option and are not checked."""
    edge = []
    for name, grid in zip(names, grids):
        if len(grid) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in grid):
            continue
        steps = np.diff(np.log(sorted(grid)))
        if np.allclose(steps, steps[0], rtol=1e-6) and settings[name] in (min(grid), max(grid)):
            edge.append(name)
    return edge


def _scored(
    candidate: Any, fits: list[TiltSeries], held: np.ndarray, options: SelectionOptions, points: list[int]
) -> tuple[list[int], np.ndarray]:
    """The iterations scored and the held-out scores per split (splits × iterations) of one candidate.

    The fit parts are solved as batch columns of one solve when the solver can batch them
    (:meth:`~edstomo.engine.ReconstructionSolver.batch`), else one by one (a solver that
    refuses, e.g. one whose maps couple slices); runs that stop at different counts are
    compared up to the shortest.
    """
    try:
        batched, stacked, scales = candidate.batch(fits)
    except InputError:
        batched = None
    if batched is not None:
        columns = np.repeat(np.asarray(scales, dtype=np.float64), fits[0].n_slices, axis=1)
        score = _HeldOutScore(held, columns, options.fraction, options.splits, points, options.dispersion)
        batched.solve(stacked, callbacks=[score])
        return score.iterations, np.array(score.per_split, dtype=float).reshape(len(score.iterations), len(fits)).T
    runs = []
    width = held.shape[-1] // len(fits)
    for k, fit in enumerate(fits):
        part = held[..., k * width : (k + 1) * width]
        score = _HeldOutScore(part, np.ones((part.shape[2], width)), options.fraction, 1, points, options.dispersion)
        candidate.solve(fit, callbacks=[score])
        runs.append(score)
    common = min(len(r.iterations) for r in runs)
    return runs[0].iterations[:common], np.array([[s[0] for s in r.per_split[:common]] for r in runs])


def choose(
    solver: Any,
    data: TiltSeries,
    *,
    preprocess: Callable[[TiltSeries], TiltSeries] | None = None,
    known: Sequence[SelectionResult | None] = (),
) -> Any:
    """The solver with its ``"auto"`` options replaced by the values :func:`select` chooses on ``data``
    (``known``: choices made on the same data, see :func:`select`).

    The result's ``auto_choice`` holds the :class:`SelectionResult` (recorded in
    the provenance of every volume it solves).
    """
    result = select(solver, data, preprocess=preprocess, known=known)
    prepared = solver.with_options(**result.chosen)
    prepared.auto_choice = result
    return prepared
