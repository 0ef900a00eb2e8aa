"""Particle threshold by the edge-spread-function (ESF) method (Collins et al. 2019; Yuan et al. 2020, §2.1).

Let ``S`` be the summed, factor-normalised map (``S = Σ_A X_A / f_A`` for EDS
maps, ``Σ_A X_A / z_A`` for HEBT maps) and ``V(t)`` the number of voxels with
``S > t``. As ``t`` rises, ``V`` falls steeply where ``t`` crosses the
background noise, stays nearly flat while ``t`` lies between the background
and the particle's values, and falls again inside the particle. The ESF method
fits a smooth model to ``V(t)`` and takes the threshold where the fitted curve
is flattest between the two falls.

The model here is the sum of two error-function steps (edge-spread functions
of Gaussian edges), one for the background and one for the particle::

    V(t) = Σ_{k=b,p} a_k · Q((t − m_k) / s_k),       Q(u) = erfc(u / √2) / 2

fitted by least squares to ``V`` at the trial thresholds. Its slope
``dV/dt = −Σ_k a_k φ((t − m_k)/s_k) / s_k`` (φ the normal density) is smooth,
and the threshold is the ``t`` of smallest ``|dV/dt|`` between the two step
centres ``m_b < t < m_p``. Because the model is fitted to the exact counts,
refining the list of trial thresholds changes the fit, and so the threshold,
only by the (small) change of a least-squares fit to a finer sampling of the
same curve; it does not jump.

A map whose curve has no plateau (one population only, e.g. a section that
fills the field of view, or a particle and background that overlap) has no ESF
threshold: :func:`esf_threshold` raises :class:`NoPlateauError`, or, with
``fallback="otsu"``, returns Otsu's threshold of S (:func:`otsu_threshold`)
and says so in :attr:`EsfFit.method` and :attr:`EsfFit.note`.

S may be an array or a reader of slice ranges (:class:`SummedValues`: e.g. S in
a file, for a volume too large for memory). Every statistic of S is taken a
block of whole slices at a time, in one fixed order whatever holds S, so an
array and a reader of the same S give the same threshold bit for bit, and no
step makes a copy of S.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares, minimize_scalar
from scipy.special import erfc

from .ranks import OrderStatistics

__all__ = [
    "FALLBACKS",
    "EsfFit",
    "MaskWarning",
    "NoPlateauError",
    "SliceReader",
    "SummedValues",
    "count_above",
    "esf_threshold",
    "otsu_threshold",
    "trial_thresholds",
    "volume_curve",
]

_SQRT2 = np.sqrt(2.0)
_PLATEAU = 0.5
"""A plateau must be at least this much flatter than the slope at either step centre."""

Steps = Sequence[float]
"""One value per fitted step (background first)."""

_GRID = 2001
"""Points at which the fitted slope is scanned between the step centres before refinement."""

FALLBACKS: tuple[str, ...] = ("otsu",)
"""Thresholds :func:`esf_threshold` can fall back to when the volume curve has no plateau."""


class MaskWarning(UserWarning):
    """A given threshold makes a particle far smaller or larger than the automatic threshold does."""


class NoPlateauError(ValueError):
    """The volume curve V(t) has no plateau between a background and a particle step (no ESF threshold).

    ``reason`` says what the fit found; the message adds what to do about it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"summed: {reason}; give the threshold explicitly, or fallback='otsu'")
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return type(self), (self.reason,)


class SliceReader(Protocol):
    """S held elsewhere (e.g. in a file): its ``shape`` (last axis: slices) and ``read(start, stop)``, which
    returns ``S[..., start:stop]``."""

    shape: tuple[int, ...]

    def read(self, start: int, stop: int) -> np.ndarray: ...


class SummedValues:
    """The values of a summed map S, a block of whole slices at a time, checked once (not empty, finite).

    Parameters
    ----------
    summed : array or SliceReader
        S of any shape; its last axis is taken as the slices (a 0-D or 1-D S is a row of values).

    Each block holds the values of consecutive slices, slice after slice (at most
    :data:`_BLOCK` values unless one slice holds more), in float64: the order and
    the blocks depend only on S's shape, so array and reader agree. An array is
    laid out slice after slice once (a float64 copy of S; its blocks are views);
    a reader's blocks are read again at each pass.
    """

    def __init__(self, summed: ArrayLike | SliceReader) -> None:
        if hasattr(summed, "read") and hasattr(summed, "shape"):
            self.shape = tuple(int(n) for n in summed.shape) or (1,)
            self._blocks_of = lambda start, stop: _slice_major(summed.read(start, stop))
        else:  # laid out slice after slice once, so that every block is a view
            array = np.asarray(summed, dtype=float)
            array = array.reshape(array.shape or (1,))
            self.shape = array.shape
            if array.size == 0:
                raise ValueError("summed: the map is empty")
            ordered = np.ascontiguousarray(np.moveaxis(array, -1, 0)).reshape(self.shape[-1], -1)
            self._blocks_of = lambda start, stop: ordered[start:stop].ravel()
        self.size = int(np.prod(self.shape))
        if self.size == 0:
            raise ValueError("summed: the map is empty")
        low, high, bad = np.inf, -np.inf, 0
        for block in self.blocks():
            finite = np.isfinite(block)
            bad += int(block.size - np.count_nonzero(finite))
            if not bad:
                low, high = min(low, float(block.min())), max(high, float(block.max()))
        if bad:
            raise ValueError(f"summed: contains {bad} NaN or infinite values")
        self.min, self.max = low, high

    def blocks(self) -> Iterator[np.ndarray]:
        """The values, a block of whole slices at a time (1-D float64 arrays)."""
        slices = self.shape[-1]
        per_slice = max(1, self.size // max(slices, 1))
        step = max(1, _BLOCK // per_slice)
        for start in range(0, slices, step):
            yield self._blocks_of(start, min(start + step, slices))


def _slice_major(piece: ArrayLike) -> np.ndarray:
    """The values of ``S[..., a:b]``, slice after slice, as a flat float64 array."""
    piece = np.asarray(piece, dtype=float)
    return np.moveaxis(piece, -1, 0).ravel() if piece.ndim > 1 else piece.ravel()


def count_above(summed: ArrayLike | SliceReader | SummedValues, threshold: float) -> int:
    """The number of voxels with ``S > threshold`` (a block at a time)."""
    values = _finite_values(summed)
    return sum(int(np.count_nonzero(block > threshold)) for block in values.blocks())


def trial_thresholds(summed: ArrayLike, count: int = 200) -> np.ndarray:
    """``count`` evenly spaced trial thresholds from the smallest to the largest value of ``summed``.

    Parameters
    ----------
    summed
        The factor-normalised summed map S (any shape).
    count
        Number of trial thresholds, at least 8.
    """
    if not (isinstance(count, (int, np.integer)) and count >= 8):
        raise ValueError(f"trials: {count!r} must be an integer >= 8 (number of trial thresholds)")
    values = _finite_values(summed)
    return np.linspace(values.min, values.max, int(count))


def volume_curve(summed: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """V(t): the number of voxels with ``S > t`` for each threshold ``t`` (a voxel count).

    Counted a block of voxels at a time (no sorted copy of S): each value is placed
    among the sorted thresholds, and V(t_j) counts the values above t_j.
    """
    values = _finite_values(summed)
    thresholds = np.asarray(thresholds, dtype=float)
    order = np.argsort(thresholds, kind="stable")
    ranked = thresholds[order]
    above = np.zeros(ranked.size + 1, dtype=np.int64)  # values with exactly i thresholds below them
    for block in values.blocks():
        above += np.bincount(np.searchsorted(ranked, block, side="left"), minlength=ranked.size + 1)
    counts = np.cumsum(above[::-1])[::-1][1:]  # values with more than j thresholds below: S > t_j
    curve = np.empty(ranked.size)
    curve[order] = counts
    return curve


@dataclass(frozen=True)
class EsfFit:
    """The result of the ESF method.

    Attributes
    ----------
    threshold : float
        The chosen threshold, in the units of S.
    trials : ndarray
        The trial thresholds (units of S).
    volumes : ndarray
        V at the trial thresholds (voxel counts).
    amplitudes, centres, widths : tuple of float
        The two fitted steps, background first: heights (voxels), centres and
        widths (units of S).
    method : str
        Which method chose :attr:`threshold`: ``"esf"``, or the fallback
        (``"otsu"``) when the curve has no plateau.
    note : str
        Why the fallback was used (the ESF failure); empty for ``"esf"``.
    """

    threshold: float
    trials: np.ndarray
    volumes: np.ndarray
    amplitudes: tuple[float, float]
    centres: tuple[float, float]
    widths: tuple[float, float]
    method: str = "esf"
    note: str = ""

    def model(self, t: ArrayLike) -> np.ndarray:
        """The fitted V(t) (voxels) at thresholds ``t``."""
        return _model(np.asarray(t, dtype=float), self.amplitudes, self.centres, self.widths)

    def slope(self, t: ArrayLike) -> np.ndarray:
        """The fitted dV/dt (voxels per unit of S) at thresholds ``t``; never positive."""
        return _slope(np.asarray(t, dtype=float), self.amplitudes, self.centres, self.widths)

    @property
    def fitted(self) -> np.ndarray:
        """The fitted V at the trial thresholds (voxels), for plotting against :attr:`volumes`."""
        return self.model(self.trials)


def esf_threshold(summed: ArrayLike, trials: int | ArrayLike = 200, *, fallback: str | None = None) -> EsfFit:
    """Find the particle threshold of a summed map by the ESF method.

    Parameters
    ----------
    summed
        The factor-normalised summed map S (any shape; e.g. (nz, nx, slices)).
    trials
        Number of evenly spaced trial thresholds over the range of S, or an
        explicit increasing list of them (units of S, at least 8).
    fallback : {None, "otsu"}
        What to do when the V(t) curve has no plateau: raise
        :class:`NoPlateauError` (None, the default), or use Otsu's threshold of
        S (``"otsu"``, recorded in the result's ``method`` and ``note``).

    Returns
    -------
    EsfFit
        The threshold, the curve V(t) at the trials, the fitted model, and
        which method chose the threshold.

    Raises
    ------
    NoPlateauError
        If the V(t) curve has no plateau between a background and a particle
        step and ``fallback`` is None.
    ValueError
        If S is empty, not finite or constant, or ``trials`` or ``fallback`` is invalid.
    """
    if fallback is not None and fallback not in FALLBACKS:
        raise ValueError(f"fallback: {fallback!r} must be None (raise when there is no plateau) or one of {FALLBACKS}")
    values = _finite_values(summed)
    if isinstance(trials, (int, np.integer)):
        grid = trial_thresholds(values, int(trials))
    else:
        grid = np.asarray(trials, dtype=float)
        if grid.ndim != 1 or grid.size < 8 or not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
            raise ValueError("trials: expected an int >= 8 or a strictly increasing list of >= 8 finite thresholds")
    lo, hi = values.min, values.max
    if not hi > lo:
        raise ValueError(f"summed: the map is constant ({lo:g}); there is no particle to threshold")
    volumes = volume_curve(values, grid)
    amplitudes, centres, widths = _fit(values, grid, volumes, lo, hi)
    try:
        threshold = _flattest(amplitudes, centres, widths)
    except NoPlateauError as error:
        if fallback is None:
            raise
        threshold = otsu_threshold(values)
        note = f"ESF: {error.reason}; Otsu's threshold of the summed map used instead"
        return EsfFit(threshold, grid, volumes, amplitudes, centres, widths, method=fallback, note=note)
    return EsfFit(threshold, grid, volumes, amplitudes, centres, widths)


def otsu_threshold(summed: ArrayLike, bins: int = 256) -> float:
    """Otsu's threshold of a summed map: the value that maximises the between-class variance.

    A histogram of ``bins`` equal bins over the range of S; the threshold is the
    centre of the last bin of the lower class (the convention, and the value, of
    :func:`skimage.filters.threshold_otsu`).

    Parameters
    ----------
    summed
        The factor-normalised summed map S (any shape).
    bins
        Number of histogram bins (at least 2).

    Returns
    -------
    float
        The threshold, in the units of S (voxels with S > threshold are the particle).

    Raises
    ------
    ValueError
        If S is empty, not finite or constant, or ``bins`` < 2.
    """
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins: {bins!r} must be an integer >= 2 (histogram bins)")
    values = _finite_values(summed)
    lo, hi = values.min, values.max
    if not hi > lo:
        raise ValueError(f"summed: the map is constant ({lo:g}); there is no particle to threshold")
    index, edges = _otsu_bin(values, int(bins))
    return float(0.5 * (edges[index] + edges[index + 1]))


# ----- internals ---------------------------------------------------------------------------------------------
def _finite_values(summed: ArrayLike | SliceReader | SummedValues) -> SummedValues:
    return summed if isinstance(summed, SummedValues) else SummedValues(summed)


#: Values handled at a time by the statistics of S (bounds their temporaries: 8 MB of float64).
_BLOCK = 2**20


class _Median(OrderStatistics):
    def ranks(self) -> list[int]:
        return [(self.size - 1) // 2, self.size // 2]  # the median's order statistics (equal for an odd count)


def _part_statistics(values: SummedValues, split: float, lower: bool) -> tuple[int, float, float]:
    """Count, median and standard deviation of the values ``<= split`` (``lower``) or ``> split``, a block at a time.

    The same numbers as ``np.median`` and ``np.std`` of the part (the standard deviation to
    the rounding of a blockwise sum) without a copy of it: the median's order statistics are
    found exactly in passes over the blocks (:mod:`edstomo.ranks`; the part's values are kept
    when they are at most :data:`_BLOCK`, then no further pass is needed).
    """

    def part(block: np.ndarray) -> np.ndarray:
        return block[block <= split] if lower else block[block > split]

    median = _Median(keep=8 * _BLOCK)
    size, total = 0, 0.0
    for block in values.blocks():
        chosen = part(block)
        size += chosen.size
        total += float(chosen.sum())
        median.add(chosen)
    median.settle()
    if size == 0:
        return 0, float("nan"), float("nan")
    mean, squares = total / size, 0.0
    for block in values.blocks():  # the squares, and the median's second pass when it needs one
        chosen = part(block)
        squares += float(np.sum((chosen - mean) ** 2))
        median.add(chosen)
    median.settle()
    while median.pending:
        for block in values.blocks():
            median.add(part(block))
        median.settle()
    return size, 0.5 * sum(median.found), float(np.sqrt(squares / size))


def _q(u: np.ndarray) -> np.ndarray:
    return 0.5 * erfc(u / _SQRT2)


def _model(t: np.ndarray, amplitudes: Steps, centres: Steps, widths: Steps) -> np.ndarray:
    return sum(a * _q((t - m) / s) for a, m, s in zip(amplitudes, centres, widths))


def _slope(t: np.ndarray, amplitudes: Steps, centres: Steps, widths: Steps) -> np.ndarray:
    return -sum(
        a * np.exp(-0.5 * ((t - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)) for a, m, s in zip(amplitudes, centres, widths)
    )


def _fit(
    values: SummedValues, grid: np.ndarray, volumes: np.ndarray, lo: float, hi: float
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """Least-squares fit of two error-function steps to V(t), in units scaled to [0, 1]."""
    span = hi - lo
    total = float(values.size)
    split = _otsu(values)
    start = []
    for lower in (True, False):  # the values at or below Otsu's split, then those above it
        size, median, spread = _part_statistics(values, split, lower)
        start += [size / total, (median - lo) / span, max(spread, 1e-3 * span) / span]
    t = (grid - lo) / span
    v = volumes / total

    def residual(p: np.ndarray) -> np.ndarray:
        a, m, s = p[0::3], p[1::3], np.exp(p[2::3])
        return _model(t, a, m, s) - v

    p0 = np.array(start)
    p0[2::3] = np.log(p0[2::3])
    # A background step centred below the smallest value (e.g. a mass of exact zeros from a
    # non-negative solver) shows only its upper part, so its height may exceed the voxel count.
    lower = [0.0, -1.0, np.log(1e-4), 0.0, -1.0, np.log(1e-4)]
    upper = [4.0, 2.0, np.log(2.0), 1.5, 2.0, np.log(2.0)]
    fit = least_squares(residual, p0, bounds=(lower, upper), x_scale="jac")
    a, m, s = fit.x[0::3] * total, fit.x[1::3] * span + lo, np.exp(fit.x[2::3]) * span
    order = np.argsort(m)
    return tuple(a[order]), tuple(m[order]), tuple(s[order])  # type: ignore[return-value]


def _otsu(values: SummedValues, bins: int = 256) -> float:
    """The upper edge of the last lower-class bin of Otsu's split (the fit's starting split)."""
    index, edges = _otsu_bin(values, bins)
    return float(edges[index + 1])


def _otsu_bin(values: SummedValues, bins: int) -> tuple[int, np.ndarray]:
    """Otsu's split of a histogram of the values: the index of the last lower-class bin, and the bin edges.

    The split maximises the between-class variance w₀ w₁ (μ₀ − μ₁)² over the
    ``bins − 1`` places between bins (Otsu 1979). The histogram is added up a block at
    a time over the range of all values (the counts of ``np.histogram`` of the whole).
    """
    counts = np.zeros(bins, dtype=np.int64)
    for block in values.blocks():
        counts += np.histogram(block, bins=bins, range=(values.min, values.max))[0]
    edges = np.linspace(values.min, values.max, bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    weight0 = np.cumsum(counts)[:-1]
    weight1 = values.size - weight0
    sum0 = np.cumsum(counts * centres)[:-1]
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (np.sum(counts * centres) - sum0) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return int(np.argmax(between)), edges


def _flattest(amplitudes: Steps, centres: Steps, widths: Steps) -> float:
    """The t of smallest |dV/dt| of the fitted model between the two step centres."""
    lo, hi = centres
    if not hi > lo:
        raise NoPlateauError("the fitted volume curve has one step only; no particle plateau was found")
    grid = np.linspace(lo, hi, _GRID)
    magnitude = -_slope(grid, amplitudes, centres, widths)
    best = int(np.argmin(magnitude))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, _GRID - 1)]
    refined = minimize_scalar(
        lambda x: -_slope(np.array([x]), amplitudes, centres, widths)[0],
        bounds=(left, right),
        method="bounded",
        options={"xatol": 1e-9 * (hi - lo)},
    )
    threshold = float(refined.x)
    flattest = -_slope(np.array([threshold]), amplitudes, centres, widths)[0]
    steepest = min(-_slope(np.array(centres), amplitudes, centres, widths))
    if flattest > _PLATEAU * steepest:
        raise NoPlateauError(
            "the volume curve has no plateau between a background and a particle step "
            f"(flattest slope {flattest:.3g} is {flattest / steepest:.0%} of the steps' slope)"
        )
    return threshold
