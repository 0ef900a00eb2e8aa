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
  accumulated), by StackReg (``pystackreg``, the ImageJ plugin's
  translation registration, same neighbour scheme; optional) or by centres
  of mass (every tilt's centre of mass moved to the image centre, which puts
  the tilt axis through it);
* :func:`estimate_tilt_axis` — offset and rotation of the tilt axis: for
  blocks of slices along the axis, the offset whose short SIRT
  reconstruction best reproduces the data (smallest relative residual); a
  straight-line fit of the offsets against the block positions gives the
  rotation, with standard uncertainties from the offsets' scatter;
* :func:`tilt_axis_com` — the same from centres of mass (as etspy's
  ``tilt_align("CoM")``): in each block the projected centre of mass follows
  ``a + x0 cos θ + z0 sin θ``, ``a`` being the axis; uncertainties from the
  least-squares fits; refused (with the reason) when the signal leaves the
  field of view;
* :func:`find_tilt_axis` — the first of these that determines the axis, or
  the best value of each component with its uncertainty and why no method
  determined both;
* :func:`tilt_axis_max_image` — the rotation alone from the maximum image over
  the tilts (as etspy's ``tilt_align("MaxImage")``): features trace streaks
  across the axis, found by edge detection and a Hough transform.

All three return ``(axis_shift, axis_rotation, record)`` in the convention of
:class:`Alignment` (``record["determined"]``, ``record["note"]`` when not,
``record["shift_uncertainty"]`` and ``record["rotation_uncertainty"]`` when
determined).
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
    "SERIES_METHODS",
    "Alignment",
    "apply_alignment",
    "centre_of_mass",
    "estimate_tilt_axis",
    "find_tilt_axis",
    "haadf_eds_shifts",
    "series_shifts",
    "tilt_axis_com",
    "tilt_axis_max_image",
]

#: Methods of :func:`series_shifts`.
SERIES_METHODS = ("xcorr", "stackreg", "com")

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
    dtype = series.data.dtype if series.data.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    data = np.empty_like(series.data, dtype=dtype)  # each image is shifted in float64, then stored
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


def _register_stackreg(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Shift (pixels) that moves ``moving`` onto ``reference`` by StackReg's translation registration."""
    try:
        from pystackreg import StackReg
    except ImportError:
        raise ImportError(
            "method 'stackreg' needs pystackreg (free to use, restricted licence): pip install pystackreg"
        ) from None
    if not np.any(reference) or not np.any(moving):
        return np.zeros(2)
    matrix = StackReg(StackReg.TRANSLATION).register(np.asarray(reference, float), np.asarray(moving, float))
    return -np.array([matrix[1, 2], matrix[0, 2]])  # its (columns, rows) displacement of moving, undone


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
    method : {"xcorr", "stackreg", "com"}
        ``"xcorr"``: each tilt is registered to its neighbour towards the tilt
        nearest 0° (phase cross-correlation), shifts accumulated from there;
        ``"stackreg"``: the same with StackReg's translation registration
        (needs ``pystackreg``); ``"com"``: every tilt's centre of mass is moved
        to the image centre.
    channel : str, optional
        Channel used (default HAADF if present, else the sum of the EDS lines).
    upsample, sigma
        Sub-pixel factor and Gaussian pre-smoothing (pixels) of the cross-correlation.
    haadf_shifts : array (tilts, 2), optional
        HAADF-to-EDS shifts, applied to the HAADF images before they are compared.
    """
    if method not in SERIES_METHODS:
        raise ValueError(f"method: {method!r} must be one of {SERIES_METHODS}")
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
            if method == "stackreg":
                found = _register_stackreg(stack[t - step], stack[t])
            else:
                found = _register(stack[t - step], stack[t], upsample, sigma)
            shifts[t] = shifts[t - step] + found
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
    sinograms, centres, name = _bands(series, channel, blocks)
    blocks = sinograms.shape[2]
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
    record: dict[str, Any] = {
        "method": "sirt residual",
        "channel": name,
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
    if valid.any():  # a robust offset and its standard uncertainty, whatever is decided below
        found = best[valid]
        spread = 1.4826 * float(np.median(np.abs(found - np.median(found))))
        record["estimate"] = {
            "shift": float(np.median(found)),
            "shift_uncertainty": max(spread, 0.1 * step) / math.sqrt(found.size),
            "bands": int(found.size),
        }
    if valid.sum() < max(1, (blocks + 1) // 2):
        reason = f"only {int(valid.sum())} of {blocks} bands have a residual minimum inside ±{max_shift} pixels"
        record.update(determined=False, note=undetermined.format(reason=reason))
        return 0.0, 0.0, record
    if fit_rotation and valid.sum() >= 2:
        slope, intercept, _, _ = scipy.stats.theilslopes(best[valid], centres[valid])
    else:
        slope, intercept = 0.0, float(np.median(best[valid]))
    residuals = best[valid] - (intercept + slope * centres[valid])
    scatter = float(np.median(np.abs(residuals)))
    record["scatter"] = scatter
    if scatter > tolerance:
        reason = f"the bands' offsets scatter by {scatter:.2g} pixels about the fitted axis (tolerance {tolerance:g})"
        record.update(determined=False, note=undetermined.format(reason=reason))
        return 0.0, 0.0, record
    # a band offset is read to about a tenth of the trial step at best
    covariance = _line_covariance(centres[valid], residuals, floor=0.1 * step, fit_slope=fit_rotation)
    shift, rotation = _axis_from_line(intercept, slope, covariance, record)
    return shift, rotation, record


def _line_covariance(
    centres: np.ndarray, residuals: np.ndarray, *, floor: float, fit_slope: bool, sigma: np.ndarray | None = None
) -> np.ndarray:
    """Covariance of (intercept, slope) of a straight line fitted to points with these residuals.

    The point uncertainty is the residuals' RMS (with ``n − parameters``
    degrees of freedom) or, when given, ``sigma`` scaled up by the reduced
    χ² if the points scatter more than their errors; never below ``floor``.
    """
    n = centres.size
    parameters = 2 if fit_slope and n >= 2 else 1
    sigma = np.full(n, np.nan) if sigma is None else np.asarray(sigma, dtype=float)
    if np.all(np.isfinite(sigma)) and np.all(sigma > 0):
        weights = 1.0 / np.maximum(sigma, floor) ** 2
        chi2 = float(np.sum(weights * residuals**2)) / max(n - parameters, 1)
        weights = weights / max(chi2, 1.0)
    else:
        rms = math.sqrt(float(np.sum(residuals**2)) / max(n - parameters, 1)) if n > parameters else 0.0
        weights = np.full(n, 1.0 / max(rms, floor) ** 2)
    design = np.stack([np.ones(n), centres], axis=1) if parameters == 2 else np.ones((n, 1))
    inverse = np.linalg.pinv(design.T @ (weights[:, None] * design))
    return inverse if parameters == 2 else np.array([[inverse[0, 0], 0.0], [0.0, 0.0]])


def _axis_from_line(
    intercept: float, slope: float, covariance: np.ndarray, record: dict[str, Any]
) -> tuple[float, float]:
    """Axis shift and rotation from the line ``offset = intercept + slope · band centre``; uncertainties in record.

    The axis runs along (slope, 1) in the (positions, slices) plane: at an
    angle -atan(slope) counter-clockwise from the slices direction. After the
    images are turned by +atan(slope) it runs along the slices at offset
    intercept·cos(atan(slope)).
    """
    angle = math.atan(slope)
    rotation = -math.degrees(angle)
    shift = float(intercept) * math.cos(angle)
    shift_error = math.sqrt(max(float(covariance[0, 0]), 0.0)) * math.cos(angle)
    rotation_error = math.degrees(math.sqrt(max(float(covariance[1, 1]), 0.0)) / (1.0 + slope**2))
    record.update(
        determined=True,
        slope=float(slope),
        intercept=float(intercept),
        shift_uncertainty=shift_error,
        rotation_uncertainty=rotation_error,
    )
    return shift, rotation


def _bands(series: TiltSeries, channel: str | None, blocks: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Sinograms (tilts, positions, blocks) of ``blocks`` bands of slices summed, band centres (slices from the
    middle) and the channel used (default HAADF, else the sum of the EDS lines)."""
    name = channel or (HAADF if series.has_haadf else None)
    data = np.asarray(series.channel(name), dtype=np.float64) if name else _reference(series, None)
    blocks = min(blocks, series.n_slices)
    edges = np.linspace(0, series.n_slices, blocks + 1).round().astype(int)
    sinograms = np.stack([data[:, :, a:b].sum(axis=2) for a, b in itertools.pairwise(edges)], axis=2)
    centres = 0.5 * (edges[:-1] + edges[1:]) - 0.5 * series.n_slices
    return sinograms, centres, name or "sum of EDS lines"


def tilt_axis_com(
    series: TiltSeries,
    *,
    channel: str | None = None,
    blocks: int = 8,
    fit_rotation: bool = True,
    edge_fraction: float = 0.02,
) -> tuple[float, float, dict[str, Any]]:
    """Offset and rotation of the tilt axis from the centres of mass of the projections.

    In each of ``blocks`` bands of slices the centre of mass across the tilt
    axis (pixels from the middle of the positions) is fitted by
    ``a + x0 cos θ + z0 sin θ`` (least squares): ``a`` is where the axis
    crosses the band, ``(x0, z0)`` the band's centre of mass in the sample. A
    straight line through the ``a`` of the bands (weighted by their standard
    errors) gives the offset at the middle of the slices and the rotation, as
    in :func:`estimate_tilt_axis`.

    The model holds only when all the signal stays inside the field of view:
    when more than ``edge_fraction`` of a band's signal lies in the outermost
    positions at some tilt, or a band's total changes by more than 10 % over the
    tilts (a section wider than the field of view), the axis is reported as
    undetermined (``record["note"]`` says why) and 0, 0 returned.
    """
    if blocks < 1 or not 0 < edge_fraction < 1:
        raise ValueError(f"tilt_axis_com: blocks {blocks!r} must be >= 1 and edge_fraction {edge_fraction!r} in (0, 1)")
    sinograms, centres, name = _bands(series, channel, blocks)
    theta = series.angles.m_as("rad")
    positions = np.arange(series.n_positions) - 0.5 * (series.n_positions - 1)
    filled = np.all(sinograms.sum(axis=1) > 0, axis=0)  # bands with signal at every tilt
    sinograms, centres = sinograms[:, :, filled], centres[filled]
    totals = sinograms.sum(axis=1)  # (tilts, bands)
    record: dict[str, Any] = {"method": "centre of mass", "channel": name, "band_centres": centres.tolist()}
    problems = []
    if centres.size < (2 if fit_rotation else 1):
        problems.append(f"only {centres.size} band(s) hold signal at every tilt")
    else:
        edge = (sinograms[:, :2].sum(axis=1) + sinograms[:, -2:].sum(axis=1)) / totals
        variation = np.ptp(totals, axis=0) / totals.mean(axis=0)
        record.update(edge_fraction=float(edge.max()), total_variation=float(variation.max()))
        if edge.max() > edge_fraction:
            problems.append(f"{100 * edge.max():.0f} % of a band's signal lies at the edges of the field of view")
        if variation.max() > 0.1:
            problems.append(f"a band's total changes by {100 * variation.max():.0f} % over the tilts")
    if problems:
        reason = " and ".join(problems)
        note = (
            f"tilt axis by centre of mass undetermined: {reason} (the centre of mass follows a sinusoid only when "
            "the sample stays inside the field of view); offset and rotation set to 0"
        )
        record.update(determined=False, note=note)
        return 0.0, 0.0, record
    com = (sinograms * positions[None, :, None]).sum(axis=1) / totals  # (tilts, blocks)
    design = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    fits, errors = [], []
    for band in range(com.shape[1]):
        coefficients, residual, rank, _ = np.linalg.lstsq(design, com[:, band], rcond=None)
        dof = max(theta.size - 3, 1)
        variance = float(residual[0]) / dof if residual.size and rank == 3 else 0.0
        covariance = variance * np.linalg.pinv(design.T @ design)
        fits.append(coefficients)
        errors.append(math.sqrt(max(covariance[0, 0], 0.0)))
    offsets, sigma = np.array([f[0] for f in fits]), np.array(errors)
    if fit_rotation and offsets.size >= 2:
        weights = 1.0 / np.maximum(sigma, 1e-3) ** 2
        slope, intercept = np.polyfit(centres, offsets, 1, w=np.sqrt(weights))
    else:
        slope, intercept = 0.0, float(np.average(offsets, weights=1.0 / np.maximum(sigma, 1e-3) ** 2))
    record.update(band_offsets=offsets.tolist(), band_uncertainties=sigma.tolist())
    covariance = _line_covariance(
        centres, offsets - (intercept + slope * centres), floor=1e-3, fit_slope=fit_rotation, sigma=sigma
    )
    shift, rotation = _axis_from_line(float(intercept), float(slope), covariance, record)
    return shift, rotation, record


def find_tilt_axis(series: TiltSeries, *, channel: str | None = None) -> tuple[float, float, dict[str, Any]]:
    """The tilt axis by the first method that determines it, or the best values each method allows.

    Tries :func:`estimate_tilt_axis` (reconstruction residual), then
    :func:`tilt_axis_com` (centres of mass). When neither determines the axis,
    the rotation comes from :func:`tilt_axis_max_image` and the offset from
    the residual method's robust estimate (the median of the bands' offsets,
    uncertainty 1.4826 · MAD / √bands), each with its uncertainty, and
    ``record["note"]`` says why the others could not; ``record["determined"]``
    is then False, and components whose value lies within two uncertainties
    of zero are named in ``record["insignificant"]``.

    Returns
    -------
    axis_shift, axis_rotation : float
        Pixels and degrees, in the convention of :class:`Alignment`.
    record : dict
        ``method``, ``shift_uncertainty``, ``rotation_uncertainty`` (None when
        unknown), ``determined``, ``attempts`` (each method's record).
    """
    attempts: dict[str, dict[str, Any]] = {}
    for name, method in (("residual", estimate_tilt_axis), ("centre of mass", tilt_axis_com)):
        shift, rotation, record = method(series, channel=channel)
        attempts[name] = {k: v for k, v in record.items() if k != "residual_curves"}
        if record["determined"]:
            summary = {k: record[k] for k in ("shift_uncertainty", "rotation_uncertainty")}
            return shift, rotation, {"method": name, "determined": True, **summary, "attempts": attempts}
    _, rotation, record = tilt_axis_max_image(series, channel=channel)
    attempts["maximum image"] = record
    estimate = attempts["residual"].get("estimate")
    shift = float(estimate["shift"]) if estimate else 0.0
    shift_error = float(estimate["shift_uncertainty"]) if estimate else None
    rotation_error = record.get("rotation_uncertainty") if record["determined"] else None
    reasons = [attempts[name]["note"] for name in ("residual", "centre of mass")]
    if not record["determined"]:
        reasons.append(record["note"])
    values = {"shift": (shift, shift_error), "rotation": (rotation, rotation_error)}
    insignificant = [k for k, (v, e) in values.items() if e is None or abs(v) <= 2 * e]
    parts = [f"{k} {v:+.2f} ± {e:.2g}" if e is not None else f"{k} unknown" for k, (v, e) in values.items()]
    note = (
        f"tilt axis not determined by one method ({'; '.join(reasons)}); best values: {', '.join(parts)} "
        "(offset: median of the residual bands, rotation: maximum image)"
    )
    return (
        shift,
        rotation,
        {
            "method": "residual bands (offset) and maximum image (rotation)",
            "determined": False,
            "shift_uncertainty": shift_error,
            "rotation_uncertainty": rotation_error,
            "insignificant": insignificant,
            "note": note,
            "attempts": attempts,
        },
    )


def tilt_axis_max_image(
    series: TiltSeries,
    *,
    channel: str | None = None,
    limit: float = 10.0,
    delta: float = 0.1,
    peaks: int = 5,
) -> tuple[float, float, dict[str, Any]]:
    """In-plane rotation of the tilt axis from the maximum image over the tilts (offset: 0).

    Every feature moves across the tilt axis as the sample tilts, so the
    maximum over the tilts of the images (positions × slices) shows streaks
    perpendicular to the axis. Edges of that image (Sobel, then Canny) are
    searched for straight lines within ±``limit`` degrees of the positions
    direction (Hough transform, step ``delta`` degrees, ``peaks`` strongest
    lines); their mean angle is the rotation, their standard error (at least
    ``delta``) its uncertainty. Fewer than two lines: undetermined.
    """
    from skimage.feature import canny
    from skimage.filters import sobel
    from skimage.transform import hough_line, hough_line_peaks

    if not (limit > 0 and delta > 0 and peaks >= 1):
        raise ValueError(f"tilt_axis_max_image: limit {limit!r}, delta {delta!r} and peaks {peaks!r} must be positive")
    name = channel or (HAADF if series.has_haadf else None)
    data = np.asarray(series.channel(name), dtype=np.float64) if name else _reference(series, None)
    image = data.max(axis=0)  # (positions, slices): rows across the axis, columns along it
    top = float(image.max())
    edges = canny(sobel(image / top if top > 0 else image))
    trial = np.deg2rad(np.arange(-limit, limit + 1e-9, delta))
    accumulator, angles, distances = hough_line(edges, theta=trial)
    _, found, _ = hough_line_peaks(accumulator, angles, distances, num_peaks=peaks)
    record: dict[str, Any] = {"method": "maximum image", "channel": name or "sum of EDS lines", "limit_deg": limit}
    if found.size < 2:
        note = (
            f"tilt axis by maximum image undetermined: {found.size} straight streak(s) within ±{limit:g}° of the "
            "direction across the axis; rotation set to 0"
        )
        record.update(determined=False, note=note)
        return 0.0, 0.0, record
    degrees = np.degrees(found)
    # a line whose normal is at angle t to the rows direction runs at t to the columns: streaks across the axis
    # turned by t mean the axis (along the slices) is turned by the same t
    rotation = -float(np.mean(degrees))
    uncertainty = max(float(np.std(degrees, ddof=1)) / math.sqrt(degrees.size), delta)
    record.update(
        determined=True,
        line_angles_deg=degrees.tolist(),
        shift_uncertainty=None,
        rotation_uncertainty=uncertainty,
    )
    return 0.0, rotation, record
