"""The thin-film forward model of Yuan et al. (2020): no absorption, no fluorescence, single scattering."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from edstomo.data import CompositionMaps
from edstomo.experiment import Experiment
from edstomo.factors import PhysicsFactors, avogadro
from edstomo.interfaces import ForwardModel
from edstomo.operators import MODELS, projector_for
from edstomo.options import PluginOptions
from edstomo.units import FACTOR_UNIT, ureg
from pydantic import Field


class ThinFilmForward(ForwardModel):
    """HAADF and EDS sinograms of a phantom in the thin-film approximation.

    For beam ``i`` and line ``A`` of element ``A`` (paper eq. 10, 14)::

        I_A,i = n f_A Σ_j w_ij C_A,j ρ_j,         n = N_A D_e Ω / 4π
        I_H,i = D_H N_A Σ_A z_A Σ_j w_ij C_A,j ρ_j

    with D_e, D_H the electrons per pixel of the EDS and HAADF acquisitions,
    Ω the detector solid angle, and w_ij the projector weights (path lengths).

    Parameters
    ----------
    experiment, factors
        The acquisition and the physics factors of its lines.
    projector : {"strip", "joseph"}
        Projector model (the paper's is the strip model).
    """

    name = "thin-film"
    default = True
    description = "Thin-film HAADF + EDS sinograms (paper eq. 10 and 14), optional Poisson noise"

    class Options(PluginOptions):
        projector: Literal[MODELS] = Field("strip", description="projection model of the simulation")

    def __init__(self, experiment: Experiment, factors: PhysicsFactors, **options: Any):
        super().__init__(experiment, factors, **options)
        missing = [line for line in experiment.lines if line not in factors.parameters]
        if missing:
            raise ValueError(f"factors: no physics factors for lines {missing}; they cover {factors.lines}")
        if experiment.haadf is not None and any(p.sigma_ela is None for p in factors.parameters.values()):
            raise ValueError("factors: the HAADF signal needs elastic cross-sections (z_A) for every line")

    def scales(self) -> dict[str, float]:
        """Counts per unit mass thickness (per g/cm²) of each channel's element: n f_A and D_H N_A z_A."""
        exp = self.experiment
        na = avogadro()
        eds = na * exp.eds_electrons_per_pixel.to("e").magnitude * exp.eds.solid_angle.to("sr") / (4 * np.pi * ureg.sr)
        scales = {line: float((eds * self.factors.f[line].to(FACTOR_UNIT)).m_as("cm**2/g")) for line in exp.lines}
        if exp.haadf is not None:
            haadf = na * exp.haadf_electrons_per_pixel.to("e").magnitude
            for line in exp.lines:
                scales[f"HAADF:{line}"] = float((haadf * self.factors.z[line]).m_as("cm**2/g"))
        return scales

    def mass_thickness(self, truth: CompositionMaps) -> np.ndarray:
        """Projected mass thickness Σ_j w_ij C_A,j ρ_j of each line's element (g/cm²),
        shape (lines, tilts, positions, slices)."""
        exp = self.experiment
        expected_shape = (exp.scan.positions, exp.scan.positions, exp.scan.slices)
        if truth.shape != expected_shape:
            raise ValueError(
                f"truth: phantom grid {truth.shape} does not match the experiment's {expected_shape} "
                "(positions, positions, slices)"
            )
        absent = [e for e in exp.elements if e not in truth.elements]
        extra = [e for e in truth.elements if e not in exp.elements and truth.fraction(e).any()]
        if absent or extra:
            raise ValueError(
                f"truth: phantom elements {truth.elements} do not match the experiment's lines {exp.lines}"
            )
        partial = np.stack([truth.fraction(e) for e in exp.elements]) * truth.density[None]
        projector = projector_for(
            exp.tilts.radians, (expected_shape[0], expected_shape[1]), model=self.options.projector, dtype="float64"
        )
        stacked = np.moveaxis(partial, 0, -1)  # (nz, nx, slices, lines)
        projected = projector.forward(stacked)  # (tilts, positions, slices, lines), pixel lengths
        length_cm = exp.scan.pixel_size.m_as("cm")
        return np.moveaxis(projected, -1, 0) * length_cm

    def expected(self, truth: CompositionMaps) -> np.ndarray:
        thickness = self.mass_thickness(truth)
        scales = self.scales()
        eds = [scales[line] * thickness[i] for i, line in enumerate(self.experiment.lines)]
        channels = eds
        if self.experiment.haadf is not None:
            haadf = sum(scales[f"HAADF:{line}"] * thickness[i] for i, line in enumerate(self.experiment.lines))
            channels = [haadf, *eds]
        return np.stack(channels)
