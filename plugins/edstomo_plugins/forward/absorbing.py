"""The absorbing forward model: the thin-film signal with each EDS line attenuated on its way to the detectors."""

from __future__ import annotations

from typing import Any

import numpy as np
from edstomo.absorption import AbsorptionModel, checked_partial
from edstomo.data import CompositionMaps
from edstomo.experiment import Experiment
from edstomo.factors import PhysicsFactors
from edstomo.operators import projector_for
from edstomo.operators.attenuation import AttenuatedProjector

from ..physics.efficiency import detector
from .thin_film import ThinFilmForward


def head_efficiency(head: Any, line: str) -> float:
    """ε of one detector head for one line from its layered model (1 when it describes none)."""
    if not head.has_efficiency_model:
        return 1.0
    from edstomo.lines import parse_line

    return float(detector(head.efficiency_model()).efficiency(parse_line(line).energy_kev))


class AbsorbingForward(ThinFilmForward):
    """HAADF and EDS sinograms with X-ray absorption in the specimen (3-D, per tilt and detector).

    EDS line A at tilt t is ``n f_A W_t (a_{A,t} ⊙ C_A ρ)`` with ``a`` the
    transmission to the experiment's detectors (:class:`edstomo.absorption.AbsorptionModel`:
    mixture-rule μ from xraylib, the path turning with the holder, detectors
    weighted by solid angle and efficiency); the HAADF signal is not attenuated.
    With no absorbing matter on any path it equals ``thin-film`` exactly.
    The experiment must give the detectors' elevation (``eds.elevation`` or ``eds.detectors``).
    """

    name = "absorbing"
    default = False
    description = "Thin-film signal with 3-D X-ray absorption to each EDS detector (xraylib μ, mixture rule)"

    def __init__(self, experiment: Experiment, factors: PhysicsFactors, **options: Any):
        super().__init__(experiment, factors, **options)
        self.model = AbsorptionModel(experiment, efficiency=head_efficiency)

    def transmissions(self, truth: CompositionMaps) -> np.ndarray:
        """Transmission of every voxel, shape (tilts, nz, nx, lines, slices)."""
        if truth.density is None:
            raise ValueError("truth: the phantom has no density; absorption needs it (g/cm³)")
        partial = np.stack([truth.fraction(e) * truth.density for e in self.model.elements], axis=-1)
        return self.model.factors(checked_partial(partial, len(self.model.elements)), self.experiment.tilts.radians)

    def expected(self, truth: CompositionMaps) -> np.ndarray:
        plain = self.mass_thickness(truth)  # (lines, tilts, positions, slices), g/cm²
        exp = self.experiment
        partial = np.stack([truth.fraction(e) * truth.density for e in exp.elements], axis=-1)  # (nz, nx, ny, lines)
        projector = projector_for(exp.tilts.radians, truth.shape[:2], model=self.options.projector, dtype="float64")
        operator = AttenuatedProjector(projector, self.transmissions(truth))
        attenuated = operator.forward(np.moveaxis(partial, 3, 2))  # (tilts, positions, lines, slices)
        attenuated = np.moveaxis(attenuated, 2, 0) * exp.scan.pixel_size.m_as("cm")
        scales = self.scales()
        eds = [scales[line] * attenuated[i] for i, line in enumerate(exp.lines)]
        if exp.haadf is None:
            return np.stack(eds)
        haadf = sum(scales[f"HAADF:{line}"] * plain[i] for i, line in enumerate(exp.lines))
        return np.stack([haadf, *eds])
