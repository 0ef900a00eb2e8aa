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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares, minimize_scalar
from scipy.special import erfc

__all__ = [
    "FALLBACKS",
    "EsfFit",
    "MaskWarning",
    "NoPlateauError",
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
    return np.linspace(values.min(), values.max(), int(count))


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
    for block in _blocks(values):
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
    lo, hi = float(values.min()), float(values.max())
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
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        raise ValueError(f"summed: the map is constant ({lo:g}); there is no particle to threshold")
    index, edges = _otsu_bin(values, int(bins))
    return float(0.5 * (edges[index] + edges[index + 1]))


# ----- internals ---------------------------------------------------------------------------------------------
def _finite_values(summed: ArrayLike) -> np.ndarray:
    values = np.asarray(summed, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("summed: the map is empty")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"summed: contains {int((~np.isfinite(values)).sum())} NaN or infinite values")
    return values


#: Values handled at a time by the statistics of S (bounds their temporaries: 8 MB of float64).
_BLOCK = 2**20


def _blocks(values: np.ndarray) -> list[np.ndarray]:
    """Consecutive views of at most :data:`_BLOCK` values."""
    return [values[start : start + _BLOCK] for start in range(0, values.size, _BLOCK)]


def _part_statistics(values: np.ndarray, split: float, lower: bool) -> tuple[int, float, float]:
    """Count, median and standard deviation of the values ``<= split`` (``lower``) or ``> split``, a block at a time.

    The same numbers as ``np.median`` and ``np.std`` of the part (the standard deviation to
    the rounding of a blockwise sum) without a copy of it: the median's order statistics are
    found by narrowing a histogram of the part until the values of the bin that holds them are few.
    """

    def part(block: np.ndarray) -> np.ndarray:
        return block[block <= split] if lower else block[block > split]

    size, total = 0, 0.0
    low, high = np.inf, -np.inf
    for block in _blocks(values):
        chosen = part(block)
        if chosen.size:
            size += chosen.size
            total += float(chosen.sum())
            low, high = min(low, float(chosen.min())), max(high, float(chosen.max()))
    if size == 0:
        return 0, float("nan"), float("nan")
    mean = total / size
    squares = sum(float(np.sum((part(block) - mean) ** 2)) for block in _blocks(values))
    middle = [(size - 1) // 2, size // 2]  # ranks of the median's order statistics (equal for an odd count)
    median = 0.5 * sum(_order_statistic(values, part, rank, low, high) for rank in middle)
    return size, median, float(np.sqrt(squares / size))


def _order_statistic(values: np.ndarray, part: Any, rank: int, low: float, high: float) -> float:
    """The value of rank ``rank`` (0-based) among ``part(block)`` of all blocks, which lie in ``[low, high]``.

    Each round counts the candidates in 4096 bins of ``[low, high]``, keeps the bin that holds
    the rank, and narrows ``[low, high]`` to that bin's smallest and largest value (the bins
    are monotone in the value, so no other value lies between them); once the bin holds at
    most :data:`_BLOCK` values they are gathered and the one of that rank is picked.
    """
    bins = 4096

    def candidates() -> Any:
        for block in _blocks(values):
            chosen = part(block)
            chosen = chosen[(chosen >= low) & (chosen <= high)]
            yield chosen, np.minimum(((chosen - low) / width).astype(np.int64), bins - 1)

    while high > low:
        width = (high - low) / bins
        counts = np.zeros(bins, dtype=np.int64)
        for _, index in candidates():
            counts += np.bincount(index, minlength=bins)
        ends = np.cumsum(counts)
        target = int(np.searchsorted(ends, rank, side="right"))
        rank -= int(ends[target] - counts[target])
        if counts[target] <= _BLOCK:
            inside = np.concatenate([chosen[index == target] for chosen, index in candidates()])
            return float(np.partition(inside, rank)[rank])
        smallest, largest = np.inf, -np.inf
        for chosen, index in candidates():
            kept = chosen[index == target]
            if kept.size:
                smallest, largest = min(smallest, float(kept.min())), max(largest, float(kept.max()))
        low, high = smallest, largest
    return low


def _q(u: np.ndarray) -> np.ndarray:
    return 0.5 * erfc(u / _SQRT2)


def _model(t: np.ndarray, amplitudes: Steps, centres: Steps, widths: Steps) -> np.ndarray:
    return sum(a * _q((t - m) / s) for a, m, s in zip(amplitudes, centres, widths))


def _slope(t: np.ndarray, amplitudes: Steps, centres: Steps, widths: Steps) -> np.ndarray:
    return -sum(
        a * np.exp(-0.5 * ((t - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)) for a, m, s in zip(amplitudes, centres, widths)
    )


def _fit(
    values: np.ndarray, grid: np.ndarray, volumes: np.ndarray, lo: float, hi: float
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


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """The upper edge of the last lower-class bin of Otsu's split (the fit's starting split)."""
    index, edges = _otsu_bin(values, bins)
    return float(edges[index + 1])


def _otsu_bin(values: np.ndarray, bins: int) -> tuple[int, np.ndarray]:
    """Otsu's split of a histogram of the values: the index of the last lower-class bin, and the bin edges.

    The split maximises the between-class variance w₀ w₁ (μ₀ − μ₁)² over the
    ``bins − 1`` places between bins (Otsu 1979).
    """
    counts, edges = np.histogram(values, bins=bins)
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
