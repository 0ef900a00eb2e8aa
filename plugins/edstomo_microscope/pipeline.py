"""The whole chain for real data: files → line maps → alignment → reconstruction → weight fractions.

:func:`run_pipeline` runs these named stages (:data:`STAGES`), timing each one;
each stage is a function of a :class:`PipelineState` that adds its products:

1. ``load`` — :func:`~edstomo_microscope.loading.load_tilt_series` (line maps, metadata, angles),
   skipped when the line maps are given as a :class:`~edstomo.data.TiltSeries`;
2. ``align`` — HAADF-to-EDS shifts, tilt-series shifts and tilt axis
   (:mod:`~edstomo_microscope.alignment`), or a saved/hand-made alignment;
3. ``preprocess`` — per-tilt normalisation (``"equal"``: the paper's equal
   total per tilt; ``"slab"``: totals ∝ 1/cos θ, right for a section wider than
   the field of view; ``"none"``) and an optional Gaussian filter of the EDS
   sinograms (:mod:`edstomo.preprocessing`);
4. ``physics`` — f_A and z_A at the data's beam energy (physics plugin, default: the registry's default);
5. ``reconstruct`` — one volume per solver of ``options.solvers`` (default: the
   default solver that needs only EDS lines and, when the series has a HAADF
   channel, the default one that needs lines and HAADF), each named after its
   solver.  The sinograms are first padded along the positions by ``pad`` ×
   positions on each side with their edge values, and the volumes cropped back
   to the field of view: a section wider than the field of view puts material
   into the tilted rays that the field of view does not hold, and without room
   for it the reconstruction piles it up at the grid's edges and corners.
   Solvers that take response ratios get them either from the physics
   (``ratios="physics"``: r_A = c·z_A/f_A, eq. 16, one constant c fitted by
   least squares, so that their maps quantify consistently with eq. 18) or
   fitted freely (``"fit"``: non-negative least squares, eq. 15, as the paper
   did).  Solvers that need counts (``"counts"`` in their ``requires``, e.g. ``poisson-tv``) get
   ``counts="scaled"``: the line maps here are background-subtracted, smoothed and
   normalised, so they are proportional to counts but not counts.  The solves run
   ``options.chunk_slices`` slices at a time (:mod:`.slicewise`), or with
   ``dask=DaskOptions(...)`` in slice chunks on a Dask cluster (same results, see
   :class:`DaskOptions`); with an output folder the volumes go to their files as
   they are made, not into memory;
6. ``quantify`` — weight fractions by the quantifier that accepts each volume's
   map factor (``Volume.factor``, declared by the solver): ESF threshold, with
   the quantifiers' ``fallback="otsu"`` (when the volume curve has no plateau,
   as for a section that fills the field of view, Otsu's threshold of the
   summed map instead, recorded in the provenance and in a note);
7. ``absorption`` — with ``options.absorption``: each method's maps corrected
   for X-ray absorption in the specimen (:mod:`edstomo.absorption`, with the
   solver's automatic choices made once in ``reconstruct``); the uncorrected
   maps are kept as ``<method>-uncorrected``;
8. ``uncertainty`` — with ``options.uncertainty`` replicas: bootstrap error bars
   of each method's maps (the corrected ones after ``absorption``), see
   :mod:`~edstomo_microscope.errorbars`;
9. ``compare`` — how far the first two methods agree, per element, and where each element is;
10. ``export`` and ``pictures`` when an output folder is given.

Progress is reported as ``progress(stage, done, total)``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edstomo import provenance
from edstomo.data import HAADF, CompositionMaps, TiltSeries, Volume, load
from edstomo.distributed import DEFAULT_CHUNK_SLICES
from edstomo.errors import InputError
from edstomo.factors import PhysicsFactors
from edstomo.interfaces import Solver
from edstomo.io import atomic_write_text
from edstomo.preprocessing import ResponseRatios, gaussian_filter, normalise_tilts, response_ratios
from edstomo.registry import plugins
from edstomo.stored import Stored
from edstomo.threshold import MaskWarning
from edstomo.units import as_beam_energy, as_quantity, shown

from . import reader, statistics
from .alignment import Alignment, apply_alignment, estimate_tilt_axis, haadf_eds_shifts, series_shifts
from .errorbars import smoothing_dispersion
from .loading import DEFAULT_LINES, INTENSITY_METHODS, load_tilt_series
from .quiet import collected_notes
from .slicewise import DEFAULT_CHUNK_SLICES as SLICES_IN_PROCESS
from .slicewise import (
    DaskRunner,
    Products,
    Runner,
    crop_volume,
    dask_runner,
    pad_positions,
    quantify_in_slices,
    reuse_in_slices,
    solve_in_slices,
    solve_on_dask,
)

if TYPE_CHECKING:
    from edstomo.absorption import CorrectionResult

__all__ = [
    "DaskOptions",
    "PipelineOptions",
    "PipelineResult",
    "compare_maps",
    "crop_volume",
    "method_of",
    "normalise",
    "pad_positions",
    "physics_ratios",
    "quantify_saved",
    "quantify_volumes",
    "run_pipeline",
]

Progress = Callable[[str, int, int], None]

NORMALISATIONS = ("equal", "slab", "none")
RATIO_MODES = ("physics", "fit")
HAADF_EDS_METHODS = ("none", "com", "xcorr")
SERIES_METHODS = ("xcorr", "stackreg", "com", "none")
AXIS_METHODS = ("auto", "none")


#: Iterations the pipeline asks of iterative solvers that cannot choose them from the data, by what the
#: solver needs: EDS-only reconstructions stop earlier (their noise grows sooner) than bimodal ones.
DEFAULT_ITERATIONS: dict[frozenset[str], int] = {frozenset({"lines"}): 50, frozenset({"lines", "haadf"}): 100}

#: Slices on which the pipeline's automatic choices are made (evenly spaced; the choice is made once, on them).
AUTO_SLICES = 8


@dataclass
class PipelineOptions:
    """Every choice of the pipeline, with defaults (stored in the provenance and ``summary.json``).

    Loading: ``lines``, ``rebin``, ``crop`` (y0, y1, x0, x1 original pixels),
    ``angles`` (a quantity, in file order), ``tilt_axis``, ``intensities`` ("fit":
    line families and continuum fitted to every pixel, or "window": window
    integration), ``smooth`` (σ pixels of the Gaussian applied to the maps, or
    to the fit's normal equations, before negative values are removed),
    ``background``, ``integration_width``, ``background_windows`` (window
    integration) and ``load_options`` (further keywords of
    :func:`load_tilt_series`, e.g. ``probe_current``, ``elements``, ``line_fit``).
    Alignment: ``haadf_eds`` (none/com/xcorr), ``series`` (xcorr/com/none),
    ``axis`` (auto/none), ``alignment`` (a saved alignment file, used instead of estimating).
    Preprocessing: ``normalise`` (equal/slab/none), ``sinogram_sigma`` (pixels; 0 for none).
    Physics: ``physics`` (plugin name; None: the default), ``physics_options``.
    Reconstruction: ``solvers`` (plugin names; None: the default EDS-only solver and,
    with a HAADF channel, the default bimodal one), ``solver_options`` (``{solver: {option:
    value}}``; every option a solver can choose from the data (its ``auto_options``, e.g.
    ``iterations`` and HEBT's ``alpha``) is ``"auto"`` unless given, chosen on
    :data:`AUTO_SLICES` slices with the dispersion of the smoothed line maps
    (:func:`~edstomo_microscope.errorbars.smoothing_dispersion`); iterative solvers that cannot
    choose get ``iterations`` from :data:`DEFAULT_ITERATIONS`), ``ratios`` (physics/fit: response
    ratios for solvers that take them), ``pad`` (fraction of the positions added on each side before
    reconstruction).
    Quantification: ``threshold``: "esf" (automatic) or, per method (the solver that made
    the volume), ``{"sirt": 0.5, "hebt-sirt": "esf"}`` (methods left out use "esf"); a single
    number only when one method is quantified, since the summed maps of EDS-scale and
    HAADF-scale reconstructions differ by orders of magnitude. ``uncertainty`` (bootstrap
    replicas for per-voxel error bars and intervals of the particle means, 0: none, else >= 2)
    and ``seed`` (of the bootstrap), see :mod:`edstomo_microscope.errorbars`.
    Memory: ``chunk_slices``, the slices solved and quantified together in this process
    (the results do not depend on it; with an output folder, volumes and maps go to their
    files piece by piece instead of being held in memory, see :mod:`.slicewise`).

    Every option is checked when the options are made, before any file is read: the
    solvers' options by making the solvers.
    """

    lines: Sequence[str] = DEFAULT_LINES
    rebin: int = 2
    crop: tuple[int, int, int, int] | None = None
    angles: Any = None
    tilt_axis: str = "vertical"
    intensities: str = "fit"
    smooth: float = 1.0
    background: bool = True
    integration_width: float = 2.0
    background_windows: Mapping[str, Sequence[float]] | None = None
    load_options: Mapping[str, Any] = field(default_factory=dict)
    haadf_eds: str = "none"
    series: str = "xcorr"
    axis: str = "auto"
    alignment: str | None = None
    normalise: str = "equal"
    sinogram_sigma: float = 0.0
    physics: str | None = None
    physics_options: Mapping[str, Any] = field(default_factory=dict)
    solvers: Sequence[str] | None = None
    solver_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ratios: str = "physics"
    pad: float = 0.25
    threshold: float | str | Mapping[str, float | str] = "esf"
    uncertainty: int = 0
    seed: int = 0
    absorption: Mapping[str, Any] | None = None
    chunk_slices: int = SLICES_IN_PROCESS

    def __post_init__(self) -> None:
        self.lines = list(self.lines)
        choices = {
            "intensities": INTENSITY_METHODS,
            "normalise": NORMALISATIONS,
            "ratios": RATIO_MODES,
            "haadf_eds": HAADF_EDS_METHODS,
            "series": SERIES_METHODS,
            "axis": AXIS_METHODS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: {getattr(self, name)!r} must be one of {allowed}")
        if isinstance(self.rebin, bool) or not isinstance(self.rebin, (int, np.integer)) or self.rebin < 1:
            raise ValueError(f"rebin: {self.rebin!r} must be an integer >= 1")
        if not (isinstance(self.pad, (int, float)) and 0 <= self.pad <= 2):
            raise ValueError(f"pad: {self.pad!r} must be a fraction of the positions in [0, 2]")
        if isinstance(self.chunk_slices, bool) or not isinstance(self.chunk_slices, (int, np.integer)):
            raise ValueError(f"chunk_slices: {self.chunk_slices!r} must be a positive integer (slices)")
        if self.chunk_slices < 1:
            raise ValueError(f"chunk_slices: {self.chunk_slices!r} must be a positive integer (slices)")
        if isinstance(self.uncertainty, bool) or not isinstance(self.uncertainty, (int, np.integer)):
            raise ValueError(f"uncertainty: {self.uncertainty!r} must be an integer number of bootstrap replicas")
        if self.uncertainty == 1 or self.uncertainty < 0:
            raise ValueError(f"uncertainty: {self.uncertainty!r} replicas; give 0 (none) or at least 2")
        if not (isinstance(self.sinogram_sigma, (int, float)) and self.sinogram_sigma >= 0):
            raise ValueError(f"sinogram_sigma: {self.sinogram_sigma!r} must be a non-negative number of pixels")
        if self.solvers is not None:
            self.solvers = list(self.solvers)
            if not self.solvers or len(set(self.solvers)) != len(self.solvers):
                raise ValueError(f"solvers: {self.solvers} must be a non-empty list of distinct solver names")
        unused = [name for name in self.solver_options if self.solvers is not None and name not in self.solvers]
        if unused:
            raise ValueError(f"solver_options: given for {unused}, which are not among the solvers {self.solvers}")
        _check_number("smooth", self.smooth, ">= 0 (pixels)", lambda v: v >= 0)
        _check_load_values(self.load_options)
        _check_threshold_values(self.threshold)
        if self.absorption is not None:
            unknown = set(self.absorption) - {"density", "tolerance", "max_iterations"}
            if unknown:
                raise ValueError(
                    f"absorption: unknown keys {sorted(unknown)}; allowed: density, tolerance, max_iterations"
                )
        for cls, options in self.solver_plans(has_haadf=True):  # every solver option, before any file is read
            cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return provenance.jsonable(asdict(self))

    def solver_plans(self, has_haadf: bool) -> list[tuple[type[Solver], dict[str, Any]]]:
        """The solver classes to run and their options (validated when the solvers are made)."""
        if self.solvers is None:
            needs = [frozenset({"lines"})] + ([frozenset({"lines", "haadf"})] if has_haadf else [])
            classes = [plugins.default("solver", need) for need in needs]
        else:
            classes = [plugins.solver(name) for name in self.solvers]
        plans = []
        for cls in classes:
            options = dict(self.solver_options.get(cls.name, {}))
            automatic = [name for name in getattr(cls, "auto_options", {}) if name in cls.Options.model_fields]
            for name in automatic:
                options.setdefault(name, "auto")
            if automatic and "selection" in cls.Options.model_fields:
                dispersion = smoothing_dispersion(self.smooth, self.sinogram_sigma)
                options.setdefault("selection", {"slices": AUTO_SLICES, "dispersion": dispersion})
            if "iterations" in cls.Options.model_fields and cls.requires in DEFAULT_ITERATIONS:
                options.setdefault("iterations", DEFAULT_ITERATIONS[cls.requires])
            plans.append((cls, options))
        return plans


def _check_number(name: str, value: Any, expected: str, test: Callable[[float], bool]) -> None:
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (number and np.isfinite(value) and test(float(value))):
        raise InputError(f"{name}: {value!r} must be a number {expected}")


#: Acquisition values that may replace the metadata (``load_options``), their unit and largest value.
_LOAD_VALUES = {
    "pixel_size": ("nm", None),
    "probe_current": ("pA", None),
    "dwell_time": ("s", None),
    "solid_angle": ("sr", 4 * np.pi),
}


def _check_load_values(options: Mapping[str, Any]) -> None:
    """Given acquisition values: the right unit, positive and finite (beam energy: an energy or a voltage)."""
    for name, value in options.items():
        if value is None:
            continue
        if name == "beam_energy":
            quantity, unit, largest = as_beam_energy(value, name)[0], "keV", None
        elif name in _LOAD_VALUES:
            unit, largest = _LOAD_VALUES[name]
            quantity = as_quantity(value, unit, name)
        else:
            continue
        magnitude = np.asarray(quantity.m_as(unit), dtype=float)
        if magnitude.ndim or not np.isfinite(magnitude) or magnitude <= 0:
            raise InputError(f"{name}: {shown(value)} must be one positive, finite value (in {unit})")
        if largest is not None and magnitude > largest:
            raise InputError(f"{name}: {shown(value)} exceeds {largest:.4g} {unit}")


def _threshold_value(method: str, value: Any) -> float | str:
    """``"esf"`` or a finite number >= 0 (a string holding one is read)."""
    if isinstance(value, str) and value.strip().lower() == "esf":
        return "esf"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"threshold: {method}={value!r} must be 'esf' or a number >= 0") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"threshold: {method}={value!r} must be 'esf' or a number >= 0")
    if not (np.isfinite(value) and value >= 0):
        raise InputError(f"threshold: {method}={value!r} must be 'esf' or a finite number >= 0")
    return float(value)


def _check_threshold_values(threshold: Any) -> None:
    """The values of a threshold option (which methods exist is known only later)."""
    if isinstance(threshold, Mapping):
        for method, value in threshold.items():
            _threshold_value(str(method), value)
    else:
        _threshold_value("threshold", threshold)


def thresholds_for(threshold: Any, methods: Sequence[str]) -> dict[str, float | str]:
    """The particle threshold of each method quantified (a method is the solver that made the volume).

    Parameters
    ----------
    threshold
        ``"esf"``; a mapping ``{method: "esf" or number >= 0}`` (methods left
        out use ``"esf"``); or one number, accepted only when a single method
        is quantified.
    methods
        The methods that will be quantified.

    Raises
    ------
    InputError
        A method that is not quantified, a value that is not "esf" or a finite
        number >= 0, or one number for several methods (their summed maps differ in scale).
    """
    methods = list(methods)
    if isinstance(threshold, Mapping):
        unknown = [m for m in threshold if m not in methods]
        if unknown:
            raise InputError(
                f"threshold: given for {unknown}, which are not among the methods quantified {methods}; "
                "a threshold for a method that is not used is a mistake"
            )
        return {m: _threshold_value(m, threshold.get(m, "esf")) for m in methods}
    if isinstance(threshold, str) and threshold.strip().lower() == "esf":
        return dict.fromkeys(methods, "esf")
    value = _threshold_value("threshold", threshold)
    if len(methods) > 1:
        raise InputError(
            f"threshold: one value ({threshold!r}) for the {' and '.join(methods)} maps; their summed maps "
            "S = Σ X_A/g_A are on different scales (g_A = f_A or z_A), so give one per method, e.g. "
            f"--threshold {methods[0]}=VALUE --threshold {methods[1]}=VALUE"
        )
    return dict.fromkeys(methods, value)


@dataclass(frozen=True)
class DaskOptions:
    """Run the reconstructions and the quantification in slice chunks on a Dask cluster.

    The pipeline then writes the padded, preprocessed tilt series the solvers
    see to ``tilt_series_padded.h5`` in the output folder; each task solves a
    chunk with the same solvers and the response ratios fitted once to the
    whole series and returns it cropped to the field of view, and the pieces go
    into ``volume_<solver>.h5`` as they arrive (:func:`.slicewise.solve_on_dask`);
    the quantification's pieces are tasks too (:func:`.slicewise.quantify_in_slices`).
    The results equal those of the in-process run. The output folder must be
    visible to every worker. One cluster serves the whole run.

    Attributes
    ----------
    scheduler : str, optional
        Address of a running Dask scheduler; None starts a ``LocalCluster``.
    chunk_slices : int
        Slices per task.
    workers : int
        Workers of the local cluster.
    processes : bool
        Local workers as processes (True) or threads of this process.
    """

    scheduler: str | None = None
    chunk_slices: int = DEFAULT_CHUNK_SLICES
    workers: int = 1
    processes: bool = True

    def __post_init__(self) -> None:
        for name in ("chunk_slices", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {value!r} must be a positive integer")
        if self.scheduler is not None and not (isinstance(self.scheduler, str) and self.scheduler):
            raise ValueError(f"scheduler: {self.scheduler!r} must be a scheduler address such as tcp://host:8786")


@dataclass
class PipelineResult:
    """What the pipeline produced (all in memory; ``files`` lists what was written)."""

    options: PipelineOptions
    raw: TiltSeries
    alignment: Alignment
    series: TiltSeries
    factors: PhysicsFactors
    ratios: ResponseRatios
    ratio_fits: dict[str, dict[str, Any]]
    volumes: dict[str, Volume]
    maps: dict[str, CompositionMaps]
    comparison: dict[str, dict[str, float]]
    findings: dict[str, Any]
    timings: dict[str, float]
    notes: list[str]
    files: list[str] = field(default_factory=list)
    solvers: dict[str, Solver] = field(default_factory=dict)
    uncertainty: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-compatible summary: options, timings, notes, fits, comparison and findings."""
        load = _load_parameters(self.raw)
        return provenance.jsonable(
            {
                "options": self.options.to_dict(),
                "shape_raw": list(self.raw.shape),
                "shape_aligned": list(self.series.shape),
                "channels": self.series.channels,
                "angles_deg": self.series.angles.m_as("deg").tolist(),
                "angle_source": load.get("angle_source"),
                "pixel_size": str(self.series.pixel_size),
                "values": load.get("values"),
                "intensities": load.get("intensities"),
                "line_windows": load.get("line_windows"),
                "line_fit": {k: v for k, v in load.get("line_fit", {}).items() if k not in ("spectrum", "tilts")},
                "alignment": self.alignment.to_dict(),
                "physics": self.factors.to_dict(),
                "response_ratios": self.ratio_fits,
                "thresholds": {name: _header(self.maps, name).threshold for name in self.maps},
                "comparison": {"methods": list(self.maps)[:2], "per_element": self.comparison},
                "findings": self.findings,
                "automatic": {
                    name: solver.auto_choice.record()
                    for name, solver in self.solvers.items()
                    if getattr(solver, "auto_choice", None) is not None
                },
                "uncertainty": self.uncertainty,
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
                "notes": self.notes,
                "warnings": self.warnings,
                "files": self.files,
            }
        )


def _header(items: Mapping[str, Any], name: str) -> Any:
    """An entry of volumes or maps without its slices (a file's is read without its arrays)."""
    return Products(items).source(name).header()


def _load_parameters(series: TiltSeries) -> dict[str, Any]:
    """The parameters of the series' ``load`` provenance step ({} for a series not loaded from files)."""
    return next((step.get("parameters", {}) for step in series.provenance if step.get("action") == "load"), {})


def normalise(series: TiltSeries, mode: str, notes: list[str] | None = None) -> TiltSeries:
    """Per-tilt normalisation: ``"equal"`` totals, ``"slab"`` totals ∝ 1/cos θ, or ``"none"``.

    A channel with no signal at some tilt (possible at very low counts) cannot be
    scaled there; it is left as it is and a note is added to ``notes``.
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"normalise: {mode!r} must be one of {NORMALISATIONS}")
    if mode == "none":
        return series
    empty = [c for c in series.channels if np.any(series.channel(c).sum(axis=(1, 2)) <= 0)]
    channels = [c for c in series.channels if c not in empty]
    if empty and notes is not None:
        notes.append(f"normalise: {empty} have a tilt without signal and were not normalised")
    if not channels:
        return series
    if mode == "equal":
        return normalise_tilts(series, channels)
    dtype = series.data.dtype if series.data.dtype.kind == "f" else np.dtype(np.float64)
    cosines = np.cos(series.angles.m_as("rad"))[None, :, None, None].astype(dtype)
    equal = normalise_tilts(series.replace(data=series.data * cosines), channels)
    record = provenance.step("normalise_slab", None, note="totals made proportional to 1/cos(tilt)")
    return equal.with_step(record, data=equal.data / cosines)


def physics_ratios(series: TiltSeries, factors: PhysicsFactors, lines: Sequence[str] | None = None) -> ResponseRatios:
    """Response ratios r_A = c · z_A / f_A (eq. 16) with one constant c fitted to the HAADF signal.

    ``c`` minimises ``‖I_H − c Σ_A (z_A/f_A) I_A‖²``; R² is computed as for
    :func:`edstomo.preprocessing.response_ratios`.
    """
    if not series.has_haadf:
        raise ValueError(f"series: response ratios need a {HAADF!r} channel; channels are {series.channels}")
    names = list(lines) if lines is not None else series.lines
    weights = factors.z_array(names) / factors.f_array(names)

    def tilt(t: int) -> tuple[np.ndarray, np.ndarray]:  # float64 values of one tilt: HAADF, and Σ_A w_A I_A
        model = sum(w * np.asarray(series.channel(n)[t], dtype=np.float64).ravel() for w, n in zip(weights, names))
        return np.asarray(series.channel(HAADF)[t], dtype=np.float64).ravel(), model

    sums = np.zeros(4)  # Σ model², Σ target·model, Σ target, count: one tilt at a time
    for t in range(series.n_tilts):
        target, model = tilt(t)
        sums += [model @ model, target @ model, target.sum(), target.size]
    norm = float(sums[0])
    if norm <= 0:
        raise ValueError("series: the EDS lines hold no signal; response ratios are undefined")
    constant = float(sums[1]) / norm
    if not constant > 0:
        raise ValueError(f"series: the HAADF signal does not grow with the EDS signal (c = {constant:g})")
    mean, ss_res, total = sums[2] / sums[3], 0.0, 0.0
    for t in range(series.n_tilts):
        target, model = tilt(t)
        residual = target - constant * model
        ss_res += float(residual @ residual)
        total += float(np.sum((target - mean) ** 2))
    r_squared = 1.0 - ss_res / total if total > 0 else float("nan")
    ratios = {n: float(constant * w) for n, w in zip(names, weights)}
    record = provenance.step("response_ratios", None, model="r_A = c z_A / f_A", constant=constant, ratios=ratios)
    return ResponseRatios(ratios, r_squared, float(np.sqrt(ss_res)), record)


def quantify_volumes(
    volumes: Mapping[str, Any],
    factors: PhysicsFactors,
    threshold: float | str | Mapping[str, float | str] = "esf",
    notes: list[str] | None = None,
    alerts: list[str] | None = None,
    *,
    out: Path | None = None,
    chunk_slices: int = SLICES_IN_PROCESS,
    runner: Runner | None = None,
) -> Products:
    """Weight fractions of each volume, by the quantifier that accepts its map factor (``Volume.factor``).

    ``threshold`` is read by :func:`thresholds_for` (one per method). With
    ``"esf"`` the quantifiers fall back to Otsu's threshold of the summed map
    Σ X_A/g_A when the ESF fit finds no plateau (``fallback="otsu"``); the
    maps' provenance records it, and a note is added to ``notes``. A given
    threshold that leaves no voxel is an error; one whose particle differs from
    the automatic threshold's by more than 10× is added to ``alerts`` (to ``notes`` when no ``alerts``).

    The volumes (in memory, or :class:`Products` whose entries may be files) are
    quantified ``chunk_slices`` slices at a time (:func:`.slicewise.quantify_in_slices`);
    with ``out`` the maps are written to ``out/maps_<method>.h5`` as they are made
    and kept there, else returned in memory. ``runner``: the pieces on Dask (volumes in files).
    """
    chosen_thresholds = thresholds_for(threshold, list(volumes))
    result = Products()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskWarning)  # reported through ``alerts``
        readers = Products(volumes)
        for name in volumes:
            source = readers.source(name)
            header = source.header()
            quantifier = plugins.quantifier_for(header.factor)
            maps = quantify_in_slices(
                quantifier(factors, threshold=chosen_thresholds[name], fallback="otsu"),
                source,
                chunk_slices=chunk_slices,
                path=None if out is None else out / f"maps_{name}.h5",
                runner=runner,
            )
            maps_header = maps.header() if isinstance(maps, Stored) else maps
            chosen = maps_header.provenance[-1]["parameters"]
            if notes is not None and chosen["threshold_method"] == "otsu":
                notes.append(f"{name}: {chosen['threshold_note']} (threshold {maps_header.threshold:.4g})")
            if "mask_warning" in chosen:
                target = alerts if alerts is not None else notes
                if target is not None:
                    target.append(f"{name}: {chosen['mask_warning']}")
            result[name] = maps
    return result


def compare_maps(a: Any, b: Any, quantile: float = 0.9) -> dict[str, dict[str, float]]:
    """Agreement of two quantifications, per element, inside both particle masks (see :func:`.statistics.compare`).

    Returns ``{element: {"pearson": r, "dice_rich": d, "mean_a": ..., "mean_b": ...}}``
    where ``r`` is the Pearson correlation of the weight fractions and ``d`` the
    Dice coefficient of the element-rich regions (fraction ≥ the ``quantile`` of
    the element's fractions inside the mask). NaN when undefined (no voxel, or
    a constant map). ``a`` and ``b`` are CompositionMaps or their files, read a range of slices at a time.
    """
    return statistics.compare(a, b, quantile)


@contextmanager
def _timed(timings: dict[str, float], stage: str, progress: Progress | None, *, report: bool = True) -> Any:
    """Time a stage; report it as one step unless the stage reports its own progress."""
    report = report and progress is not None
    if report:
        progress(stage, 0, 1)  # type: ignore[misc]
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
    if report:
        progress(stage, 1, 1)  # type: ignore[misc]


def _solver_progress(stage: str, progress: Progress | None) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def align(series: TiltSeries, options: PipelineOptions, notes: list[str]) -> Alignment:
    """The alignment of ``series`` by the methods the options name (or loaded from ``options.alignment``)."""
    if options.alignment is not None:
        notes.append(f"alignment loaded from {options.alignment}")
        return Alignment.load(options.alignment)
    methods: dict[str, Any] = {"haadf_eds": options.haadf_eds, "series": options.series, "axis": options.axis}
    haadf = None
    if options.haadf_eds != "none" and series.has_haadf:
        haadf = haadf_eds_shifts(series, options.haadf_eds)
    shifts = np.zeros((series.n_tilts, 2))
    if options.series != "none":
        shifts = series_shifts(series, options.series, haadf_shifts=haadf)
    alignment = Alignment(series.angles, series.pixel_size, shifts, haadf, methods=methods)
    if options.axis == "auto":
        shifted = apply_alignment(series, alignment)
        axis_shift, rotation, record = estimate_tilt_axis(shifted)
        methods["axis_estimate"] = {k: v for k, v in record.items() if k != "residual_curves"}
        if not record.get("determined", False):
            notes.append(record["note"])
        alignment = alignment.replace(axis_shift=axis_shift, axis_rotation=rotation, methods=methods)
    return alignment


@dataclass
class PipelineState:
    """What the stages have made so far (each stage reads earlier products and adds its own)."""

    source: Any
    options: PipelineOptions
    progress: Progress | None = None
    dask: DaskOptions | None = None
    out: Path | None = None
    raw: TiltSeries | None = None
    alignment: Alignment | None = None
    series: TiltSeries | None = None
    factors: PhysicsFactors | None = None
    ratios: ResponseRatios | None = None
    ratio_fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: Products = field(default_factory=Products)
    maps: Products = field(default_factory=Products)
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    solvers: dict[str, Solver] = field(default_factory=dict)
    uncertainty: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    absorption: dict[str, Any] = field(default_factory=dict)
    corrections: dict[str, CorrectionResult] = field(default_factory=dict)
    runner: DaskRunner | None = None
    closing: ExitStack = field(default_factory=ExitStack)


def load_stage(state: PipelineState) -> None:
    """``raw``: the line maps of the source files (or the given TiltSeries)."""
    if isinstance(state.source, TiltSeries):
        if state.source.experiment is None:
            raise ValueError("source: the given TiltSeries has no experiment; the physics needs its beam energy")
        state.raw = state.source
    else:
        options = state.options
        state.raw = load_tilt_series(
            state.source,
            options.lines,
            angles=options.angles,
            rebin=options.rebin,
            crop=options.crop,
            tilt_axis=options.tilt_axis,
            intensities=options.intensities,
            smooth=options.smooth,
            background=options.background,
            integration_width=options.integration_width,
            background_windows=options.background_windows,
            progress=state.progress,
            **dict(options.load_options),
        )
        reader.close()  # the reader processes (HyperSpy each) are not needed again: their memory goes back
    state.notes.extend(_load_parameters(state.raw).get("values", {}).get("notes", []))


def align_stage(state: PipelineState) -> None:
    """``alignment`` and the aligned ``series``."""
    state.alignment = align(state.raw, state.options, state.notes)
    state.series = apply_alignment(state.raw, state.alignment)


def preprocess_stage(state: PipelineState) -> None:
    """Per-tilt normalisation and the optional Gaussian filter of the sinograms."""
    series = normalise(state.series, state.options.normalise, state.notes)
    if state.options.sinogram_sigma > 0:
        series = gaussian_filter(series, state.options.sinogram_sigma)
    state.series = series


def physics_stage(state: PipelineState) -> None:
    """``factors``: f_A and z_A of the lines at the data's beam energy (model-range notes recorded once)."""
    options = state.options
    model = plugins.physics(options.physics) if options.physics else plugins.default("physics")
    with collected_notes(state.notes) as model_notes:
        state.factors = model(**dict(options.physics_options)).compute(state.series.experiment)
    if model_notes:
        state.factors.provenance.append(provenance.step("model_notes", model.name, notes=model_notes))


def _ratios(state: PipelineState) -> ResponseRatios:
    """Response ratios by the options' mode (physics or fit); both fits are recorded."""
    series, lines = state.series, state.series.lines
    physical = physics_ratios(series, state.factors, lines)
    state.ratio_fits["physics"] = {"ratios": physical.ratios, "r_squared": physical.r_squared}
    try:
        fitted = response_ratios(series, lines)
        state.ratio_fits["fit"] = {"ratios": fitted.ratios, "r_squared": fitted.r_squared}
    except ValueError as error:
        fitted = None
        state.ratio_fits["fit"] = {"error": str(error)}
    ratios = physical if state.options.ratios == "physics" else fitted
    if ratios is None or min(ratios.ratios.values()) <= 0:
        raise ValueError(
            f"ratios: the free fit gives no usable response ratios ({state.ratio_fits['fit']}); use ratios='physics'"
        )
    return ratios


def reconstruct_stage(state: PipelineState) -> None:
    """``volumes``: one per solver, from the padded series, cropped back to the field of view."""
    series, options = state.series, state.options
    width = round(options.pad * series.n_positions)
    padded = pad_positions(series, width)
    source = None
    if state.dask is not None:
        with _timed(state.timings, "solver-input", state.progress):
            state.out.mkdir(parents=True, exist_ok=True)
            source = padded.save(state.out / "tilt_series_padded.h5")
            state.files.append(str(source))
        where = state.dask.scheduler or f"a local cluster of {state.dask.workers} worker(s)"
        state.notes.append(f"reconstructions solved on Dask ({where}) in chunks of {state.dask.chunk_slices} slices")
    if options.solvers is None and not series.has_haadf:
        state.notes.append("no HAADF channel: the EDS-only reconstruction only (no bimodal solver)")
    plans = options.solver_plans(series.has_haadf)
    # one threshold per method, checked now that the methods are known, before anything is reconstructed
    thresholds_for(options.threshold, [cls.name for cls, _ in plans if series.has_haadf or "haadf" not in cls.requires])
    for cls, solver_options in plans:
        if "haadf" in cls.requires and not series.has_haadf:
            state.notes.append(f"no HAADF channel: {cls.name} skipped")
            continue
        if "ratios" in cls.Options.model_fields and "ratios" not in solver_options:
            state.ratios = state.ratios or _ratios(state)
            solver_options = {**solver_options, "ratios": state.ratios.ratios}
        if "channels" in cls.Options.model_fields:
            solver_options.setdefault("channels", series.lines)
        if "counts" in cls.requires and "counts" in cls.Options.model_fields and "counts" not in solver_options:
            # the line maps are background-subtracted, smoothed and normalised: proportional to counts, not counts
            solver_options = {**solver_options, "counts": "scaled"}
            state.notes.append(
                f"{cls.name}: the Poisson likelihood is applied to the normalised line maps (counts='scaled')"
            )
        solver = cls(**solver_options)
        stage = f"reconstruct-{cls.name}"
        if solver.unfitted():
            with _timed(state.timings, f"choose-{cls.name}", state.progress):
                # automatic options chosen once, on the whole (padded) series; runs equivalent to earlier
                # solvers' scored runs are taken from them
                known = [getattr(earlier, "auto_choice", None) for earlier in state.solvers.values()]
                solver = solver.prepare(padded, known=known)
        with _timed(state.timings, stage, state.progress, report=False):
            state.volumes[cls.name] = _reused(solver, padded, state) or _solve(
                solver, padded, stage, state, source, width
            )
        state.solvers[cls.name] = solver
    if state.ratios is None:
        state.ratios = ResponseRatios({}, float("nan"), float("nan"), {})


def _reused(solver: Solver, padded: TiltSeries, state: PipelineState) -> Volume | Stored | None:
    """The volume of ``solver`` made from an earlier method's volume when the two solvers are equivalent
    (e.g. HEBT at α = 0 and SIRT: :meth:`~edstomo.engine.ReconstructionSolver.equivalent`), else None."""
    target = None if state.out is None else state.out / f"volume_{solver.name}.h5"
    chunks = state.options.chunk_slices if state.dask is None else state.dask.chunk_slices
    for name in list(state.volumes):
        volume = reuse_in_slices(
            solver,
            padded,
            state.volumes.source(name),
            chunk_slices=chunks,
            progress=_solver_progress(f"reconstruct-{solver.name}", state.progress),
            path=target,
        )
        if volume is not None:
            state.notes.append(
                f"{solver.name}: not solved again ({solver.equivalent().reason}): its maps are "  # type: ignore[attr-defined]
                f"{name}'s times the factors recorded in its provenance"
            )
            return volume
    return None


def _solve(
    solver: Solver, padded: TiltSeries, stage: str, state: PipelineState, source: Path | None, width: int
) -> Volume | Stored:
    """``crop_volume(solver.solve(padded), width)``: in this process ``options.chunk_slices`` slices at a time
    (into ``volume_<solver>.h5`` when there is an output folder), or chunk by chunk on Dask from the file ``source``.

    On Dask each task solves a piece of the padded series and returns it cropped; the
    pieces go into ``volume_<solver>.h5`` as they arrive (:func:`.slicewise.solve_on_dask`).
    """
    target = None if state.out is None else state.out / f"volume_{solver.name}.h5"
    if state.dask is None:
        if target is not None:
            state.out.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        return solve_in_slices(
            solver,
            padded,
            width,
            state.series.experiment,
            chunk_slices=state.options.chunk_slices,
            progress=_solver_progress(stage, state.progress),
            path=target,
        )
    where = state.dask.scheduler or f"LocalCluster(workers={state.dask.workers}, processes={state.dask.processes})"
    return solve_on_dask(
        solver,
        source,  # type: ignore[arg-type]
        width,
        state.series.experiment,
        target,  # type: ignore[arg-type]
        _runner(state),  # type: ignore[arg-type]
        chunk_slices=state.dask.chunk_slices,
        progress=_solver_progress(stage, state.progress),
        where=where,
    )


def _runner(state: PipelineState) -> DaskRunner | None:
    """The Dask runner of the run (started on first use, closed when the run ends), or None: in this process."""
    if state.dask is None:
        return None
    if state.runner is None:
        dask = state.dask
        state.runner = state.closing.enter_context(dask_runner(dask.scheduler, dask.workers, dask.processes))
    return state.runner


def quantify_stage(state: PipelineState) -> None:
    """``maps``: weight fractions of every volume."""
    state.maps = quantify_volumes(
        state.volumes,
        state.factors,
        state.options.threshold,
        state.notes,
        state.alerts,
        out=state.out,
        chunk_slices=state.options.chunk_slices if state.dask is None else state.dask.chunk_slices,
        runner=_runner(state),
    )


def absorption_stage(state: PipelineState) -> None:
    """With ``options.absorption``: each method's maps corrected for X-ray absorption (:mod:`edstomo.absorption`).

    The uncorrected maps are kept as ``<method>-uncorrected``; the corrected ones
    take the method's name. The HAADF term is not attenuated. The loop runs in
    this process (the transmissions couple slices), even with Dask.
    """
    if state.options.absorption is None:
        return
    from edstomo.absorption import AbsorptionCorrection, AbsorptionModel
    from edstomo_plugins.forward.absorbing import head_efficiency

    series = state.series
    width = round(state.options.pad * series.n_positions)
    settings = dict(state.options.absorption)
    model = AbsorptionModel(series.experiment, lines=series.lines, efficiency=head_efficiency)
    thresholds = thresholds_for(state.options.threshold, list(state.volumes))
    for name in list(state.volumes):
        solver, volume = state.solvers[name], state.volumes[name]
        quantifier = plugins.quantifier_for(volume.factor)(state.factors, threshold=thresholds[name], fallback="otsu")
        factors = (
            state.factors.f_array(volume.channels) if volume.factor == "f_A" else state.factors.z_array(volume.channels)
        )

        def solve(data: TiltSeries, solver: Solver = solver) -> Volume:
            return crop_volume(solver.solve(pad_positions(data, width)), width, data.experiment)

        correction = AbsorptionCorrection(model, **settings)
        with _timed(state.timings, f"absorption-{name}", state.progress, report=False):
            result = correction.run(series, solve, quantifier.quantify, factors)
        state.maps[f"{name}-uncorrected"] = state.maps[name]
        state.volumes[f"{name}-uncorrected"] = volume
        state.maps[name], state.volumes[name] = result.composition, result.maps
        state.corrections[name] = result
        state.absorption[name] = {
            "iterations": len(result.history),
            "converged": result.converged,
            "history": result.history,
            "mean_wt_change": {
                element: float(result.composition.fraction(element)[result.composition.mask].mean())
                - float(result.uncorrected.fraction(element)[result.uncorrected.mask].mean())
                for element in model.elements
            },
        }
        changes = ", ".join(f"{e} {100 * v:+.2f}" for e, v in state.absorption[name]["mean_wt_change"].items())
        state.notes.append(
            f"{name}: absorption-corrected in {len(result.history)} iteration(s) "
            f"({'converged' if result.converged else 'not converged'}); particle-mean change (wt%): {changes}; "
            f"uncorrected maps kept as {name}-uncorrected"
        )


def uncertainty_stage(state: PipelineState) -> None:
    """With ``options.uncertainty``: bootstrap error bars of each method's maps (:mod:`.errorbars`).

    After an absorption correction they are those of the corrected maps (the
    measured counts redrawn, the transmissions of the last correction held
    fixed); the ``<method>-uncorrected`` maps then get none.
    """
    if not state.options.uncertainty:
        return
    from .errorbars import add_uncertainty

    thresholds = thresholds_for(state.options.threshold, list(state.solvers))
    state.uncertainty = add_uncertainty(state, pad_positions, crop_volume, thresholds)


def compare_stage(state: PipelineState) -> None:
    """``comparison`` of the first two methods and ``findings`` for each."""
    maps = Products(state.maps)
    state.comparison, state.findings = statistics.summarise({name: maps.source(name) for name in maps})


#: The pipeline's stages, in order: (name, function, reports its own progress).
STAGES: tuple[tuple[str, Callable[[PipelineState], None], bool], ...] = (
    ("load", load_stage, True),
    ("align", align_stage, False),
    ("preprocess", preprocess_stage, False),
    ("physics", physics_stage, False),
    ("reconstruct", reconstruct_stage, True),
    ("quantify", quantify_stage, False),
    ("absorption", absorption_stage, False),
    ("uncertainty", uncertainty_stage, False),
    ("compare", compare_stage, False),
)


def run_pipeline(
    source: str | Path | Sequence[str | Path] | TiltSeries,
    options: PipelineOptions | None = None,
    *,
    out: str | Path | None = None,
    quantify: bool = True,
    pictures: bool = True,
    progress: Progress | None = None,
    dask: DaskOptions | None = None,
    hspy: bool = False,
) -> PipelineResult:
    """Run the stages of :data:`STAGES` on microscope files (see the module docstring).

    Parameters
    ----------
    source : folder, file, list of files, or TiltSeries
        The tilt series files (see :func:`~edstomo_microscope.loading.load_tilt_series`),
        or line maps already loaded: a :class:`TiltSeries` of line channels
        (and ``HAADF`` for bimodal solvers) with its experiment; the loading options are
        then not used.
    options : PipelineOptions, optional
        Choices of every step; defaults otherwise.
    out : folder, optional
        Where to write the results (see :func:`edstomo_microscope.export.export_all`),
        ``alignment.json``, figures and ``summary.json``; nothing is written when None.
        With a folder the volumes and maps are written there as they are made and
        not held in memory: ``result.volumes`` and ``result.maps`` load one when it is looked up.
    quantify : bool
        Run ``quantify`` and ``compare``; False stops after the reconstructions.
    pictures : bool
        Draw the figures (needs matplotlib) when ``out`` is given.
    progress : callable, optional
        ``progress(stage, done, total)``.
    dask : DaskOptions, optional
        Reconstruct in slice chunks on a Dask cluster (needs ``out``, which
        then also receives ``tilt_series_padded.h5``); default: in this process.
    hspy : bool
        Also write the volumes and maps as HyperSpy/etspy stacks (``hspy/``).

    Returns
    -------
    PipelineResult
    """
    options = options or PipelineOptions()
    if dask is not None and not isinstance(dask, DaskOptions):
        raise TypeError(f"dask: expected DaskOptions or None, got {type(dask).__name__}")
    if dask is not None and out is None:
        raise ValueError("out: solving on a Dask cluster needs an output folder for the tilt series and volumes")
    state = PipelineState(source, options, progress, dask, None if out is None else Path(out))
    last = "compare" if quantify else "reconstruct"
    with state.closing:  # a Dask cluster started for the run ends with it
        for name, stage, own_progress in STAGES:
            with _timed(state.timings, name, progress, report=not own_progress):
                stage(state)
            if name == last:
                break
    result = PipelineResult(
        options,
        state.raw,
        state.alignment,
        state.series,
        state.factors,
        state.ratios,
        state.ratio_fits,
        state.volumes,
        state.maps,
        state.comparison,
        state.findings,
        state.timings,
        state.notes,
        state.files,
        solvers=state.solvers,
        uncertainty=state.uncertainty,
        warnings=state.alerts,
    )
    if out is not None:
        _write(result, Path(out), pictures, progress, hspy)
    return result


def _write(result: PipelineResult, out: Path, pictures: bool, progress: Progress | None, hspy: bool = False) -> None:
    from .export import export_all, format_size, output_size

    out.mkdir(parents=True, exist_ok=True)
    with _timed(result.timings, "export", progress):
        written = export_all(
            out, raw=result.raw, series=result.series, volumes=result.volumes, maps=result.maps, hspy=hspy
        )
        result.files.extend(str(p) for p in written)
        result.alignment.save(out / "alignment.json")
        result.files.append(str(out / "alignment.json"))
    if pictures:
        from .pictures import pipeline_figures

        with _timed(result.timings, "pictures", progress):
            from .errorbars import choice_figures, uncertainty_figures

            maps = dict(result.maps)  # each method's maps loaded once for all figures
            figures = pipeline_figures(out / "figures", series=result.series, maps=maps)
            figures += uncertainty_figures(out / "figures", maps)
            figures += choice_figures(out / "figures", result.solvers)
            result.files.extend(str(p) for p in figures)
    size = format_size(output_size(result.files))
    result.notes.append(f"output: {len(result.files)} files, {size} (and summary.json)")
    atomic_write_text(out / "summary.json", provenance.strict_json(result.summary(), note_key="notes"))
    result.files.append(str(out / "summary.json"))


def method_of(volume: Volume) -> str:
    """The name of the solver that made a volume (from its provenance), which names its method."""
    for step in reversed(volume.provenance):
        if step.get("action") == "reconstruct" and step.get("plugin"):
            return str(step["plugin"])
    raise ValueError("volume: its provenance names no reconstruction step; cannot tell which solver made it")


def quantify_saved(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    physics: str | None = None,
    physics_options: Mapping[str, Any] | None = None,
    threshold: float | str | Mapping[str, float | str] = "esf",
    pictures: bool = True,
    progress: Progress | None = None,
    hspy: bool = False,
) -> dict[str, Any]:
    """Quantify volumes saved by the pipeline (``volume_<solver>.h5``) and write the maps.

    Each volume is quantified by the quantifier that accepts its map factor
    (``Volume.factor``); the physics is computed for each volume's stored
    experiment; ``threshold`` as for :func:`thresholds_for`. Writes
    ``maps_<solver>.h5`` (and ``hspy/`` stacks with ``hspy=True``), orthoslice and composite figures
    and ``quantify_summary.json`` (strict JSON: undefined values are null, with
    a note) into ``out``; returns that summary.
    """
    from .export import export_maps, format_size, output_size

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    notes: list[str] = []
    volumes = Products()
    factors: dict[str, PhysicsFactors] = {}
    with _timed(timings, "load", progress):
        for path in paths:
            volume = load(path, slices=(0, 0))  # the header: the volume is read a range of slices at a time
            if not isinstance(volume, Volume):
                raise ValueError(f"{path}: holds a {type(volume).__name__}, not a reconstructed Volume")
            if volume.experiment is None:
                raise ValueError(f"{path}: stores no experiment, so the physics factors cannot be computed")
            if volume.factor is None:
                raise ValueError(f"{path}: its maps record no factor (f_A or z_A); they cannot be quantified")
            method = method_of(volume)
            if method in volumes:
                raise ValueError(f"{path}: a second volume of {method}; give one volume per solver")
            volumes[method] = Stored(path)
    chosen = thresholds_for(threshold, list(volumes))
    alerts: list[str] = []
    with _timed(timings, "physics", progress), collected_notes(notes) as model_notes:
        model = plugins.physics(physics) if physics else plugins.default("physics")
        for method in volumes:
            factors[method] = model(**dict(physics_options or {})).compute(volumes.header(method).experiment)
    for method in factors if model_notes else ():
        factors[method].provenance.append(provenance.step("model_notes", model.name, notes=model_notes))
    with _timed(timings, "quantify", progress):
        maps = Products()
        for method in volumes:
            one = Products({method: volumes.source(method)})
            found = quantify_volumes(one, factors[method], chosen[method], notes, alerts, out=out)
            maps[method] = found.source(method)
    names = list(maps)
    comparison, found = statistics.summarise({method: maps.source(method) for method in maps})
    files: list[str] = []
    with _timed(timings, "export", progress):
        files += [str(p) for p in export_maps(maps, out, hspy=hspy)]
    if pictures:
        from .pictures import pipeline_figures

        with _timed(timings, "pictures", progress):
            files += [str(p) for p in pipeline_figures(out / "figures", maps=maps)]
    notes.append(f"output: {len(files)} files, {format_size(output_size(files))} (and quantify_summary.json)")
    summary = provenance.jsonable(
        {
            "inputs": [str(p) for p in paths],
            "physics": {method: f.to_dict() for method, f in factors.items()},
            "thresholds": {method: maps.source(method).threshold for method in maps},
            "comparison": {"methods": names[:2], "per_element": comparison},
            "findings": found,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "notes": notes,
            "warnings": alerts,
            "files": files,
        }
    )
    atomic_write_text(out / "quantify_summary.json", provenance.strict_json(summary, note_key="notes"))
    return summary
