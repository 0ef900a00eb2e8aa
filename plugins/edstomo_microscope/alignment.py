"""Alignment of a tilt series: HAADF to EDS per tilt, tilts to each other, and the tilt axis.

All shifts are in pixels of the tilt series, as ``(along positions, along
slices)`` pairs (positions run across the tilt axis, slices along it), and say
how far an image content must move: a shift of ``(+2, 0)`` moves every
feature two pixels towards higher position indices.

An :class:`Alignment` holds, per tilt,

* ``shifts`` — applied to every channel (one set of shifts for the whole series);
* ``haadf_shifts`` — applied to the HAADF channel only, on top of ``shifts``
  (the HAADF-to-EDS registration of each tilt);

and for the whole series the in-plane rotation of the tilt axis
(``axis_rotation``, degrees, counter-clockwise in the (positions, slices)
plane) and its offset from the centre of the positions axis (``axis_shift``,
pixels). :func:`apply_alignment` applies everything with one interpolation per
image (rotation about the image centre, then the shifts) and can crop the
series to the region that every tilt covers. Alignments are saved to and
loaded from JSON; hand-made ones are built with :meth:`Alignment.from_shifts`.

Estimators
----------
* :func:`haadf_eds_shifts` — per tilt, by centres of mass (the paper's method)
  or by cross-correlation of the HAADF image with the summed EDS maps;
* :func:`series_shifts` — tilts to each other, by phase cross-correlation
  (scikit-image, each tilt registered to its neighbour towards 0°, shifts
  accumulated) or by centres of mass (every tilt's centre of mass moved to the
  image centre, which puts the tilt axis through it);
* :func:`estimate_tilt_axis` — offset and rotation of the tilt axis: for
  blocks of slices along the axis, the offset whose short SIRT
  reconstruction best reproduces the data (smallest relative residual); a
  straight-line fit of the offsets against the block positions gives the
  rotation.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.stats
from edstomo import provenance
from edstomo.data import HAADF, TiltSeries
from edstomo.io import atomic_write_text
from edstomo.units import as_quantity, format_quantity, ureg

__all__ = [
    "Alignment",
    "apply_alignment",
    "centre_of_mass",
    "estimate_tilt_axis",
    "haadf_eds_shifts",
    "series_shifts",
]

FORMAT = "edstomo-alignment"

#: The ``sirt`` solver reconstructs EDS line channels; trial sinograms travel under this placeholder name.
_PROXY_LINE = "C_Ka"


def centre_of_mass(image: np.ndarray) -> np.ndarray:
    """Centre of mass (pixel indices) of a non-negative image; the image centre if it is empty."""
    image = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64)), 0.0, None)
    total = image.sum()
    if total <= 0:
        return (np.array(image.shape, dtype=float) - 1.0) / 2.0
    grids = np.indices(image.shape, dtype=np.float64)
    return np.array([(g * image).sum() / total for g in grids])


def _pairs(name: str, values: Any, count: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (count, 2):
        raise ValueError(f"{name}: shape {array.shape}; expected ({count}, 2) pixel shifts (positions, slices)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite shifts")
    return array


@dataclass
class Alignment:
    """Shifts and tilt-axis correction of a tilt series (see the module docstring).

    Parameters
    ----------
    angles : Quantity, shape (tilts,)
        The tilt angles the shifts belong to.
    pixel_size : Quantity
        The pixel the shifts are measured in; applying to a series with another
        pixel size rescales them.
    shifts : array (tilts, 2)
        Shifts (positions, slices) of every channel, pixels.
    haadf_shifts : array (tilts, 2), optional
        Extra shifts of the HAADF channel, pixels (default zero).
    axis_shift : float
        Offset of the tilt axis along positions, pixels: the series is moved by
        ``-axis_shift`` so that the axis lies at the centre.
    axis_rotation : float
        Rotation of the tilt axis in the image plane, degrees; images are rotated
        by ``-axis_rotation`` about their centre.
    methods : dict
        How each part was obtained (for the record).
    """

    angles: Any
    pixel_size: Any
    shifts: np.ndarray
    haadf_shifts: np.ndarray | None = None
    axis_shift: float = 0.0
    axis_rotation: float = 0.0
    methods: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.angles = as_quantity(self.angles, "deg", "angles").to("deg")
        count = int(np.size(self.angles.magnitude))
        self.pixel_size = as_quantity(self.pixel_size, "nm", "pixel_size")
        self.shifts = _pairs("shifts", self.shifts, count)
        self.haadf_shifts = (
            np.zeros((count, 2)) if self.haadf_shifts is None else _pairs("haadf_shifts", self.haadf_shifts, count)
        )
        for name in ("axis_shift", "axis_rotation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
                raise ValueError(f"{name}: {value!r} must be a finite number")
            setattr(self, name, float(value))

    @classmethod
    def identity(cls, series: TiltSeries) -> Alignment:
        """No shift, no rotation, for the geometry of ``series``."""
        return cls(series.angles, series.pixel_size, np.zeros((series.n_tilts, 2)), methods={"shifts": "none"})

    @classmethod
    def from_shifts(
        cls,
        angles: Any,
        shifts: Any,
        pixel_size: Any,
        *,
        axis_shift: float = 0.0,
        axis_rotation: float = 0.0,
        haadf_shifts: Any = None,
    ) -> Alignment:
        """An alignment given by hand: ``shifts`` (tilts × 2, positions then slices, pixels)."""
        return cls(angles, pixel_size, shifts, haadf_shifts, axis_shift, axis_rotation, {"shifts": "given"})

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "angles_deg": self.angles.m_as("deg").tolist(),
            "pixel_size": format_quantity(self.pixel_size),
            "shifts": self.shifts.tolist(),
            "haadf_shifts": self.haadf_shifts.tolist(),
            "axis_shift": self.axis_shift,
            "axis_rotation_deg": self.axis_rotation,
            "axes": "shifts are (positions, slices) pixel pairs",
            "methods": provenance.jsonable(self.methods),
        }

    def save(self, path: str | Path) -> Path:
        """Write the alignment as JSON, atomically."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Alignment:
        """Read an alignment written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: alignment file {str(path)!r} does not exist")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"path: {str(path)!r} is not JSON ({error})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"path: {str(path)!r} is not an edstomo alignment (no format={FORMAT!r})")
        return cls(
            angles=ureg.Quantity(np.asarray(record["angles_deg"], dtype=float), "deg"),
            pixel_size=record["pixel_size"],
            shifts=record["shifts"],
            haadf_shifts=record.get("haadf_shifts"),
            axis_shift=record.get("axis_shift", 0.0),
            axis_rotation=record.get("axis_rotation_deg", 0.0),
            methods=record.get("methods", {}),
        )

    def replace(self, **changes: Any) -> Alignment:
        values = {
            "angles": self.angles,
            "pixel_size": self.pixel_size,
            "shifts": self.shifts,
            "haadf_shifts": self.haadf_shifts,
            "axis_shift": self.axis_shift,
            "axis_rotation": self.axis_rotation,
            "methods": dict(self.methods),
        }
        values.update(changes)
        return Alignment(**values)


def _matching(alignment: Alignment, series: TiltSeries) -> float:
    """Scale factor from the alignment's pixels to the series' pixels; an error if the angles differ."""
    mine, theirs = alignment.angles.m_as("deg"), series.angles.m_as("deg")
    if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=1e-6):
        raise ValueError(f"alignment: its angles {mine.tolist()} differ from the tilt series' {theirs.tolist()}")
    return float((alignment.pixel_size / series.pixel_size).m_as(""))


def _transform(image: np.ndarray, rotation_deg: float, shift: np.ndarray, order: int) -> np.ndarray:
    """Rotate ``image`` (positions, slices) by ``-rotation_deg`` about its centre, then move it by ``shift``."""
    centre = (np.array(image.shape, dtype=float) - 1.0) / 2.0
    phi = math.radians(rotation_deg)
    # output o takes the input at R(phi) (o - shift - c) + c: rotating the content by -phi
    matrix = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    offset = centre - matrix @ (centre + shift)
    return scipy.ndimage.affine_transform(image, matrix, offset=offset, order=order, mode="constant", cval=0.0)


def _valid_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The largest box found by peeling the border row or column with the most invalid pixels."""
    p0, p1, s0, s1 = 0, mask.shape[0], 0, mask.shape[1]
    while p1 > p0 and s1 > s0 and not mask[p0:p1, s0:s1].all():
        box = mask[p0:p1, s0:s1]
        bad = {
            "p0": (~box[0]).mean(),
            "p1": (~box[-1]).mean(),
            "s0": (~box[:, 0]).mean(),
            "s1": (~box[:, -1]).mean(),
        }
        worst = max(bad, key=bad.get)  # type: ignore[arg-type]
        if worst == "p0":
            p0 += 1
        elif worst == "p1":
            p1 -= 1
        elif worst == "s0":
            s0 += 1
        else:
            s1 -= 1
    if p1 <= p0 or s1 <= s0:
        raise ValueError("alignment: the shifts leave no region that every tilt covers")
    return slice(p0, p1), slice(s0, s1)


def apply_alignment(series: TiltSeries, alignment: Alignment, *, crop: bool = True, order: int = 1) -> TiltSeries:
    """Apply an alignment to every channel of a tilt series.

    Parameters
    ----------
    series : TiltSeries
        The series; its angles must be those of the alignment.
    alignment : Alignment
        Shifts (rescaled if the pixel sizes differ), rotation and axis offset.
    crop : bool
        Keep only the box of positions and slices that every tilt covers after
        the shifts (no zero-filled borders).
    order : int
        Spline order of the interpolation (0 nearest, 1 linear: both keep
        counts non-negative).

    Returns
    -------
    TiltSeries
        The aligned series with a provenance step ``align`` holding the alignment.
    """
    if order not in (0, 1):
        raise ValueError(f"order: {order!r} must be 0 (nearest) or 1 (linear) to keep counts non-negative")
    scale = _matching(alignment, series)
    base = alignment.shifts * scale + np.array([-alignment.axis_shift * scale, 0.0])
    data = np.empty_like(series.data, dtype=np.float64)
    coverage = np.ones(series.data.shape[2:], dtype=bool)
    ones = np.ones(series.data.shape[2:])
    for t in range(series.n_tilts):
        for c, channel in enumerate(series.channels):
            shift = base[t] + (alignment.haadf_shifts[t] * scale if channel == HAADF else 0.0)
            data[c, t] = _transform(
                np.asarray(series.data[c, t], dtype=np.float64), alignment.axis_rotation, shift, order
            )
            if not crop:
                continue
            coverage &= _transform(ones, alignment.axis_rotation, shift, 1) > 1 - 1e-6
    np.clip(data, 0.0, None, out=data)
    box = (slice(None), slice(None))
    if crop:
        box = _valid_box(coverage)
        data = np.ascontiguousarray(data[:, :, box[0], box[1]])
    experiment = series.experiment
    if experiment is not None:
        scan = experiment.scan.model_copy(update={"positions": data.shape[2], "slices": data.shape[3]})
        experiment = experiment.model_copy(update={"scan": scan})
    record = provenance.step(
        "align",
        "edstomo_microscope",
        alignment=alignment.to_dict(),
        applied_scale=scale,
        crop=crop,
        kept_positions=[box[0].start or 0, box[0].stop or series.n_positions],
        kept_slices=[box[1].start or 0, box[1].stop or series.n_slices],
        order=order,
    )
    return series.with_step(record, data=data, experiment=experiment)


def _reference(series: TiltSeries, channels: Sequence[str] | None) -> np.ndarray:
    """Sum of the given channels (default: every EDS line), each scaled to unit total; (tilts, positions, slices)."""
    names = list(channels) if channels is not None else series.lines
    if not names:
        raise ValueError(f"channels: the tilt series has no EDS line to align with; channels are {series.channels}")
    total = np.zeros(series.data.shape[1:])
    for name in names:
        channel = np.asarray(series.channel(name), dtype=np.float64)
        scale = channel.sum()
        if scale > 0:
            total += channel / scale
    return total


def _prepared(image: np.ndarray, sigma: float) -> np.ndarray:
    """Smoothed, mean-free image under a Tukey window (reduces edge effects in cross-correlation)."""
    from scipy.signal.windows import tukey

    image = np.asarray(image, dtype=np.float64)
    if sigma > 0:
        image = scipy.ndimage.gaussian_filter(image, sigma)
    image = image - image.mean()
    window = np.outer(tukey(image.shape[0], 0.25), tukey(image.shape[1], 0.25))
    return image * window


def _register(
    reference: np.ndarray, moving: np.ndarray, upsample: int, sigma: float, refinements: int = 4
) -> np.ndarray:
    """Shift (pixels) that moves ``moving`` onto ``reference`` (phase cross-correlation).

    The window that tames the image borders is fixed in the frame while the
    content moves, which biases a single estimate towards zero (by about 5 %
    of the shift); the moving image is therefore moved by the estimate so far
    and registered again, until the correction is below 0.01 pixel (at most
    ``refinements`` times).
    """
    from skimage.registration import phase_cross_correlation

    a = _prepared(reference, sigma)
    if not np.any(a) or not np.any(moving):
        return np.zeros(2)
    total = np.zeros(2)
    for _ in range(refinements):
        moved = scipy.ndimage.shift(moving, total, order=3, mode="nearest") if np.any(total) else moving
        b = _prepared(moved, sigma)
        if not np.any(b):
            break
        step, _, _ = phase_cross_correlation(a, b, upsample_factor=upsample, normalization=None)
        total += np.asarray(step, dtype=np.float64)
        if np.abs(step).max() < 0.01:
            break
    return total


def haadf_eds_shifts(
    series: TiltSeries,
    method: str = "com",
    *,
    channels: Sequence[str] | None = None,
    upsample: int = 10,
    sigma: float = 1.0,
) -> np.ndarray:
    """Per-tilt shifts (tilts × 2) that move the HAADF image onto the EDS maps.

    Parameters
    ----------
    series : TiltSeries
        Must hold the HAADF channel and EDS lines.
    method : {"com", "xcorr"}
        ``"com"``: match the HAADF centre of mass to that of the summed EDS maps
        (the paper aligned the ADF image to one element map this way);
        ``"xcorr"``: phase cross-correlation of the two images.
    channels : list of str, optional
        EDS lines summed into the reference (each scaled to unit total); default all.
    upsample, sigma
        Sub-pixel factor and Gaussian pre-smoothing (pixels) of the cross-correlation.
    """
    if not series.has_haadf:
        raise ValueError(f"series: HAADF-to-EDS alignment needs a {HAADF!r} channel; channels are {series.channels}")
    if method not in ("com", "xcorr"):
        raise ValueError(f"method: {method!r} must be 'com' or 'xcorr'")
    reference = _reference(series, channels)
    haadf = np.asarray(series.channel(HAADF), dtype=np.float64)
    shifts = np.zeros((series.n_tilts, 2))
    for t in range(series.n_tilts):
        if method == "com":
            shifts[t] = centre_of_mass(reference[t]) - centre_of_mass(haadf[t])
        else:
            shifts[t] = _register(reference[t], haadf[t], upsample, sigma)
    return shifts


def series_shifts(
    series: TiltSeries,
    method: str = "xcorr",
    *,
    channel: str | None = None,
    upsample: int = 10,
    sigma: float = 1.0,
    haadf_shifts: np.ndarray | None = None,
) -> np.ndarray:
    """Shifts (tilts × 2) that align the tilts to each other; applied to every channel.

    Parameters
    ----------
    series : TiltSeries
        The series.
    method : {"xcorr", "com"}
        ``"xcorr"``: each tilt is registered to its neighbour towards the tilt
        nearest 0° (phase cross-correlation), shifts accumulated from there;
        ``"com"``: every tilt's centre of mass is moved to the image centre.
    channel : str, optional
        Channel used (default HAADF if present, else the sum of the EDS lines).
    upsample, sigma
        Sub-pixel factor and Gaussian pre-smoothing (pixels) of the cross-correlation.
    haadf_shifts : array (tilts, 2), optional
        HAADF-to-EDS shifts, applied to the HAADF images before they are compared.
    """
    if method not in ("xcorr", "com"):
        raise ValueError(f"method: {method!r} must be 'xcorr' or 'com'")
    if channel is None:
        stack = np.asarray(series.channel(HAADF), dtype=np.float64) if series.has_haadf else _reference(series, None)
        channel = HAADF if series.has_haadf else "sum of EDS lines"
    else:
        stack = np.asarray(series.channel(channel), dtype=np.float64)
    if channel == HAADF and haadf_shifts is not None:
        stack = np.stack([scipy.ndimage.shift(stack[t], haadf_shifts[t], order=1) for t in range(series.n_tilts)])
    count = series.n_tilts
    shifts = np.zeros((count, 2))
    if method == "com":
        centre = (np.array(stack.shape[1:], dtype=float) - 1.0) / 2.0
        for t in range(count):
            shifts[t] = centre - centre_of_mass(stack[t])
        return shifts
    angles = series.angles.m_as("deg")
    start = int(np.argmin(np.abs(angles)))
    for step in (1, -1):
        t = start + step
        while 0 <= t < count:
            shifts[t] = shifts[t - step] + _register(stack[t - step], stack[t], upsample, sigma)
            t += step
    return shifts


def _minimum(offsets: np.ndarray, curve: np.ndarray) -> float:
    """Sub-step position of a curve's minimum (parabola through the three lowest-neighbour points);
    NaN when the minimum lies on the edge of the search range or the curve is flat."""
    k = int(np.argmin(curve))
    if k == 0 or k == curve.size - 1 or not curve.max() > curve[k] * (1 + 1e-3):
        return math.nan
    left, middle, right = curve[k - 1 : k + 2]
    curvature = left - 2 * middle + right
    delta = 0.5 * (left - right) / curvature if curvature > 0 else 0.0
    return float(offsets[k] + np.clip(delta, -0.5, 0.5) * (offsets[1] - offsets[0]))


def _shift_positions(sinograms: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Copies of sinograms (tilts, positions, blocks) moved by each offset along positions, stacked last."""
    out = np.empty((*sinograms.shape, offsets.size))
    for k, offset in enumerate(offsets):
        out[..., k] = scipy.ndimage.shift(sinograms, (0.0, float(offset), 0.0), order=1, mode="nearest")
    return out


def estimate_tilt_axis(
    series: TiltSeries,
    *,
    channel: str | None = None,
    max_shift: float = 10.0,
    step: float = 1.0,
    blocks: int = 8,
    iterations: int = 50,
    fit_rotation: bool = True,
    tolerance: float = 1.5,
) -> tuple[float, float, dict[str, Any]]:
    """Offset and in-plane rotation of the tilt axis of an (already shift-aligned) series.

    The slices are grouped into ``blocks`` bands along the tilt axis and each
    band summed into one sinogram. For every trial offset δ in
    ``[-max_shift, max_shift]`` (pixels, step ``step``; whole pixels avoid the
    smoothing of interpolation, which biases the residual) the sinograms are moved
    by ``-δ`` and reconstructed by ``iterations`` of the ``sirt`` solver; the
    offset of a band is the δ with the smallest relative data residual
    ``‖W x − b‖ / ‖b‖`` (refined between trial steps by a parabola). The axis
    offset is the offsets' value at the centre of the slices and the rotation
    the slope of a robust straight-line fit (Theil–Sen, offsets against band
    centres), in degrees. Bands whose minimum lies on the edge of the search
    range are left out; when fewer than half the bands remain the axis is
    reported as undetermined (``record["determined"] = False``) and 0, 0 is
    returned, and likewise when the band offsets scatter about the fitted line
    by more than ``tolerance`` pixels (median absolute deviation). Both happen
    for thin samples wider than the field of view, whose reconstruction hardly
    depends on the axis offset.

    Returns
    -------
    axis_shift : float
        Pixels along positions (the series is moved by ``-axis_shift``).
    axis_rotation : float
        Degrees; 0 when ``fit_rotation`` is False or there is one band.
    record : dict
        Trial offsets, residual curves, the offset of each band and the fit.
    """
    from edstomo.operators import projector_for
    from edstomo.registry import plugins

    if not (max_shift > 0 and step > 0 and blocks >= 1 and iterations >= 1):
        raise ValueError(
            f"estimate_tilt_axis: max_shift {max_shift!r}, step {step!r} must be positive, blocks {blocks!r} "
            f"and iterations {iterations!r} at least 1"
        )
    name = channel or (HAADF if series.has_haadf else None)
    data = np.asarray(series.channel(name), dtype=np.float64) if name else _reference(series, None)
    blocks = min(blocks, series.n_slices)
    edges = np.linspace(0, series.n_slices, blocks + 1).round().astype(int)
    sinograms = np.stack([data[:, :, a:b].sum(axis=2) for a, b in itertools.pairwise(edges)], axis=2)
    offsets = np.arange(-max_shift, max_shift + 1e-9, step)
    trial = _shift_positions(sinograms, -offsets).reshape(*sinograms.shape[:2], -1)  # (tilts, positions, blocks*K)
    trial /= max(float(trial.max()), 1e-300)
    stack = TiltSeries(
        data=trial[None],
        channels=[_PROXY_LINE],
        angles=series.angles,
        pixel_size=series.pixel_size,
    )
    volume = plugins.solver("sirt")(iterations=iterations, dtype="float64").solve(stack)
    projector = projector_for(series.angles.m_as("rad"), (series.n_positions, series.n_positions), "strip", "float64")
    predicted = projector.forward(volume.data[0])  # (tilts, positions, blocks*K)
    misfit = np.linalg.norm((predicted - trial).reshape(-1, trial.shape[2]), axis=0)
    norms = np.maximum(np.linalg.norm(trial.reshape(-1, trial.shape[2]), axis=0), 1e-300)
    curves = (misfit / norms).reshape(blocks, offsets.size)
    best = np.array([_minimum(offsets, curve) for curve in curves])
    valid = np.isfinite(best)
    centres = 0.5 * (edges[:-1] + edges[1:]) - 0.5 * series.n_slices
    record: dict[str, Any] = {
        "method": "sirt residual",
        "channel": name or "sum of EDS lines",
        "iterations": iterations,
        "offsets": offsets.tolist(),
        "band_centres": centres.tolist(),
        "band_offsets": [float(b) if np.isfinite(b) else None for b in best],
        "residual_curves": curves.round(6).tolist(),
    }
    undetermined = (
        "tilt axis undetermined: {reason} (typical of thin samples wider than the field of view, whose "
        "reconstruction hardly depends on the axis); offset and rotation set to 0"
    )
    if valid.sum() < max(1, (blocks + 1) // 2):
        reason = f"only {int(valid.sum())} of {blocks} bands have a residual minimum inside ±{max_shift} pixels"
        record.update(determined=False, note=undetermined.format(reason=reason))
        return 0.0, 0.0, record
    if fit_rotation and valid.sum() >= 2:
        slope, intercept, _, _ = scipy.stats.theilslopes(best[valid], centres[valid])
    else:
        slope, intercept = 0.0, float(np.median(best[valid]))
    scatter = float(np.median(np.abs(best[valid] - (intercept + slope * centres[valid]))))
    record["scatter"] = scatter
    if scatter > tolerance:
        reason = f"the bands' offsets scatter by {scatter:.2g} pixels about the fitted axis (tolerance {tolerance:g})"
        record.update(determined=False, note=undetermined.format(reason=reason))
        return 0.0, 0.0, record
    # The axis runs along (slope, 1) in the (positions, slices) plane: at an angle -atan(slope)
    # counter-clockwise from the slices direction. After the images are turned by +atan(slope)
    # it runs along the slices at offset intercept·cos(atan(slope)).
    rotation = -math.degrees(math.atan(slope))
    shift = float(intercept) * math.cos(math.atan(slope))
    record.update(determined=True, slope=float(slope), intercept=float(intercept))
    return shift, rotation, record
