"""A phantom from the user's own weight-fraction and density arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from edstomo import provenance
from edstomo.data import CompositionMaps
from edstomo.experiment import Experiment
from edstomo.interfaces import Phantom
from edstomo.lines import atomic_number
from edstomo.options import PluginOptions
from edstomo.units import DENSITY_UNIT, as_quantity
from pydantic import Field

from .grid import grid_shape


class ArraysPhantom(Phantom):
    """Your own sample: weight fractions per element and a density map.

    Parameters
    ----------
    weight_fractions : dict of str to array
        Element symbol -> weight-fraction array of shape (nz, nx) or (nz, nx, slices),
        values in [0, 1] summing to 1 wherever the density is positive.
    density : Quantity
        Density array (a mass per volume, e.g. ``Quantity(array, "g/cm**3")``),
        same shape, finite and non-negative.
    """

    name = "arrays"
    description = "User-supplied weight-fraction and density arrays"

    class Options(PluginOptions):
        weight_fractions: dict[str, Any] = Field(description="element -> weight-fraction array")
        density: Any = Field(description="density array with a unit of mass per volume")

    def __init__(self, **options: Any):
        super().__init__(**options)
        weight_fractions, density = self.options.weight_fractions, self.options.density
        if not weight_fractions:
            raise ValueError("weight_fractions: give at least one element's array")
        for element in weight_fractions:
            atomic_number(element)
        self._density = as_quantity(density, DENSITY_UNIT, "density")
        rho = np.asarray(self._density.m_as(DENSITY_UNIT), dtype=float)
        fractions = {e: np.asarray(a, dtype=float) for e, a in weight_fractions.items()}
        for element, array in fractions.items():
            if array.shape != rho.shape:
                raise ValueError(
                    f"weight_fractions[{element!r}]: shape {array.shape} does not match density shape {rho.shape}"
                )
            if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
                raise ValueError(f"weight_fractions[{element!r}]: values must be finite and in [0, 1]")
        if not np.all(np.isfinite(rho)):
            raise ValueError("density: contains NaN or infinite values; expected finite values in g/cm**3")
        if rho.min() < 0:
            raise ValueError(f"density: contains negative values (minimum {rho.min():g} g/cm**3)")
        if rho.ndim not in (2, 3):
            raise ValueError(f"density: shape {rho.shape} must be (nz, nx) or (nz, nx, slices)")
        total = sum(fractions.values())
        inside = rho > 0
        if np.any(np.abs(total[inside] - 1) > 1e-6):
            raise ValueError("weight_fractions: they must sum to 1 wherever the density is positive")
        self.elements = list(fractions)
        self._fractions = np.stack([np.where(inside, fractions[e], 0.0) for e in self.elements])
        self._rho = rho

    def parameters(self) -> dict[str, Any]:
        return {"elements": self.elements, "shape": list(self._rho.shape)}

    def generate(self, experiment: Experiment) -> CompositionMaps:
        nz, nx, slices = grid_shape(experiment)
        fractions, rho = self._fractions, self._rho
        if rho.ndim == 2:
            fractions, rho = fractions[..., None], rho[..., None]
        if rho.shape != (nz, nx, slices):
            raise ValueError(
                f"density: shape {rho.shape} does not match the experiment's grid {(nz, nx, slices)} "
                "(positions, positions, slices)"
            )
        return CompositionMaps(
            weight_fractions=fractions,
            elements=self.elements,
            pixel_size=experiment.scan.pixel_size,
            density=rho,
            experiment=experiment,
            provenance=[provenance.step("phantom", self.name, **self.parameters())],
        )
