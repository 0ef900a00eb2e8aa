"""Line intensities by fitting whole line families and the continuum to every pixel of a tilt series.

Window integration (:mod:`.linemaps`) cannot separate overlapping peaks (Co Kβ
under Ni Kα, Fe Kβ under Co Kα, Ba Lα under Ti Kα, Pt Mγ under S Kα). Here every
pixel's spectrum is modelled as a non-negative combination of family shapes
(every K, L or M line of an element, :mod:`.families`) plus a smooth continuum,
and the intensity of line A is the fitted family amplitude times the line's
share of the family — the counts of line A, as window integration meant to
measure, so the physics factor f_A applies unchanged.

The steps (:func:`fit_series`):

1. each tilt's spectrum image is kept as a sparse (pixels × channels) count
   matrix (:class:`SpectrumCube`); the spectra of all tilts are summed;
2. the summed spectrum fixes the model (:func:`~.spectrum_model.fit_summed_spectrum`):
   energy calibration and resolution, the families present, the continuum shape;
3. every pixel is fitted with that shared design ``D`` (channels × components:
   the families, and the summed continuum times three quadratic Bernstein
   polynomials over the energy range, so each pixel's continuum may tilt and
   bend) by weighted least squares, the weights ``1/m`` from the mean
   spectrum ``m`` per pixel (Poisson variances at the average pixel). Since
   ``D`` and the weights are shared, the normal equations need one sparse
   product ``b = Y W D`` and one Gram matrix ``G = Dᵀ W D`` for the whole
   tilt. ``b`` is smoothed over the scan with a Gaussian of σ = ``smooth``
   pixels when asked (the fit is linear, so this equals fitting smoothed
   spectra). The continuum coefficients are free (nuisance parameters,
   eliminated in closed form); the family amplitudes are constrained to be
   non-negative and found, all pixels at once, by coordinate descent on the
   reduced Gram matrix (:func:`~edstomo_microscope.nnls.nnls_gram`).

Without the non-negativity the fit is linear and unbiased: the per-pixel
amplitudes then sum exactly to the fit of the summed spectrum. The constraint,
like the clipping of window integration, adds a positive bias where a line is
absent at low counts; both sums are recorded (``counts`` and
``unconstrained_counts``) so the bias can be seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.sparse
from edstomo.errors import InputError
from edstomo.lines import parse_line
from scipy.special import comb

from .families import Family, element_families, families_of_lines, fwhm_kev
from .nnls import nnls_gram
from .spectrum_model import EnergyCalibration, SummedFit, fit_summed_spectrum

__all__ = [
    "DEFAULT_FWHM_MN_EV",
    "PixelModel",
    "SeriesFit",
    "SpectrumCube",
    "check_lines_in_range",
    "energy_axis",
    "fit_series",
    "fit_tilt",
    "metadata_resolution",
]

#: Resolution at Mn Kα (eV) assumed when the files do not give it (exSpy's default for TEM detectors).
DEFAULT_FWHM_MN_EV = 130.0
#: Default lowest energy fitted (keV): above the noise peak at 0 keV.
DEFAULT_LOW_KEV = 0.2
#: Families whose strongest line lies outside the fitted range, or that put less than this share of their
#: X-rays into it, are not modelled.
MIN_IN_RANGE = 0.01
#: Degree of the Bernstein polynomials that let each pixel's continuum change shape.
CONTINUUM_DEGREE = 2
_METADATA_RESOLUTION = ("TEM", "SEM")


def energy_axis(eds: Any, source: str) -> tuple[float, float, int]:
    """Offset (keV), channel width (keV) and channel count of a spectrum's energy axis.

    Raises
    ------
    InputError
        When the axis carries no energy calibration (units other than keV or
        eV, a non-uniform axis, or a width that is not positive), naming the file.
    """
    axis = eds.axes_manager.signal_axes[0]
    units = str(getattr(axis, "units", "")).strip()
    factor = {"keV": 1.0, "eV": 1e-3}.get(units)
    scale = float(getattr(axis, "scale", 0.0) or 0.0)
    if factor is None or not getattr(axis, "is_uniform", True) or not scale > 0:
        raise InputError(
            f"{source}: the spectrum has no energy calibration (energy axis units {units!r}, scale {scale!r}, "
            f"offset {getattr(axis, 'offset', None)!r}); expected a uniform axis in keV or eV — set it, e.g. "
            "with signal.axes_manager.signal_axes[0].units/scale/offset, before loading"
        )
    return float(axis.offset) * factor, scale * factor, int(axis.size)


def metadata_resolution(eds: Any) -> float | None:
    """``energy_resolution_MnKa`` (eV) of a HyperSpy EDS signal's metadata, or None."""
    for instrument in _METADATA_RESOLUTION:
        path = f"Acquisition_instrument.{instrument}.Detector.EDS.energy_resolution_MnKa"
        if eds.metadata.has_item(path):
            try:
                value = float(eds.metadata.get_item(path))
            except (TypeError, ValueError):
                continue
            if np.isfinite(value) and value > 0:
                return value
    return None


def _sparse_counts(counts: np.ndarray) -> scipy.sparse.csr_matrix:
    """A (pixels, channels) count array as a float32 CSR matrix (built from its non-zeros in one pass)."""
    pixels, channels = counts.shape
    flat = np.ascontiguousarray(counts).ravel()
    where = np.flatnonzero(flat != 0)  # on a boolean array: twice as fast as on the counts themselves
    indptr = np.zeros(pixels + 1, dtype=np.int64)
    np.cumsum(np.bincount(where // channels, minlength=pixels), out=indptr[1:])
    return scipy.sparse.csr_matrix(
        (flat[where].astype(np.float32), (where % channels).astype(np.int32), indptr), shape=(pixels, channels)
    )


@dataclass
class SpectrumCube:
    """One tilt's spectrum image as a sparse count matrix.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix
        Counts, shape (pixels, channels), pixels in row-major (rows, columns) order.
    shape : (int, int)
        (rows, columns) of the scan.
    offset_kev, scale_kev : float
        The file's energy axis: centre of channel 0 and channel width (keV).
    source : str
        The file (and stack index).
    sample_elements : tuple of str
        ``metadata.Sample.elements`` of the file.
    fwhm_mn_ev : float or None
        ``energy_resolution_MnKa`` of the file's metadata (eV), if any.
    """

    counts: scipy.sparse.csr_matrix
    shape: tuple[int, int]
    offset_kev: float
    scale_kev: float
    source: str
    sample_elements: tuple[str, ...] = ()
    fwhm_mn_ev: float | None = None

    @classmethod
    def from_signal(cls, eds: Any, source: str) -> SpectrumCube:
        """The cube of a HyperSpy EDS spectrum image with two navigation axes."""
        offset, scale, channels = energy_axis(eds, source)
        data = np.asarray(eds.data)
        if data.ndim != 3:
            raise InputError(f"{source}: expected a spectrum image (rows, columns, channels), got shape {data.shape}")
        unsigned = np.issubdtype(data.dtype, np.unsignedinteger)  # counts as most files store them: no check needed
        if not unsigned and data.size and (not np.all(np.isfinite(data)) or data.min() < 0):
            raise InputError(f"{source}: the spectrum image holds negative or non-finite counts")
        rows, columns = data.shape[:2]
        matrix = _sparse_counts(data.reshape(rows * columns, channels))
        sample = eds.metadata.get_item("Sample.elements") if eds.metadata.has_item("Sample.elements") else []
        return cls(matrix, (rows, columns), offset, scale, source, tuple(sample), metadata_resolution(eds))

    @property
    def channels(self) -> int:
        return int(self.counts.shape[1])

    def summed(self) -> np.ndarray:
        """The spectrum summed over the scan (counts per channel)."""
        return np.asarray(self.counts.sum(axis=0), dtype=np.float64).ravel()


@dataclass
class PixelModel:
    """The design shared by every pixel of a series, and its normal-equation matrices.

    Attributes
    ----------
    families : list of Family
        Families of the model (columns ``0 … F-1`` of ``design``).
    design : ndarray
        (channels, F + C): family shapes, then the continuum columns; zero outside the fitted range.
    weights : ndarray
        Channel weights (1 / mean counts per pixel; 0 outside the fitted range).
    line_columns : dict of str to (int, float)
        Family column and share of each requested line.
    """

    families: list[Family]
    design: np.ndarray
    weights: np.ndarray
    line_columns: dict[str, tuple[int, float]]

    def __post_init__(self) -> None:
        weighted = self.design * self.weights[:, None]
        gram = self.design.T @ weighted
        f = len(self.families)
        self.weighted_design = weighted
        g_ff, g_fc, g_cc = gram[:f, :f], gram[:f, f:], gram[f:, f:]
        # continuum c = G_cc⁻¹ (b_c − G_cf x): eliminating it leaves a Gram matrix for the families alone
        self.elimination = np.linalg.lstsq(g_cc, g_fc.T, rcond=None)[0]  # (C, F)
        self.reduced_gram = g_ff - g_fc @ self.elimination
        self.continuum_gram = g_cc
        self.coupling = g_fc

    @property
    def n_families(self) -> int:
        return len(self.families)


def pixel_model(fit: SummedFit, channels: int, pixels: int) -> PixelModel:
    """The per-pixel design from a summed-spectrum fit over ``pixels`` pixels in all."""
    window = fit.fit_range
    edges = fit.calibration.edges(channels)
    columns = [family.spectrum(edges, fit.calibration.fwhm_mn_ev) for family in fit.families]
    energies = fit.energies
    t = (energies - energies[0]) / max(energies[-1] - energies[0], 1e-12)
    for k in range(CONTINUUM_DEGREE + 1):
        column = np.zeros(channels)
        column[window] = fit.continuum * comb(CONTINUUM_DEGREE, k) * t**k * (1 - t) ** (CONTINUUM_DEGREE - k)
        columns.append(column)
    design = np.stack(columns, axis=1)
    design[: window.start] = 0.0
    design[window.stop :] = 0.0
    mean = fit.model / pixels
    weights = np.zeros(channels)
    weights[window] = 1.0 / np.maximum(mean, 1e-3 * max(mean.mean(), 1e-12))
    index = {f.name: i for i, f in enumerate(fit.families)}
    by_name = {f.name: f for f in fit.families}
    line_columns = {
        line: (index[name], by_name[name].share(line)) for line, name in families_of_lines(fit.lines).items()
    }
    return PixelModel(list(fit.families), design, weights, line_columns)


def fit_tilt(cube: SpectrumCube, model: PixelModel, smooth: float = 0.0) -> tuple[dict[str, np.ndarray], dict]:
    """Line maps of one tilt: family amplitudes of every pixel × the line's share.

    Returns
    -------
    maps : dict of str to ndarray
        Counts of each requested line, shape (rows, columns), non-negative.
    record : dict
        Per line: ``counts`` (sum of the map), ``unconstrained_counts`` (sum
        without the non-negativity), ``zero_pixels`` (pixels where the
        family's amplitude is 0); and ``chi2_reduced`` of the tilt's summed spectrum.
    """
    rows, columns = cube.shape
    f = model.n_families
    b = np.asarray(cube.counts @ model.weighted_design, dtype=np.float64).reshape(rows, columns, -1)
    if smooth > 0:
        b = scipy.ndimage.gaussian_filter(b, (smooth, smooth, 0), mode="nearest")
    b = b.reshape(rows * columns, -1)
    b_families = b[:, :f] - b[:, f:] @ model.elimination
    amplitudes = nnls_gram(model.reduced_gram, b_families)
    unconstrained = np.linalg.lstsq(model.reduced_gram, b_families.sum(axis=0), rcond=None)[0]
    continuum = np.linalg.lstsq(
        model.continuum_gram, b[:, f:].sum(axis=0) - model.coupling.T @ amplitudes.sum(axis=0), rcond=None
    )[0]
    summed_model = model.design @ np.concatenate([amplitudes.sum(axis=0), continuum])
    summed = cube.summed()
    inside = model.weights > 0
    chi2 = float(np.sum((summed - summed_model)[inside] ** 2 / np.maximum(summed_model[inside], 1.0)) / inside.sum())
    maps: dict[str, np.ndarray] = {}
    record: dict[str, Any] = {"chi2_reduced": round(chi2, 4), "lines": {}}
    for line, (column, share) in model.line_columns.items():
        maps[line] = (share * amplitudes[:, column]).reshape(rows, columns)
        record["lines"][line] = {
            "counts": float(maps[line].sum()),
            "unconstrained_counts": float(share * unconstrained[column]),
            "zero_pixels": int(np.count_nonzero(amplitudes[:, column] == 0)),
        }
    return maps, record


@dataclass
class SeriesFit:
    """Line maps of every tilt and the record of the fit.

    Attributes
    ----------
    maps : list of dict
        Per tilt (in the order of the cubes), counts of each line (rows, columns).
    records : list of dict
        Per tilt, see :func:`fit_tilt`.
    summed : SummedFit
        The fit of the summed spectrum.
    notes : list of str
        Sentences for the user (assumed resolution, skipped elements, calibration, unexplained peaks).
    beam_energy_kev, yields, smooth
        The options of :func:`fit_series` used (recorded so the figure can redraw the families).
    """

    maps: list[dict[str, np.ndarray]]
    records: list[dict[str, Any]]
    summed: SummedFit
    notes: list[str]
    beam_energy_kev: float
    yields: str | Mapping[str, str]
    smooth: float

    def record(self) -> dict[str, Any]:
        """A JSON-compatible record for the provenance."""
        return {
            **self.summed.record(),
            "beam_energy_kev": self.beam_energy_kev,
            "yields": self.yields,
            "smooth": self.smooth,
            "notes": list(self.notes),
            "tilts": self.records,
        }


def _common_axis(cubes: Sequence[SpectrumCube]) -> tuple[float, float, int]:
    first = cubes[0]
    for cube in cubes[1:]:
        if (
            cube.channels != first.channels
            or abs(cube.offset_kev - first.offset_kev) > 1e-6
            or abs(cube.scale_kev - first.scale_kev) > 1e-9 * abs(first.scale_kev)
        ):
            raise InputError(
                f"spectra: {cube.source} has the energy axis {cube.offset_kev:g} keV + {cube.scale_kev:g} keV × "
                f"{cube.channels} channels, {first.source} {first.offset_kev:g} keV + {first.scale_kev:g} keV × "
                f"{first.channels}; a series must share one energy axis"
            )
    return first.offset_kev, first.scale_kev, first.channels


def _resolution(cubes: Sequence[SpectrumCube], given: float | None, notes: list[str]) -> float:
    if given is not None:
        if not (isinstance(given, (int, float)) and np.isfinite(given) and given > 0):
            raise InputError(f"fwhm_mn_ev: {given!r} must be a positive resolution in eV (FWHM at Mn Kα)")
        return float(given)
    found = {c.fwhm_mn_ev for c in cubes if c.fwhm_mn_ev is not None}
    if not found:
        notes.append(
            f"detector resolution: not in the files; {DEFAULT_FWHM_MN_EV:g} eV at Mn Kα assumed "
            "as the starting value of the fit"
        )
        return DEFAULT_FWHM_MN_EV
    return float(np.median(sorted(found)))


def check_lines_in_range(lines: Sequence[str], window: tuple[float, float], fwhm_mn_ev: float, where: str) -> None:
    """Raise InputError unless every line lies inside ``window`` (keV) with a margin of one FWHM.

    ``where`` names the range in the message, e.g. ``"the spectrum of tilt_+10.hspy"``.
    """
    low, high = window
    for line in lines:
        energy = parse_line(line).energy_kev
        margin = float(fwhm_kev(energy, fwhm_mn_ev))
        if not (low + margin <= energy <= high - margin):
            raise InputError(
                f"lines: {line} ({energy:.3f} keV) lies outside {where}, {low:.3f}–{high:.3f} keV, with a margin "
                f"of one FWHM ({1e3 * margin:.0f} eV); choose lines inside it or widen the spectrum (cutoff_at_kV)"
            )


def _fit_range(
    calibration: EnergyCalibration, channels: int, lines: Sequence[str], given: tuple[float, float] | None, source: str
) -> slice:
    centres = calibration.centres(channels)
    axis_low, axis_high = float(centres[0]), float(centres[-1])
    if given is not None:
        low, high = (float(v) for v in given)
        if not (low < high):
            raise InputError(f"energy_range: {given!r} must be (low, high) in keV with low < high")
    else:
        low, high = DEFAULT_LOW_KEV, axis_high
    low, high = max(low, axis_low), min(high, axis_high)
    check_lines_in_range(lines, (low, high), calibration.fwhm_mn_ev, f"the energy range fitted of {source}")
    start = int(np.searchsorted(centres, low))
    stop = int(np.searchsorted(centres, high, side="right"))
    return slice(start, stop)


def _modelled(family: Family, low: float, high: float) -> bool:
    """Whether a family is modelled in [low, high] keV: its strongest line inside, enough of its X-rays too."""
    return low <= family.energy_kev <= high and family.weight_between(low, high) >= MIN_IN_RANGE


def _candidate_families(
    lines: Sequence[str],
    user_elements: Iterable[str],
    sample_elements: Iterable[str],
    beam_energy_kev: float,
    window: tuple[float, float],
    yields: str | Mapping[str, str],
    notes: list[str],
) -> list[Family]:
    requested = families_of_lines(lines)
    low, high = window
    candidates: dict[str, Family] = {}
    for group, elements in (("lines", [parse_line(line).element for line in lines]), ("elements", user_elements)):
        for element in elements:
            families = element_families(element, beam_energy_kev, yields=yields)
            inside = [f for f in families if _modelled(f, low, high)]
            if group == "elements" and not inside:
                raise InputError(
                    f"elements: {element} has no X-ray line in the fitted energy range {low:.3f}–{high:.3f} keV "
                    f"at {beam_energy_kev:g} keV (its families: "
                    + ", ".join(f"{f.name} at {f.energy_kev:.3f} keV" for f in families)
                    + "); leave it out or widen the range"
                )
            candidates.update({f.name: f for f in inside})
    for line, name in requested.items():
        if name not in candidates:
            raise InputError(
                f"lines: {line} is not excited at the beam energy {beam_energy_kev:g} keV or has no line in "
                f"{low:.3f}–{high:.3f} keV"
            )
    skipped = []
    for element in sorted(set(sample_elements)):
        families = element_families(element, beam_energy_kev, yields=yields)
        inside = [f for f in families if _modelled(f, low, high)]
        if not inside:
            skipped.append(element)
        candidates.update({f.name: f for f in inside if f.name not in candidates})
    if skipped:
        notes.append(f"Sample.elements {skipped} have no line in the fitted range; not modelled")
    return list(candidates.values())


def fit_series(
    cubes: Sequence[SpectrumCube],
    lines: Sequence[str],
    *,
    beam_energy_kev: float,
    elements: Iterable[str] = (),
    smooth: float = 0.0,
    fwhm_mn_ev: float | None = None,
    energy_range: tuple[float, float] | None = None,
    yields: str | Mapping[str, str] = "auto",
    refine: bool = True,
) -> SeriesFit:
    """Line maps of every tilt of a series by family fitting (see the module docstring).

    Parameters
    ----------
    cubes : list of SpectrumCube
        The tilts' spectrum images (one energy axis for all).
    lines : list of str
        Lines to map.
    beam_energy_kev : float
        Beam energy (keV): which shells are excited and the weights of L and M lines.
    elements : iterable of str
        Elements expected besides those of ``lines`` and of the files' ``Sample.elements``;
        they are modelled so their peaks are not counted in the requested lines.
    smooth : float
        σ (pixels) of a Gaussian over the scan applied before the non-negative solve; 0 for none.
    fwhm_mn_ev : float, optional
        Detector resolution at Mn Kα (eV); default from the files, else 130 eV. Refined on the summed spectrum.
    energy_range : (low, high), optional
        Energies fitted (keV); default from 0.2 keV to the end of the spectrum.
    yields : {"auto", "xraylib", "eadl"} or dict
        Atomic data of the family shapes (see :func:`~edstomo_microscope.families.element_families`).
    refine : bool
        Refine the energy calibration and resolution on the summed spectrum.

    Raises
    ------
    InputError
        For spectra without energy calibration or with different axes, a line
        outside the fitted range, an element with no line in it.
    """
    if not cubes:
        raise InputError("spectra: no spectrum image to fit")
    if not (isinstance(smooth, (int, float)) and np.isfinite(smooth) and smooth >= 0):
        raise InputError(f"smooth: {smooth!r} must be a non-negative number of pixels")
    for line in lines:
        parse_line(line)
    notes: list[str] = []
    offset, scale, channels = _common_axis(cubes)
    calibration = EnergyCalibration(offset, scale, _resolution(cubes, fwhm_mn_ev, notes))
    window = _fit_range(calibration, channels, lines, energy_range, cubes[0].source)
    centres = calibration.centres(channels)
    families = _candidate_families(
        lines,
        list(elements),
        {e for cube in cubes for e in cube.sample_elements},
        beam_energy_kev,
        (float(centres[window.start]), float(centres[window.stop - 1])),
        yields,
        notes,
    )
    total = np.sum([cube.summed() for cube in cubes], axis=0)
    summed = fit_summed_spectrum(
        total,
        calibration,
        lines,
        families,
        fit_range=window,
        beam_energy_kev=beam_energy_kev,
        refine=refine,
    )
    notes.extend(summed.notes)
    pixels = sum(int(np.prod(cube.shape)) for cube in cubes)
    model = pixel_model(summed, channels, pixels)
    maps, records = [], []
    for cube in cubes:
        tilt_maps, record = fit_tilt(cube, model, smooth)
        maps.append(tilt_maps)
        records.append({"source": cube.source, **record})
    return SeriesFit(maps, records, summed, notes, float(beam_energy_kev), yields, float(smooth))
