"""X-ray absorption in the specimen: transmission to the detectors, and its correction in reconstruction.

The thin-film model (paper eq. 10) counts every X-ray emitted. In a thick
specimen an X-ray of line A emitted in voxel p reaches detector h with
probability ``exp(−∫ m_A ds)`` along the path from p towards h, where

    m_A = ρ Σ_E w_E μ_E(E_A) = Σ_E c_E μ_E(E_A)

(mixture rule: ``c_E = ρ w_E`` the partial density of element E in g/cm³,
``μ_E(E_A)`` its mass attenuation coefficient at the line's energy in cm²/g,
from ``xraylib.CS_Total``). The signal of line A at tilt t is then
``W_t (a_{A,t} ⊙ X_A)`` with the transmission averaged over the detectors,
weighted by what each collects::

    a_{A,t}(p) = Σ_h Ω_h ε_h(A) exp(−∫ m_A ds along d_h(t)) / Σ_h Ω_h ε_h(A)

(:class:`AbsorptionModel`; the geometry is in :mod:`edstomo.operators.attenuation`).

Correction (:class:`AbsorptionCorrection`): reconstruct and quantify as usual;
from the composition and a density, compute each line's transmissions; divide
each EDS ray by its emission-weighted transmission ``r = W_t(a ⊙ c_A) / W_t(c_A)``
(the HAADF rays are not attenuated and stay); reconstruct the corrected series
with the same solver and quantify again; repeat until the particle's fractions
change by less than a tolerance. A fixed point fits the attenuated model:
``W_t(a ⊙ X) = b``. Any solver can be used unchanged, since the correction acts
on its data; the transmissions depend on the whole volume, so the loop couples
slices (:attr:`AbsorptionCorrection.couples_slices`) and runs on the whole series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xraylib

from . import provenance
from .data import HAADF, CompositionMaps, TiltSeries, Volume
from .errors import InputError
from .experiment import Experiment
from .lines import atomic_number, element_density, element_of, parse_line
from .operators import ParallelBeamProjector, projector_for
from .operators.attenuation import detector_direction, path_integrals
from .units import ureg

__all__ = [
    "AbsorptionCorrection",
    "AbsorptionModel",
    "CorrectionResult",
    "mass_attenuation",
    "mixture_density",
]

#: Elements below this density (g/cm³) at room temperature are gases: no "pure element" density for a mixture.
GAS_DENSITY = 0.1


def mass_attenuation(lines: list[str], elements: list[str]) -> np.ndarray:
    """μ_E(E_A): total mass attenuation coefficient of each element at each line's energy (cm²/g).

    Returns
    -------
    ndarray, shape (lines, elements)
        From ``xraylib.CS_Total`` (photo-absorption plus scattering).
    """
    table = np.empty((len(lines), len(elements)))
    for i, line in enumerate(lines):
        energy = parse_line(line).energy_kev
        for j, element in enumerate(elements):
            table[i, j] = xraylib.CS_Total(atomic_number(element), energy)
    return table


def mixture_density(fractions: np.ndarray, elements: list[str]) -> np.ndarray:
    """Density of an ideal mixture of the pure elements, 1/ρ = Σ w_E / ρ_E (g/cm³), 0 where Σ w = 0.

    Raises
    ------
    InputError
        For an element that is a gas at room temperature (O, N, …): the pure
        element gives no density for a solid; give the density instead.
    """
    densities = np.array([element_density(e) for e in elements])
    gases = [e for e, rho in zip(elements, densities) if rho < GAS_DENSITY]
    if gases:
        raise InputError(
            f"density: 'mixture' needs the density of each pure element, but {gases} are gases at room "
            "temperature; give the specimen's density in g/cm³ (e.g. 3.3) or 'maps'"
        )
    volume = np.tensordot(1.0 / densities, fractions, axes=(0, 0))
    return np.divide(1.0, volume, out=np.zeros_like(volume), where=volume > 0)


@dataclass(frozen=True)
class _Head:
    elevation: float  # rad
    azimuth: float  # rad, from the perpendicular to the tilt axis
    weights: np.ndarray  # (lines,): Ω ε / Σ Ω ε


class AbsorptionModel:
    """Transmissions of the experiment's lines to its detectors, for a given specimen.

    Parameters
    ----------
    experiment : Experiment
        Lines, tilts, pixel size and the EDS detectors' geometry
        (``eds.elevation``/``azimuth`` or ``eds.detectors``).
    lines : list of str, optional
        The lines (default: the experiment's).
    efficiency : callable, optional
        ``efficiency(head, line) -> ε`` of one detector head for one line; heads
        are then weighted by Ω ε (default: by their solid angle Ω alone).

    Raises
    ------
    InputError
        When the experiment gives no detector elevation.
    """

    def __init__(
        self,
        experiment: Experiment,
        lines: list[str] | None = None,
        efficiency: Callable[[Any, str], float] | None = None,
    ) -> None:
        heads = experiment.eds.heads
        if not heads:
            raise InputError(
                "eds: the experiment gives no detector geometry; absorption needs eds.elevation (and azimuth) or "
                "eds.detectors (elevation, azimuth, solid_angle of each)"
            )
        self.experiment = experiment
        self.lines = list(lines) if lines is not None else list(experiment.lines)
        self.elements = [element_of(line) for line in self.lines]
        self.mu = mass_attenuation(self.lines, self.elements)
        offset = experiment.eds.tilt_axis.m_as("rad") - math.pi / 2
        collected = np.array(
            [
                [h.solid_angle.m_as("sr") * (efficiency(h, line) if efficiency else 1.0) for line in self.lines]
                for h in heads
            ]
        )
        collected /= collected.sum(axis=0, keepdims=True)
        self.heads = [
            _Head(h.elevation.m_as("rad"), h.azimuth.m_as("rad") - offset, collected[i]) for i, h in enumerate(heads)
        ]
        self.pixel_cm = experiment.scan.pixel_size.m_as("cm")

    def describe(self) -> dict[str, Any]:
        """The geometry and coefficients, for provenance."""
        return {
            "lines": self.lines,
            "detectors": [
                {
                    "elevation_deg": math.degrees(h.elevation),
                    "azimuth_from_tilt_axis_normal_deg": math.degrees(h.azimuth),
                    "weights": dict(zip(self.lines, h.weights.tolist())),
                }
                for h in self.heads
            ],
            "mass_attenuation_cm2_per_g": {
                line: dict(zip(self.elements, row.tolist())) for line, row in zip(self.lines, self.mu)
            },
            "source": f"xraylib {xraylib.__version__} CS_Total, mixture rule",
        }

    def transmission(self, partial: np.ndarray, tilt: float) -> np.ndarray:
        """``a_{A,t}`` of every voxel at one tilt, averaged over the detectors.

        Parameters
        ----------
        partial : ndarray, shape (nz, nx, slices, elements)
            Partial densities ``c_E = ρ w_E`` (g/cm³) of the model's elements, in order.
        tilt : float
            Tilt angle (radians).

        Returns
        -------
        ndarray, shape (nz, nx, lines, slices)
            Transmissions in [0, 1] (the solver layout of one tilt).
        """
        columns = partial * self.pixel_cm  # g/cm² per pixel of path
        result = np.zeros((partial.shape[0], partial.shape[1], len(self.lines), partial.shape[2]))
        for head in self.heads:
            direction = detector_direction(head.elevation, head.azimuth, tilt)
            mass = path_integrals(columns, direction)  # (nz, nx, slices, elements), g/cm²
            optical = np.tensordot(mass, self.mu, axes=([3], [1]))  # (nz, nx, slices, lines)
            result += np.moveaxis(np.exp(-optical), 3, 2) * head.weights[None, None, :, None]
        return result

    def factors(self, partial: np.ndarray, angles: np.ndarray) -> np.ndarray:
        """Transmissions at every tilt, shape (tilts, nz, nx, lines, slices) (for :class:`AttenuatedProjector`)."""
        partial = checked_partial(partial, len(self.elements))
        return np.stack([self.transmission(partial, float(t)) for t in np.asarray(angles, dtype=float)])

    def ray_transmission(self, partial: np.ndarray, projector: ParallelBeamProjector) -> np.ndarray:
        """Emission-weighted transmission of each ray, ``W_t(a ⊙ c_A) / W_t(c_A)``, shape (tilts, n_det, lines, slices).

        ``c_A`` is the partial density of each line's element; rays that cross no
        emitter get 1.
        """
        partial = checked_partial(partial, len(self.elements))
        emission = np.moveaxis(partial, 3, 2)  # (nz, nx, lines, slices): the emitters of each line
        plain = projector.forward(emission)
        attenuated = np.empty_like(plain)
        n_det = projector.n_det
        matrix = projector.matrix
        n = emission.shape[0] * emission.shape[1]
        for t, angle in enumerate(projector.angles):
            weighted = (self.transmission(partial, float(angle)) * emission).reshape(n, -1)
            attenuated[t] = (matrix[t * n_det : (t + 1) * n_det] @ weighted).reshape(attenuated.shape[1:])
        floor = 1e-9 * max(float(plain.max(initial=0.0)), 1e-300)
        return np.where(plain > floor, attenuated / np.where(plain > floor, plain, 1.0), 1.0)


def checked_partial(partial: np.ndarray, elements: int) -> np.ndarray:
    """Partial densities as float64 ``(nz, nx, slices, elements)``; negative or non-finite values are an error."""
    partial = np.asarray(partial, dtype=float)
    if partial.ndim != 4 or partial.shape[3] != elements:
        raise InputError(f"density: partial densities of shape {partial.shape}; expected (nz, nx, slices, {elements})")
    if not np.all(np.isfinite(partial)):
        raise InputError("density: partial densities contain NaN or infinite values")
    if partial.min(initial=0.0) < 0:
        raise InputError(f"density: {partial.min():g} g/cm³ is negative; densities must be >= 0 (g/cm³)")
    return partial


def partial_densities(composition: CompositionMaps, elements: list[str], density: Any) -> np.ndarray:
    """``c_E = ρ w_E`` (g/cm³) of ``elements``, shape (nz, nx, slices, elements), 0 outside the particle.

    ``density``: an array (nz, nx, slices) or a number in g/cm³ (constant in the particle),
    or ``"mixture"`` (:func:`mixture_density` of the fractions).
    """
    fractions = np.stack([composition.fraction(e) for e in elements])
    if isinstance(density, str):
        if density != "mixture":
            raise InputError(f"density: {density!r} must be 'mixture', 'maps' or a density in g/cm³")
        rho = mixture_density(fractions, elements)
    else:
        rho = np.asarray(density, dtype=float)
        if rho.ndim == 0:
            rho = _positive_density(float(rho)) * (fractions.sum(axis=0) > 0)
        elif rho.min(initial=0.0) < 0 or not np.all(np.isfinite(rho)):
            raise InputError("density: the density map has negative or non-finite values (g/cm³ expected, >= 0)")
    return np.moveaxis(fractions * rho[None], 0, 3)


def _positive_density(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"density: {value!r} g/cm³ must be positive and finite")
    return value


def density_from_maps(maps: Volume, factors: np.ndarray) -> np.ndarray:
    """The density that the maps' absolute scale implies (g/cm³), shape (nz, nx, slices).

    For EDS-scale maps ``X_A = n f_A C_A ρ ℓ`` (``n = N_A D_e Ω/4π``, ℓ the
    pixel length) and HAADF-scale maps ``X_A = D_H N_A z_A C_A ρ ℓ``, the summed
    map ``Σ_A X_A/g_A`` is ``K ρ ℓ`` with K known from the experiment's doses
    and solid angle; only as right as those are.
    """
    experiment = maps.experiment
    if experiment is None or maps.factor not in ("f_A", "z_A"):
        raise InputError("density: 'maps' needs line maps with their experiment and factor (f_A or z_A)")
    avogadro = ureg.Quantity(1, "avogadro_constant").m_as("1/mol")
    if maps.factor == "f_A":
        scale = avogadro * experiment.eds_electrons_per_pixel.m_as("e") * experiment.eds.solid_angle.m_as("sr")
        scale /= 4 * math.pi
    else:
        scale = avogadro * experiment.haadf_electrons_per_pixel.m_as("e")
    scale *= 1e-24 * maps.pixel_size.m_as("cm")  # b·mol/g → cm²·mol/g, per pixel of length
    summed = np.tensordot(1.0 / np.asarray(factors, dtype=float), np.clip(maps.data, 0, None), axes=(0, 0))
    return summed / scale


@dataclass
class CorrectionResult:
    """The corrected maps and composition, and how the iteration went.

    ``series`` is the corrected series the final maps were reconstructed from and
    ``transmission`` its ray transmissions ``{line: (tilts, positions, slices)}``
    (each EDS ray of the measured series divided by them); None and empty before
    the first correction.
    """

    maps: Volume
    composition: CompositionMaps
    uncorrected_maps: Volume
    uncorrected: CompositionMaps
    history: list[dict[str, float]] = field(default_factory=list)
    converged: bool = False
    series: TiltSeries | None = None
    transmission: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class AbsorptionCorrection:
    """Iterate reconstruct → quantify → transmissions → corrected data → reconstruct (see the module docstring).

    Parameters
    ----------
    model : AbsorptionModel
        Geometry and attenuation coefficients of the lines.
    density : "mixture", "maps" or float
        How the specimen density is estimated from each quantification: the
        ideal mixture of the pure elements, the maps' absolute scale
        (:func:`density_from_maps`), or a constant in g/cm³.
    tolerance : float
        Stop when no element's particle-mean weight fraction changes by more than this (a fraction, e.g. 0.002).
    max_iterations : int
        Most corrected reconstructions.
    """

    model: AbsorptionModel
    density: Any = "mixture"
    tolerance: float = 0.002
    max_iterations: int = 5

    #: The transmissions of a voxel depend on voxels in other slices: the loop runs on the whole series.
    couples_slices = True

    def __post_init__(self) -> None:
        if not (isinstance(self.density, str) and self.density in ("mixture", "maps")):
            try:
                self.density = _positive_density(float(self.density))
            except (TypeError, ValueError):
                raise InputError(f"density: {self.density!r} must be 'mixture', 'maps' or a density in g/cm³") from None
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise InputError(f"tolerance: {self.tolerance!r} must be a positive weight fraction")
        if int(self.max_iterations) != self.max_iterations or self.max_iterations < 1:
            raise InputError(f"max_iterations: {self.max_iterations!r} must be a positive integer")

    def partial(self, maps: Volume, composition: CompositionMaps, factors: np.ndarray) -> np.ndarray:
        """Partial densities (nz, nx, slices, elements) from a quantification."""
        if self.density == "maps":
            rho = density_from_maps(maps, factors) * (composition.mask if composition.mask is not None else 1)
            return partial_densities(composition, self.model.elements, rho)
        return partial_densities(composition, self.model.elements, self.density)

    def corrected(self, series: TiltSeries, partial: np.ndarray, projector: ParallelBeamProjector) -> TiltSeries:
        """The series with each EDS ray divided by its transmission (HAADF unchanged)."""
        return self.divided(series, self.model.ray_transmission(partial, projector))

    def divided(self, series: TiltSeries, ratio: np.ndarray) -> TiltSeries:
        """The series with each EDS ray divided by ``ratio`` (tilts, positions, lines, slices) (HAADF unchanged)."""
        data = np.array(series.data, dtype=float, copy=True)
        for k, line in enumerate(self.model.lines):
            index = series.channels.index(line)
            data[index] = data[index] / ratio[:, :, k, :]
        record = provenance.step(
            "absorption-correct",
            "edstomo.absorption",
            density=self.density if isinstance(self.density, (str, float)) else "map",
            mean_ray_transmission={
                line: float(np.mean(ratio[:, :, k][ratio[:, :, k] < 1])) if np.any(ratio[:, :, k] < 1) else 1.0
                for k, line in enumerate(self.model.lines)
            },
            haadf="not attenuated" if HAADF in series.channels else "absent",
        )
        return series.with_step(record, data=data)

    def run(
        self,
        series: TiltSeries,
        solve: Callable[[TiltSeries], Volume],
        quantify: Callable[[Volume], CompositionMaps],
        factors: np.ndarray,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> CorrectionResult:
        """Run the correction.

        Parameters
        ----------
        series : TiltSeries
            The measured series (EDS lines of :attr:`AbsorptionModel.lines`, HAADF optional).
        solve : callable
            ``solve(series) -> Volume`` of the model's lines (any solver's ``solve``).
        quantify : callable
            ``quantify(maps) -> CompositionMaps`` (the quantifier of the solver's maps).
        factors : ndarray
            The per-line factors g_A of the maps (f_A or z_A, b·mol/g), for ``density="maps"``.
        progress : callable, optional
            ``progress("absorption-correction", done, total)``.
        """
        missing = [line for line in self.model.lines if line not in series.channels]
        if missing:
            raise InputError(f"series: lines {missing} of the absorption model are not in its channels")
        shape = (series.n_positions, series.n_positions)
        projector = projector_for(series.angles.m_as("rad"), shape, "strip", "float64")
        start = time.perf_counter()
        first = solve(series)
        composition = quantify(first)
        result = CorrectionResult(first, composition, first, composition)
        previous = self._means(composition)
        for iteration in range(1, self.max_iterations + 1):
            partial = self.partial(result.maps, result.composition, factors)
            ratio = self.model.ray_transmission(partial, projector)  # (tilts, n_det, lines, slices)
            result.series = self.divided(series, ratio)
            result.transmission = {line: ratio[:, :, k, :] for k, line in enumerate(self.model.lines)}
            maps = solve(result.series)
            composition = quantify(maps)
            means = self._means(composition)
            change = float(np.max(np.abs(means - previous)))
            result.maps, result.composition = maps, composition
            result.history.append(
                {"iteration": iteration, "max_change_wt": change, "seconds": time.perf_counter() - start}
            )
            previous = means
            if progress is not None:
                progress("absorption-correction", iteration, self.max_iterations)
            if change < self.tolerance:
                result.converged = True
                break
        record = provenance.step(
            "absorption-correction",
            "edstomo.absorption",
            model=self.model.describe(),
            density=self.density if isinstance(self.density, (str, float)) else "map",
            tolerance=self.tolerance,
            iterations=len(result.history),
            converged=result.converged,
            history=result.history,
        )
        result.composition.provenance.append(record)
        return result

    def _means(self, composition: CompositionMaps) -> np.ndarray:
        mask = composition.mask if composition.mask is not None else composition.weight_fractions.sum(axis=0) > 0
        if not mask.any():
            raise InputError("composition: the quantified particle is empty; nothing to correct")
        return np.array([composition.fraction(e)[mask].mean() for e in self.model.elements])
