"""A phantom built from shapes of uniform composition: ellipsoids, boxes and cylinders, defined in a run file.

Example run file section::

    phantom:
      name: shapes
      options:
        shapes:
          - {kind: ellipsoid, radii: [40 nm, 55 nm, 40 nm], composition: {Fe: 0.7, Ni: 0.3}}
          - {kind: box, centre: [10 nm, -15 nm, 0 nm], radii: [12 nm, 8 nm, 30 nm], rotation: 30 deg,
             composition: {Fe: 0.2, Ni: 0.8}}

Coordinates are ``(z, x, y)`` in a length unit, measured from the centre of the
reconstruction grid: z along the beam at 0° tilt, x across the tilt axis, y
along it (the slices).  ``radii`` are the semi-axes (half sizes of a box; for a
cylinder, the radii in z and x and the half length along y).  ``rotation``
turns the shape about the tilt axis.  Later shapes replace earlier ones where
they overlap.  Voxels the boundary crosses hold the fraction of the shape they
contain (sampled on a sub-grid), so interfaces are not staircases of whole voxels.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
from edstomo import provenance
from edstomo.data import CompositionMaps
from edstomo.experiment import Angle, Experiment, Length, quantity_field
from edstomo.interfaces import Phantom
from edstomo.options import PluginOptions
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .grid import check_composition, grid_shape, regions_to_maps

__all__ = ["Shape", "ShapesPhantom"]

#: A coordinate: a length of either sign.
Position = quantity_field("nm")


class Shape(BaseModel):
    """One region of uniform composition (see the module docstring for the coordinates)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, validate_default=True)

    kind: Literal["ellipsoid", "box", "cylinder"] = Field("ellipsoid", description="shape of the region")
    centre: tuple[Position, Position, Position] = Field(("0 nm", "0 nm", "0 nm"), description="centre (z, x, y)")
    radii: tuple[Length, Length, Length] = Field(description="semi-axes (z, x, y), all positive")
    rotation: Angle = Field("0 deg", description="rotation about the tilt axis (y)")
    composition: Annotated[dict[str, float], AfterValidator(partial(check_composition, "composition"))] = Field(
        description="weight fractions of the elements, summing to 1"
    )
    density: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="g/cm³ (default: the ideal mixture of the pure elements)"
    )

    def level(self, z: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A level function of the shape at points in nm: ≤ 1 inside, > 1 outside, growing with distance."""
        cz, cx, cy = (c.m_as("nm") for c in self.centre)
        az, ax, ay = (r.m_as("nm") for r in self.radii)
        theta = self.rotation.m_as("rad")
        dz, dx = z - cz, x - cx
        uz, ux, uy = np.cos(theta) * dz + np.sin(theta) * dx, -np.sin(theta) * dz + np.cos(theta) * dx, y - cy
        if self.kind == "ellipsoid":
            return np.sqrt((uz / az) ** 2 + (ux / ax) ** 2 + (uy / ay) ** 2)
        if self.kind == "box":
            return np.maximum(np.maximum(np.abs(uz) / az, np.abs(ux) / ax), np.abs(uy) / ay)
        return np.maximum(np.sqrt((uz / az) ** 2 + (ux / ax) ** 2), np.abs(uy) / ay)

    def coverage(self, shape: tuple[int, int, int], pixel: float, supersample: int) -> np.ndarray:
        """The fraction of each voxel of a grid (voxels of ``pixel`` nm, centred) inside the shape."""
        axes = [(np.arange(n) - (n - 1) / 2) * pixel for n in shape]
        z, x, y = np.meshgrid(*axes, indexing="ij")
        level = self.level(z, x, y)
        smallest = min(r.m_as("nm") for r in self.radii)
        # the level changes by at most 1/smallest radius per nm: voxels whose centre is within a half
        # diagonal of the boundary may be cut by it and are sampled on the sub-grid
        band = np.sqrt(3) / 2 * pixel / smallest
        coverage = (level <= 1).astype(float)
        boundary = np.nonzero(np.abs(level - 1) <= band)
        if boundary[0].size:
            offsets = ((np.arange(supersample) + 0.5) / supersample - 0.5) * pixel
            sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
            centres = np.stack([z[boundary], x[boundary], y[boundary]], axis=-1)
            points = centres[:, None, :] + sub[None, :, :]
            inside = self.level(points[..., 0], points[..., 1], points[..., 2]) <= 1
            coverage[boundary] = inside.mean(axis=1)
        return coverage


class ShapesPhantom(Phantom):
    """Regions of uniform composition (ellipsoids, boxes, cylinders), later ones on top of earlier ones."""

    name = "shapes"
    description = "Ellipsoids, boxes and cylinders of given compositions (define your own sample in a run file)"

    class Options(PluginOptions):
        shapes: list[Shape] = Field(min_length=1, description="the regions, in painting order")
        supersample: int = Field(4, ge=1, le=16, description="sub-samples per voxel edge on the boundaries")

    def generate(self, experiment: Experiment) -> CompositionMaps:
        shape = grid_shape(experiment)
        pixel = experiment.scan.pixel_size.m_as("nm")
        elements = list(dict.fromkeys([*experiment.elements, *(e for s in self.options.shapes for e in s.composition)]))
        free = np.ones(shape)  # the part of each voxel no later shape has taken
        coverages = []
        for region in reversed(self.options.shapes):
            coverages.append(region.coverage(shape, pixel, self.options.supersample) * free)
            free -= coverages[-1]
        regions = [(c, s.composition) for c, s in zip(reversed(coverages), self.options.shapes)]
        fractions, density = regions_to_maps(regions, elements, [s.density for s in self.options.shapes])
        record = provenance.step("phantom", self.name, **self.parameters())
        return CompositionMaps(
            weight_fractions=fractions,
            elements=elements,
            pixel_size=experiment.scan.pixel_size,
            density=density,
            experiment=experiment,
            provenance=[record],
        )

    def regions(self, experiment: Experiment) -> list[np.ndarray]:
        """Boolean masks of where each shape is on top (voxel centre inside), in the order given."""
        shape = grid_shape(experiment)
        pixel = experiment.scan.pixel_size.m_as("nm")
        axes = [(np.arange(n) - (n - 1) / 2) * pixel for n in shape]
        z, x, y = np.meshgrid(*axes, indexing="ij")
        taken = np.zeros(shape, dtype=bool)
        masks: list[Any] = [None] * len(self.options.shapes)
        for index in reversed(range(len(self.options.shapes))):
            inside = self.options.shapes[index].level(z, x, y) <= 1
            masks[index] = inside & ~taken
            taken |= inside
        return masks
