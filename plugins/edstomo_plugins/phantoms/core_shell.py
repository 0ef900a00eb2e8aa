"""The Ag–Au core–shell particle of Yuan et al. (2020), section 3.1.1, as a 2-D slice or a 3-D sphere."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

import numpy as np
from edstomo import provenance
from edstomo.data import CompositionMaps
from edstomo.experiment import Experiment, Length
from edstomo.interfaces import Phantom
from edstomo.options import PluginOptions
from pydantic import AfterValidator, Field, model_validator

from .grid import ball_coverage, check_composition, grid_shape, regions_to_maps


class CoreShellPhantom(Phantom):
    """A concentric core–shell particle (default: the paper's Ag–Au one).

    Parameters
    ----------
    outer_radius, core_radius : str or Quantity
        Radii (lengths); default 55 nm and 30 nm.
    core, shell : dict
        Weight fractions of each region; default core 80 wt% Au / 20 wt% Ag,
        shell 20 wt% Au / 80 wt% Ag.
    dimension : {2, 3}
        2: a disk in every slice (a cylinder along the tilt axis; one slice for
        the paper's 2-D phantom). 3: a sphere centred on the middle slice.
    supersample : int
        Sub-samples per voxel edge on the boundaries (antialiasing).

    The density of each region is that of an ideal mixture of the pure elements
    (1/ρ = Σ C_A/ρ_A); boundary voxels hold the mass of the parts they contain.
    """

    name = "core-shell"
    description = "Concentric core-shell particle (Yuan 2020 Ag-Au by default), 2-D disk or 3-D sphere"

    default = True

    class Options(PluginOptions):
        outer_radius: Length = Field("55 nm", description="outer radius of the particle")
        core_radius: Length = Field("30 nm", description="radius of the core")
        core: Annotated[dict[str, float], AfterValidator(partial(check_composition, "core"))] = Field(
            default_factory=lambda: {"Au": 0.8, "Ag": 0.2}, description="weight fractions of the core"
        )
        shell: Annotated[dict[str, float], AfterValidator(partial(check_composition, "shell"))] = Field(
            default_factory=lambda: {"Au": 0.2, "Ag": 0.8}, description="weight fractions of the shell"
        )
        dimension: Literal[2, 3] = Field(2, description="2: a disk in every slice; 3: a sphere")
        supersample: int = Field(8, ge=1, description="sub-samples per voxel edge on the boundaries")

        @model_validator(mode="after")
        def _radii(self) -> CoreShellPhantom.Options:
            if not self.core_radius.m_as("nm") < self.outer_radius.m_as("nm"):
                raise ValueError(f"core_radius: {self.core_radius} must be below outer_radius {self.outer_radius}")
            return self

    def generate(self, experiment: Experiment) -> CompositionMaps:
        nz, nx, slices = grid_shape(experiment)
        pixel = experiment.scan.pixel_size.m_as("nm")
        outer, core = self.outer_radius.m_as("nm") / pixel, self.core_radius.m_as("nm") / pixel
        if outer > min(nz, nx) / 2:
            raise ValueError(
                f"outer_radius: {self.outer_radius} does not fit in the field of view "
                f"({nx} positions of {experiment.scan.pixel_size})"
            )
        shape = (nz, nx) if self.dimension == 2 else (nz, nx, slices)
        whole = ball_coverage(shape, outer, supersample=self.supersample)
        inner = ball_coverage(shape, core, supersample=self.supersample)
        elements = list(dict.fromkeys([*experiment.elements, *self.core, *self.shell]))
        fractions, density = regions_to_maps([(inner, self.core), (whole - inner, self.shell)], elements)
        if self.dimension == 2:
            fractions = np.repeat(fractions[..., None], slices, axis=-1)
            density = np.repeat(density[..., None], slices, axis=-1)
        record = provenance.step("phantom", self.name, **self.parameters())
        return CompositionMaps(
            weight_fractions=fractions,
            elements=elements,
            pixel_size=experiment.scan.pixel_size,
            density=density,
            experiment=experiment,
            provenance=[record],
        )

    def regions(self, experiment: Experiment) -> dict[str, np.ndarray]:
        """Boolean masks of the core and the shell (voxel centre inside), shape (nz, nx, slices)."""
        nz, nx, slices = grid_shape(experiment)
        pixel = experiment.scan.pixel_size.m_as("nm")
        axes = [np.arange(n) - (n - 1) / 2 for n in (nz, nx, slices)]
        z, x, y = np.meshgrid(*axes, indexing="ij")
        radius = np.sqrt(z**2 + x**2 + (y**2 if self.dimension == 3 else 0)) * pixel
        return {
            "core": radius <= self.core_radius.m_as("nm"),
            "shell": (radius > self.core_radius.m_as("nm")) & (radius <= self.outer_radius.m_as("nm")),
        }
