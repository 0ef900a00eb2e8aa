"""The spectrum model of a tilt series, fitted once to its summed spectrum: energy calibration, continuum, families.

A spectrum is modelled as

    counts(E) = Σ_families a_F · shape_F(E) + continuum(E)

where ``shape_F`` holds every line of one K, L or M family
(:mod:`.families`: Gaussians at the detector resolution, weights from the
atomic data) and the continuum is a non-negative combination of cubic
B-splines whose knots are several FWHM apart (so that the continuum cannot
follow a peak). The fit is linear in ``a_F`` and the spline coefficients
(non-negative least squares, weighted by 1/counts).

On the spectrum summed over every pixel of every tilt (where the counts are
plentiful) :func:`fit_summed_spectrum`

1. refines the energy calibration: an offset and a gain correction of the
   file's axis and the FWHM at Mn Kα, by least squares with the amplitudes
   solved inside (a coarse search of the offset first, so a calibration off by
   more than a peak width is still found; a soft-L1 loss, so a family whose
   atomic data are off does not drag the calibration of the others);
   corrections are recorded and large ones noted;
2. keeps the families of the requested lines and drops the families of the
   other expected elements (``Sample.elements``, the user's list) that the
   summed spectrum does not show (amplitude below 3 standard deviations);
3. records the evidence: per requested line the counts, the reduced χ² and the
   residual within ±1 FWHM; peaks in the residual that no modelled family
   explains, with a guess of the line (``"unexplained peak at 8.05 keV — Cu Kα?"``).

The per-pixel fit (:mod:`.linefit`) then uses the refined calibration, the
kept families and the summed continuum shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.optimize
from edstomo.errors import InputError
from edstomo.lines import parse_line
from scipy.interpolate import BSpline

from .families import Family, families_of_lines, fwhm_kev, gaussian_bins, guess_lines

__all__ = [
    "EnergyCalibration",
    "SummedFit",
    "continuum_basis",
    "fit_summed_spectrum",
]

#: Continuum knots at energy E are ``KNOT_SPACING_ENERGY`` × E apart (the continuum changes on the scale of E,
#: fastest at low energies), but at least ``MIN_KNOT_SPACING_FWHM`` and at most ``KNOT_SPACING_FWHM`` times
#: the local FWHM (so that the continuum cannot follow a peak).
KNOT_SPACING_ENERGY = 0.5
MIN_KNOT_SPACING_FWHM = 3.0
KNOT_SPACING_FWHM = 6.0
#: Families of elements that were not asked for are kept when their summed amplitude exceeds this many σ.
KEEP_SIGMA = 3.0
#: Residual peaks are reported above this significance (σ) …
UNEXPLAINED_SIGMA = 5.0
#: … and when they hold at least this fraction of the counts of the strongest modelled family.
UNEXPLAINED_FRACTION = 0.01
#: Modelled transitions at least this strong (share of their family) near a residual peak are named with it.
NEAR_WEIGHT = 0.02
#: Calibration corrections larger than this (eV) at a fitted line are noted.
LARGE_CORRECTION_EV = 20.0
#: Residuals (in standard deviations) beyond which the calibration refinement counts them less and less (soft L1
#: loss): a family whose shape the atomic data get wrong must not drag the calibration of all the others.
ROBUST_SCALE = 3.0
#: Bounds of the refinement: offset (keV), relative gain, FWHM at Mn Kα (eV).
OFFSET_BOUND_KEV = 0.2
GAIN_BOUND = 0.03
FWHM_BOUNDS_EV = (40.0, 400.0)


@dataclass(frozen=True)
class EnergyCalibration:
    """Energy of each channel and the detector resolution.

    The energy of the centre of channel ``i`` is ``offset_kev + i · scale_kev``.

    Attributes
    ----------
    offset_kev : float
        Energy of the centre of channel 0 (keV).
    scale_kev : float
        Channel width (keV).
    fwhm_mn_ev : float
        Resolution (FWHM) at Mn Kα (eV).
    """

    offset_kev: float
    scale_kev: float
    fwhm_mn_ev: float

    def centres(self, channels: int) -> np.ndarray:
        """Energies of the channel centres (keV)."""
        return self.offset_kev + self.scale_kev * np.arange(channels)

    def edges(self, channels: int) -> np.ndarray:
        """Energies of the channel edges (keV), ``channels + 1`` values."""
        return self.offset_kev + self.scale_kev * (np.arange(channels + 1) - 0.5)

    def to_dict(self) -> dict[str, float]:
        return {
            "offset_kev": round(self.offset_kev, 6),
            "scale_kev": round(self.scale_kev, 8),
            "fwhm_mn_ev": round(self.fwhm_mn_ev, 2),
        }


def continuum_basis(energies_kev: np.ndarray, low_kev: float, high_kev: float, fwhm_mn_ev: float) -> np.ndarray:
    """Non-negative cubic B-splines over [low, high] keV (knot spacing: see ``KNOT_SPACING_ENERGY``).

    Returns an array (channels, functions); every row sums to 1 inside the range.
    """
    knots = [low_kev]
    while knots[-1] < high_kev:
        fwhm = float(fwhm_kev(knots[-1], fwhm_mn_ev))
        spacing = min(max(KNOT_SPACING_ENERGY * knots[-1], MIN_KNOT_SPACING_FWHM * fwhm), KNOT_SPACING_FWHM * fwhm)
        knots.append(knots[-1] + spacing)
    knots = np.asarray(knots)
    interior = low_kev + (knots - low_kev) * (high_kev - low_kev) / (knots[-1] - low_kev)
    interior[0], interior[-1] = low_kev, high_kev  # exactly, whatever the rounding
    t = np.concatenate([[low_kev] * 3, interior, [high_kev] * 3])
    x = np.clip(np.asarray(energies_kev, dtype=float), low_kev, high_kev)
    return BSpline.design_matrix(x, t, 3).toarray()


def _peak_columns(families: Sequence[Family], calibration: EnergyCalibration, channels: int) -> np.ndarray:
    edges = calibration.edges(channels)
    if not families:
        return np.zeros((channels, 0))
    return np.stack([family.spectrum(edges, calibration.fwhm_mn_ev) for family in families], axis=1)


@dataclass
class SummedFit:
    """The model of a series fitted to its summed spectrum (see the module docstring).

    Attributes
    ----------
    calibration : EnergyCalibration
        Refined calibration.
    file_calibration : EnergyCalibration
        Calibration read from the files (and the resolution given or assumed).
    fit_range : slice
        The channels fitted.
    counts : ndarray
        Summed counts of the fitted channels.
    families : list of Family
        Families of the model (requested lines' families and the expected elements shown by the sum).
    amplitudes, sigmas : dict of str to float
        Counts of each family in the summed spectrum (all its X-rays) and their standard deviations.
    continuum : ndarray
        The fitted continuum of the summed spectrum (counts per channel, fitted channels).
    model : ndarray
        The whole model (counts per channel).
    lines : list of str
        The requested lines.
    line_stats : dict
        Per requested line: family, share, counts, σ, reduced χ² and residual within ±1 FWHM.
    dropped : dict of str to str
        Families of expected elements left out of the per-pixel model, and why.
    unexplained : list of dict
        Residual peaks no modelled family explains, with guesses.
    notes : list of str
        Sentences for the user.
    """

    calibration: EnergyCalibration
    file_calibration: EnergyCalibration
    fit_range: slice
    counts: np.ndarray
    families: list[Family]
    amplitudes: dict[str, float]
    sigmas: dict[str, float]
    continuum: np.ndarray
    model: np.ndarray
    lines: list[str]
    line_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def energies(self) -> np.ndarray:
        """Channel-centre energies of the fitted channels (keV, refined calibration)."""
        start, stop = self.fit_range.start, self.fit_range.stop
        return self.calibration.centres(stop)[start:stop]

    def family_spectra(self) -> dict[str, np.ndarray]:
        """Each family's fitted contribution to the summed spectrum (counts per channel)."""
        columns = _peak_columns(self.families, self.calibration, self.fit_range.stop)[self.fit_range]
        return {f.name: self.amplitudes[f.name] * columns[:, i] for i, f in enumerate(self.families)}

    def record(self) -> dict[str, Any]:
        """A JSON-compatible record for the provenance, with the summed spectrum for the figure."""
        return {
            "calibration": self.calibration.to_dict(),
            "file_calibration": self.file_calibration.to_dict(),
            "fit_range_kev": [round(float(self.energies[0]), 4), round(float(self.energies[-1]), 4)],
            "families": {
                f.name: {"counts": round(self.amplitudes[f.name], 1), "sigma": round(self.sigmas[f.name], 1)}
                for f in self.families
            },
            "dropped_families": dict(self.dropped),
            "lines": self.line_stats,
            "unexplained_peaks": self.unexplained,
            "chi2_reduced": round(_reduced_chi2(self.counts, self.model), 3),
            "notes": list(self.notes),
            "spectrum": {
                "first_channel": int(self.fit_range.start),
                "counts": np.round(self.counts).astype(int).tolist(),
                "model": np.round(self.model, 2).tolist(),
                "continuum": np.round(self.continuum, 2).tolist(),
            },
        }


def _reduced_chi2(counts: np.ndarray, model: np.ndarray) -> float:
    variance = np.maximum(model, 1.0)
    return float(np.sum((counts - model) ** 2 / variance) / max(counts.size, 1))


class _Problem:
    """The summed spectrum and everything fixed while the calibration is refined."""

    def __init__(self, counts: np.ndarray, fit_range: slice, families: list[Family], file: EnergyCalibration):
        self.range = fit_range
        self.y = counts[fit_range].astype(float)
        self.families = families
        self.file = file
        smooth = scipy.ndimage.gaussian_filter1d(self.y, 2.0)
        self.sqrt_w = 1.0 / np.sqrt(np.maximum(smooth, 1.0))
        energies = file.centres(counts.size)[fit_range]
        self.continuum = continuum_basis(energies, energies[0], energies[-1], file.fwhm_mn_ev)

    def calibration(self, offset: float, gain: float, fwhm: float) -> EnergyCalibration:
        # the axis is corrected as E = (1 + gain) · E_file + offset
        return EnergyCalibration(
            self.file.offset_kev * (1 + gain) + offset, self.file.scale_kev * (1 + gain), float(fwhm)
        )

    def design(self, calibration: EnergyCalibration, families: list[Family] | None = None) -> np.ndarray:
        families = self.families if families is None else families
        peaks = _peak_columns(families, calibration, self.range.stop)[self.range]
        return np.hstack([peaks, self.continuum])

    def solve(self, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-negative weighted least squares: coefficients and weighted residual."""
        coefficients, _ = scipy.optimize.nnls(design * self.sqrt_w[:, None], self.y * self.sqrt_w, maxiter=50 * 50)
        return coefficients, (self.y - design @ coefficients) * self.sqrt_w

    def residual(self, parameters: np.ndarray) -> np.ndarray:
        offset, gain, fwhm = parameters[0] * 0.01, parameters[1] * 0.001, parameters[2] * 10.0
        return self.solve(self.design(self.calibration(offset, gain, fwhm)))[1]


def _refine(problem: _Problem, notes: list[str]) -> EnergyCalibration:
    """Offset, gain and resolution that fit the summed spectrum best (coarse offset search, then least squares)."""
    fwhm0 = problem.file.fwhm_mn_ev
    offsets = np.arange(-OFFSET_BOUND_KEV, OFFSET_BOUND_KEV + 1e-9, 0.01)
    costs = [float(np.sum(problem.residual(np.array([o / 0.01, 0.0, fwhm0 / 10.0])) ** 2)) for o in offsets]
    start = np.array([offsets[int(np.argmin(costs))] / 0.01, 0.0, fwhm0 / 10.0])
    lower = np.array([-OFFSET_BOUND_KEV / 0.01, -GAIN_BOUND / 0.001, FWHM_BOUNDS_EV[0] / 10.0])
    upper = np.array([OFFSET_BOUND_KEV / 0.01, GAIN_BOUND / 0.001, FWHM_BOUNDS_EV[1] / 10.0])
    result = scipy.optimize.least_squares(
        problem.residual,
        np.clip(start, lower, upper),
        bounds=(lower, upper),
        diff_step=0.02,
        xtol=1e-6,
        loss="soft_l1",
        f_scale=ROBUST_SCALE,
    )
    offset, gain, fwhm = result.x[0] * 0.01, result.x[1] * 0.001, result.x[2] * 10.0
    calibration = problem.calibration(offset, gain, fwhm)
    for name, value, bound in (("offset", offset, OFFSET_BOUND_KEV), ("gain", gain, GAIN_BOUND)):
        if abs(value) >= 0.999 * bound:
            notes.append(
                f"energy calibration: the {name} correction reached its bound ({value:+.4g}); "
                "the file's calibration is far off or the model lacks a strong line"
            )
    return calibration


def _significance_filter(
    residual: np.ndarray, model: np.ndarray, energies: np.ndarray, fwhm_mn_ev: float, scale_kev: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area and significance of a peak of the local FWHM at every channel.

    Returns the area and significance of a zero-mean matched filter (a peak
    standing above its surroundings) and the significance of the plain matched
    filter (the residual there is positive at all, so that the flanks of a
    negative dip do not count as peaks).
    """
    width = int(np.ceil(2.0 * float(fwhm_kev(energies.max(), fwhm_mn_ev)) / scale_kev))
    area = np.zeros_like(residual)
    z = np.zeros_like(residual)
    z_plain = np.zeros_like(residual)
    variance = np.maximum(model, 1.0)
    for c in range(width, residual.size - width):
        window = slice(c - width, c + width + 1)
        fwhm = float(fwhm_kev(energies[c], fwhm_mn_ev))
        e = energies[window]
        edges = np.append(e - scale_kev / 2, e[-1] + scale_kev / 2)
        shape = gaussian_bins(edges, np.array([energies[c]]), np.array([fwhm]))[0]
        kernel = shape - shape.mean()
        area[c] = float(kernel @ residual[window]) / float(kernel @ shape)
        z[c] = float(kernel @ residual[window]) / float(np.sqrt(kernel**2 @ variance[window]))
        z_plain[c] = float(shape @ residual[window]) / float(np.sqrt(shape**2 @ variance[window]))
    return area, z, z_plain


def _unexplained(fit: SummedFit, beam_energy_kev: float) -> list[dict[str, Any]]:
    energies = fit.energies
    scale = fit.calibration.scale_kev
    area, z, z_plain = _significance_filter(
        fit.counts - fit.model, fit.model, energies, fit.calibration.fwhm_mn_ev, scale
    )
    strongest = max((a for a in fit.amplitudes.values()), default=0.0)
    found = []
    for c in np.argsort(-z):
        if z[c] < UNEXPLAINED_SIGMA or len(found) >= 5:
            break
        fwhm = float(fwhm_kev(energies[c], fit.calibration.fwhm_mn_ev))
        if (
            area[c] < UNEXPLAINED_FRACTION * strongest
            or z_plain[c] < UNEXPLAINED_SIGMA
            or any(abs(p["energy_kev"] - energies[c]) < fwhm for p in found)
        ):
            continue
        modelled = {f.element for f in fit.families}
        guesses = guess_lines(float(energies[c]), 0.5 * fwhm, beam_energy_kev, exclude=modelled)
        near_modelled = [
            f"{f.name} {t.name} {t.energy_kev:.3f} keV"
            for f in fit.families
            for t in f.transitions
            if t.weight >= NEAR_WEIGHT and abs(t.energy_kev - energies[c]) <= 0.5 * fwhm
        ]
        text = f"unexplained peak at {energies[c]:.2f} keV ({area[c]:.0f} counts, {z[c]:.0f} σ)"
        if guesses:
            text += f" — {guesses[0][0]}?" + (f" (or {guesses[1][0]})" if len(guesses) > 1 else "")
        if near_modelled:
            text += f" (near the modelled {', '.join(near_modelled)}: perhaps a shape mismatch of that family)"
        found.append(
            {
                "energy_kev": round(float(energies[c]), 3),
                "counts": round(float(area[c]), 1),
                "sigma": round(float(z[c]), 1),
                "guesses": [label for label, _ in guesses],
                "near_modelled": near_modelled,
                "message": text,
            }
        )
    return found


def _line_stats(fit: SummedFit, covariance_sigma: dict[str, float]) -> dict[str, dict[str, Any]]:
    by_name = {f.name: f for f in fit.families}
    energies = fit.energies
    stats = {}
    for line, family_name in families_of_lines(fit.lines).items():
        family = by_name[family_name]
        share = family.share(line)
        energy = next(t.energy_kev for t in family.transitions if t.name in parse_line(line).transitions)
        fwhm = float(fwhm_kev(energy, fit.calibration.fwhm_mn_ev))
        window = np.abs(energies - energy) <= fwhm
        residual = fit.counts[window] - fit.model[window]
        counts = fit.amplitudes[family_name] * share
        stats[line] = {
            "family": family_name,
            "share": round(share, 5),
            "energy_kev": round(energy, 4),
            "counts": round(counts, 1),
            "sigma": round(covariance_sigma[family_name] * share, 1),
            "chi2_reduced": round(_reduced_chi2(fit.counts[window], fit.model[window]), 3),
            "residual_fraction": round(float(residual.sum()) / counts, 5) if counts > 0 else None,
        }
    return stats


def _amplitude_sigmas(design: np.ndarray, sqrt_w: np.ndarray, count: int) -> np.ndarray:
    """Standard deviations of the first ``count`` coefficients of a weighted linear fit."""
    weighted = design * sqrt_w[:, None]
    covariance = np.linalg.pinv(weighted.T @ weighted)
    return np.sqrt(np.maximum(np.diag(covariance)[:count], 0.0))


def fit_summed_spectrum(
    counts: np.ndarray,
    file_calibration: EnergyCalibration,
    lines: Sequence[str],
    families: Sequence[Family],
    *,
    fit_range: slice,
    beam_energy_kev: float,
    refine: bool = True,
) -> SummedFit:
    """Fit the model to a summed spectrum (see the module docstring).

    Parameters
    ----------
    counts : ndarray
        Summed counts of every channel.
    file_calibration : EnergyCalibration
        The files' calibration and the resolution at Mn Kα (given or assumed).
    lines : list of str
        Requested lines; their families are always kept.
    families : list of Family
        Candidate families: those of the requested lines' elements and of the expected elements.
    fit_range : slice
        Channels fitted.
    beam_energy_kev : float
        Beam energy (keV), for the guesses of unexplained peaks.
    refine : bool
        Refine the calibration (else use the file's).

    Returns
    -------
    SummedFit
    """
    counts = np.asarray(counts, dtype=float)
    if counts.sum() <= 0:
        raise InputError("spectra: the summed spectrum holds no counts; nothing can be fitted")
    needed = set(families_of_lines(lines).values())
    families = list(families)
    missing = needed - {f.name for f in families}
    if missing:
        raise InputError(f"families: no candidate family for the requested lines' families {sorted(missing)}")
    notes: list[str] = []
    problem = _Problem(counts, fit_range, families, file_calibration)
    calibration = _refine(problem, notes) if refine else file_calibration
    design = problem.design(calibration)
    coefficients, _ = problem.solve(design)
    sigmas = _amplitude_sigmas(design, problem.sqrt_w, len(families))
    dropped = {}
    kept = []
    for i, family in enumerate(families):
        if family.name in needed or coefficients[i] > KEEP_SIGMA * sigmas[i]:
            kept.append(family)
        else:
            dropped[family.name] = f"not shown by the summed spectrum ({coefficients[i]:.0f} ± {sigmas[i]:.0f} counts)"
    if len(kept) < len(families):
        design = problem.design(calibration, kept)
        coefficients, _ = problem.solve(design)
        sigmas = _amplitude_sigmas(design, problem.sqrt_w, len(kept))
    peaks = len(kept)
    continuum = design[:, peaks:] @ coefficients[peaks:]
    fit = SummedFit(
        calibration=calibration,
        file_calibration=file_calibration,
        fit_range=fit_range,
        counts=problem.y,
        families=kept,
        amplitudes={f.name: float(coefficients[i]) for i, f in enumerate(kept)},
        sigmas={f.name: float(sigmas[i]) for i, f in enumerate(kept)},
        continuum=continuum,
        model=design @ coefficients,
        lines=list(lines),
        dropped=dropped,
        notes=notes,
    )
    fit.line_stats = _line_stats(fit, fit.sigmas)
    _note_calibration(fit)
    fit.unexplained = _unexplained(fit, beam_energy_kev)
    fit.notes.extend(p["message"] for p in fit.unexplained)
    return fit


def _note_calibration(fit: SummedFit) -> None:
    """Note a calibration correction larger than ``LARGE_CORRECTION_EV`` at the fitted lines."""
    old, new = fit.file_calibration, fit.calibration
    energies = [stats["energy_kev"] for stats in fit.line_stats.values()]
    shifts = []
    for energy in energies:
        channel = (energy - new.offset_kev) / new.scale_kev  # where the line lies on the corrected axis
        shifts.append(1e3 * (energy - (old.offset_kev + channel * old.scale_kev)))
    worst = max(shifts, key=abs) if shifts else 0.0
    if abs(worst) > LARGE_CORRECTION_EV:
        fit.notes.append(
            f"energy calibration: the summed spectrum puts the lines up to {worst:+.0f} eV from the files' "
            "energy axis; the corrected calibration was used (check the files' calibration)"
        )
    if abs(new.fwhm_mn_ev - old.fwhm_mn_ev) > 0.1 * old.fwhm_mn_ev:
        fit.notes.append(
            f"detector resolution: the summed spectrum gives {new.fwhm_mn_ev:.0f} eV at Mn Kα "
            f"(given or assumed: {old.fwhm_mn_ev:.0f} eV); the fitted value was used"
        )
