"""Preprocessing of tilt series before reconstruction.

* :func:`gaussian_filter` — Gaussian smoothing of the EDS sinograms (the
  paper's denoising step, σ = 0.8 pixels, section 3.1.1);
* :func:`normalise_tilts` — scale each tilt to the same total signal;
* :func:`response_ratios` — the HAADF/EDS response ratios r_A of eq. 15 by
  non-negative least squares, with the coefficient of determination R².

Every function takes a :class:`~edstomo.data.TiltSeries` and leaves it
unchanged; the first two return a new series with one more provenance step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.optimize

from . import provenance
from .data import HAADF, TiltSeries

__all__ = ["FILTER_AXES", "ResponseRatios", "gaussian_filter", "normalise_tilts", "response_ratios"]

#: The image planes :func:`gaussian_filter` can smooth, by name, as axes of a
#: channel's ``(tilts, positions, slices)`` data.
FILTER_AXES: dict[str, tuple[int, int]] = {
    "sinogram": (0, 1),  # tilts × positions, for each slice: the paper's filter
    "projection": (1, 2),  # positions × slices, for each tilt: the 2-D projection image
}


def _check_series(series: Any) -> TiltSeries:
    if not isinstance(series, TiltSeries):
        raise TypeError(f"series: expected a TiltSeries, got {type(series).__name__}")
    return series


def _resolve_channels(series: TiltSeries, channels: Sequence[str] | None, default: list[str]) -> list[str]:
    """The channels to process: ``default`` for None, else the given names (checked)."""
    if channels is None:
        return default
    if isinstance(channels, str) or not isinstance(channels, Sequence):
        raise ValueError(f"channels: expected a list of channel names, got {channels!r}")
    names = [str(c) for c in channels]
    if not names:
        raise ValueError("channels: the list of channels to process is empty")
    unknown = [c for c in names if c not in series.channels]
    if unknown:
        raise ValueError(f"channels: {unknown} not in the tilt series; its channels are {series.channels}")
    return names


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_sigma(sigma: Any) -> tuple[float, float]:
    """σ as a pair of non-negative finite pixel widths (a scalar applies to both axes)."""
    if _is_number(sigma):
        pair = (float(sigma), float(sigma))
    elif isinstance(sigma, (tuple, list)) and len(sigma) == 2 and all(_is_number(v) for v in sigma):
        pair = (float(sigma[0]), float(sigma[1]))
    else:
        raise ValueError(f"sigma: {sigma!r} must be a non-negative number of pixels or a pair of them")
    if not all(np.isfinite(v) and v >= 0 for v in pair):
        raise ValueError(f"sigma: {sigma!r} must be non-negative and finite (pixels)")
    return pair


def gaussian_filter(
    series: TiltSeries,
    sigma: float | tuple[float, float],
    channels: Sequence[str] | None = None,
    *,
    axes: str = "sinogram",
    mode: str = "reflect",
    truncate: float = 4.0,
) -> TiltSeries:
    """Smooth channels of a tilt series with a Gaussian kernel (``scipy.ndimage.gaussian_filter``).

    The paper (section 3.1.1) filtered each 2-D EDS sinogram — tilts × beam
    positions — with σ = 0.8 pixels and left the HAADF sinogram as measured;
    that is the default here (``axes="sinogram"``, all EDS lines).  With
    ``axes="projection"`` each tilt's 2-D projection image (positions × slices)
    is smoothed instead, which does not mix tilts.

    Parameters
    ----------
    series : TiltSeries
        Input sinograms (channels, tilts, positions, slices).
    sigma : float or (float, float)
        Standard deviation of the kernel in pixels (tilt steps along the tilt
        axis of a sinogram), ≥ 0; a pair gives one σ per axis of the plane.
        σ = 0 leaves an axis unfiltered.
    channels : list of str, optional
        Channels to filter; default every EDS line (not HAADF).
    axes : {"sinogram", "projection"}
        The plane filtered: ``"sinogram"`` = (tilts, positions) for each slice,
        ``"projection"`` = (positions, slices) for each tilt.
    mode : str
        Boundary handling of ``scipy.ndimage`` (default ``"reflect"``, SciPy's default).
    truncate : float
        Kernel half-width in units of σ (SciPy's default 4).

    Returns
    -------
    TiltSeries
        A new series; unfiltered channels are copied unchanged.  Non-negative
        data stay non-negative (the kernel is positive).

    Examples
    --------
    >>> smoothed = gaussian_filter(series, 0.8)  # doctest: +SKIP
    """
    series = _check_series(series)
    pair = _check_sigma(sigma)
    if axes not in FILTER_AXES:
        raise ValueError(f"axes: {axes!r} is not a filter plane; expected one of {list(FILTER_AXES)}")
    if mode not in ("reflect", "constant", "nearest", "mirror", "wrap", "grid-mirror", "grid-constant", "grid-wrap"):
        raise ValueError(f"mode: {mode!r} is not a scipy.ndimage boundary mode")
    if not (isinstance(truncate, (int, float)) and np.isfinite(truncate) and truncate > 0):
        raise ValueError(f"truncate: {truncate!r} must be a positive number of standard deviations")
    names = _resolve_channels(series, channels, series.lines)
    if not names:
        raise ValueError(f"channels: the tilt series has no EDS line to filter; its channels are {series.channels}")
    sigmas = [0.0, 0.0, 0.0]
    for axis, value in zip(FILTER_AXES[axes], pair):
        sigmas[axis] = value
    data = np.array(series.data, dtype=np.float64)
    for name in names:
        index = series.channels.index(name)
        data[index] = scipy.ndimage.gaussian_filter(data[index], sigma=sigmas, mode=mode, truncate=truncate)
    record = provenance.step(
        "gaussian_filter", None, sigma=list(pair), axes=axes, channels=names, mode=mode, truncate=truncate
    )
    return series.with_step(record, data=data)


def normalise_tilts(series: TiltSeries, channels: Sequence[str] | None = None) -> TiltSeries:
    """Scale every tilt so that each channel's total signal is the same at all tilts.

    In the thin-film (projection) regime every tilt sees the whole particle,
    so the total signal per tilt should not depend on the tilt; drifts in dose
    or detector shadowing break that.  Each tilt ``t`` of channel ``c`` is
    multiplied by ``mean_t(S_c) / S_c,t``, where ``S_c,t`` is its sum over
    positions and slices: the channel's grand total is preserved.

    Parameters
    ----------
    series : TiltSeries
        Input sinograms.
    channels : list of str, optional
        Channels to normalise; default all (HAADF and lines).

    Returns
    -------
    TiltSeries
        A new series with one provenance step recording the scale factors.

    Raises
    ------
    ValueError
        If a normalised channel has a tilt with zero total signal.
    """
    series = _check_series(series)
    names = _resolve_channels(series, channels, list(series.channels))
    dtype = series.data.dtype if series.data.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    data = np.array(series.data, dtype=dtype)  # float32 stays float32; totals and scales in float64
    factors: dict[str, list[float]] = {}
    for name in names:
        index = series.channels.index(name)
        totals = data[index].sum(axis=(1, 2), dtype=np.float64)
        empty = np.flatnonzero(totals <= 0)
        if empty.size:
            angles = series.angles.m_as("deg")[empty].tolist()
            raise ValueError(
                f"series: channel {name!r} has no signal at tilt(s) {angles} deg; cannot normalise it per tilt"
            )
        scale = totals.mean() / totals
        data[index] *= scale[:, None, None]
        factors[name] = scale.tolist()
    record = provenance.step("normalise_tilts", None, channels=names, factors=factors)
    return series.with_step(record, data=data)


@dataclass(frozen=True)
class ResponseRatios:
    """Response ratios r_A of eq. 15, ``I_H ≈ Σ_A r_A I_A``, from a non-negative fit.

    Attributes
    ----------
    ratios : dict of str to float
        r_A per EDS line (HAADF signal per EDS count; dimensionless ratio of
        the channels' units).
    r_squared : float
        Coefficient of determination of the fit, ``1 − SS_res / SS_tot`` with
        ``SS_tot`` about the mean HAADF signal (the fit has no intercept, so it
        can be negative for a useless fit; 1 is perfect).
    residual_norm : float
        ``‖I_H − Σ r_A I_A‖₂`` over all tilts, positions and slices.
    record : dict
        Provenance step of the estimate.
    """

    ratios: dict[str, float]
    r_squared: float
    residual_norm: float
    record: dict[str, Any] = field(repr=False)

    @property
    def lines(self) -> list[str]:
        """The EDS lines, in fit order."""
        return list(self.ratios)

    def __getitem__(self, line: str) -> float:
        if line not in self.ratios:
            raise KeyError(f"line: {line!r} has no response ratio; lines are {self.lines}")
        return self.ratios[line]

    def as_array(self, lines: Sequence[str] | None = None) -> np.ndarray:
        """The ratios as a float64 array in the order of ``lines`` (default fit order)."""
        return np.array([self[line] for line in (self.lines if lines is None else lines)], dtype=np.float64)


def response_ratios(series: TiltSeries, lines: Sequence[str] | None = None) -> ResponseRatios:
    """Estimate the response ratios r_A of eq. 15 by non-negative least squares.

    Solves ``min_{r ≥ 0} ‖I_H − Σ_A r_A I_A‖₂`` over every tilt, position and
    slice (``scipy.optimize.nnls``).  The tall system is first reduced to its
    k × k normal equations, added up one tilt at a time in float64, and a
    square root of them, which leaves the minimiser unchanged and keeps the memory
    to one tilt (the residual is summed in a second pass over the tilts).

    Parameters
    ----------
    series : TiltSeries
        Must hold the ``"HAADF"`` channel and the EDS lines (filtered or not).
    lines : list of str, optional
        EDS lines in the fit; default every line of the series.

    Returns
    -------
    ResponseRatios
        The ratios r_A and R².

    Raises
    ------
    ValueError
        If there is no HAADF channel, no EDS line, a line with no signal, or
        no HAADF signal.
    """
    series = _check_series(series)
    if not series.has_haadf:
        raise ValueError(
            f"series: response ratios need a {HAADF!r} channel; the tilt series has channels {series.channels}"
        )
    names = _resolve_channels(series, lines, series.lines)
    if HAADF in names:
        raise ValueError(f"lines: {HAADF!r} cannot be fitted against itself; give EDS lines only")
    if not names:
        raise ValueError(f"lines: the tilt series has no EDS line; its channels are {series.channels}")
    gram, moment, target_sum, target_squares, size = _normal_equations(series, names)
    empty = [n for n, diagonal in zip(names, np.diag(gram)) if diagonal == 0]
    if empty:
        raise ValueError(f"series: line(s) {empty} have no signal; their response ratios are undefined")
    values, vectors = np.linalg.eigh(gram)  # DᵀD = V Λ Vᵀ; ‖t − D r‖² = ‖Λ½ Vᵀ r − Λ^-½ Vᵀ Dᵀ t‖² + const
    kept = values > values.max() * 1e-13  # collinear lines: their directions left out (as a QR would)
    root = np.sqrt(values[kept])
    ratios, _ = scipy.optimize.nnls(root[:, None] * vectors[:, kept].T, (vectors[:, kept].T @ moment) / root)
    # a line whose share of the HAADF is at the normal equations' rounding level (‖r_A I_A‖ ≤ 10⁻¹² ‖I_H‖) is 0
    ratios[ratios * np.sqrt(np.diag(gram)) <= 1e-12 * np.sqrt(target_squares)] = 0.0
    ss_res, total = _residual_sums(series, names, ratios, target_sum / size)
    if total == 0.0:
        raise ValueError("series: the HAADF signal is constant; R² of the response-ratio fit is undefined")
    fitted = {n: float(v) for n, v in zip(names, ratios)}
    r_squared = 1.0 - ss_res / total
    record = provenance.step("response_ratios", None, lines=names, ratios=fitted, r_squared=r_squared)
    return ResponseRatios(fitted, r_squared, float(np.sqrt(ss_res)), record)


def _tilt_columns(series: TiltSeries, names: list[str], tilt: int) -> tuple[np.ndarray, np.ndarray]:
    """The HAADF values of one tilt and the lines' values as columns, in float64."""
    target = np.asarray(series.channel(HAADF)[tilt], dtype=np.float64).ravel()
    design = np.stack([np.asarray(series.channel(n)[tilt], dtype=np.float64).ravel() for n in names], axis=1)
    return target, design


def _normal_equations(series: TiltSeries, names: list[str]) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """``DᵀD``, ``Dᵀt``, ``Σ t``, ``Σ t²`` and the number of measurements, added up tilt by tilt (one tilt in
    float64 at a time, not the whole series)."""
    gram, moment, total, squares, size = np.zeros((len(names), len(names))), np.zeros(len(names)), 0.0, 0.0, 0
    for tilt in range(series.n_tilts):
        target, design = _tilt_columns(series, names, tilt)
        gram += design.T @ design
        moment += design.T @ target
        total += float(target.sum())
        squares += float(target @ target)
        size += target.size
    return gram, moment, total, squares, size


def _residual_sums(series: TiltSeries, names: list[str], ratios: np.ndarray, mean: float) -> tuple[float, float]:
    """``‖t − D r‖²`` and ``‖t − mean‖²``, tilt by tilt."""
    ss_res = total = 0.0
    for tilt in range(series.n_tilts):
        target, design = _tilt_columns(series, names, tilt)
        residual = target - design @ ratios
        ss_res += float(residual @ residual)
        total += float(np.sum((target - mean) ** 2))
    return ss_res, total
