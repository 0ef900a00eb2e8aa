"""Shared helpers for phantoms: the experiment's grid, region coverage, alloy density."""

from __future__ import annotations

import numpy as np
from edstomo.experiment import Experiment
from edstomo.lines import element_density
from edstomo.resources import check_memory, simulation_bytes


def grid_shape(experiment: Experiment) -> tuple[int, int, int]:
    """Reconstruction grid (nz, nx, slices) of an experiment: positions × positions × slices.

    Raises :class:`~edstomo.resources.ResourceError` when a phantom on that grid
    would not fit in the available memory (see :mod:`edstomo.resources`).
    """
    n, slices = experiment.scan.positions, experiment.scan.slices
    needed = simulation_bytes(len(experiment.lines), 0, 0, n, slices)["phantom"]
    check_memory({"phantom": needed}, f"phantom: grid of {n} × {n} × {slices} voxels")
    return n, n, slices


def ball_coverage(
    shape: tuple[int, ...], radius: float, centre: tuple[float, ...] | None = None, supersample: int = 8
) -> np.ndarray:
    """Fraction of each pixel (voxel) inside a disk (ball) — antialiased by supersampling.

    Parameters
    ----------
    shape
        Grid shape, 2-D or 3-D; pixel ``i`` along an axis of length ``n`` has its
        centre at ``i - (n - 1) / 2`` (pixel units).
    radius
        Radius in pixels.
    centre
        Centre in pixel units (default: the grid centre, all zeros).
    supersample
        Sub-samples per pixel edge used for pixels the boundary crosses.
    """
    dim = len(shape)
    centre = (0.0,) * dim if centre is None else tuple(centre)
    axes = [np.arange(n) - (n - 1) / 2 - c for n, c in zip(shape, centre)]
    coords = np.meshgrid(*axes, indexing="ij")
    distance = np.sqrt(sum(c**2 for c in coords))
    half_diagonal = np.sqrt(dim) / 2
    coverage = (distance <= radius - half_diagonal).astype(float)
    boundary = np.nonzero(np.abs(distance - radius) < half_diagonal)
    if boundary[0].size:
        offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
        sub = np.stack(np.meshgrid(*([offsets] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
        centres = np.stack([c[boundary] for c in coords], axis=-1)
        points = centres[:, None, :] + sub[None, :, :]
        coverage[boundary] = (np.sum(points**2, axis=-1) <= radius**2).mean(axis=1)
    return coverage


def alloy_density(composition: dict[str, float]) -> float:
    """Density (g/cm³) of an ideal mixture: 1/ρ = Σ_A C_A / ρ_A (volumes add)."""
    return 1.0 / sum(fraction / element_density(element) for element, fraction in composition.items())


def check_composition(name: str, composition: dict[str, float]) -> dict[str, float]:
    """Validate weight fractions: known elements, non-negative, summing to 1."""
    from edstomo.lines import atomic_number

    for element, fraction in composition.items():
        atomic_number(element)
        if not (np.isfinite(fraction) and fraction >= 0):
            raise ValueError(f"{name}[{element!r}]: weight fraction {fraction!r} must be finite and >= 0")
    total = sum(composition.values())
    if abs(total - 1) > 1e-9:
        raise ValueError(f"{name}: weight fractions {composition} sum to {total:g}, not 1")
    return dict(composition)


def regions_to_maps(
    regions: list[tuple[np.ndarray, dict[str, float]]], elements: list[str], densities: list[float | None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weight fractions and density from regions of uniform composition.

    Parameters
    ----------
    regions
        ``(coverage, composition)`` pairs: the fraction of each voxel the region
        fills, and its weight fractions. Coverages must not overlap in sum > 1.
    elements
        Element order of the output.
    densities
        Density (g/cm³) of each region; None (for all, or one) means the ideal
        mixture of the pure elements (:func:`alloy_density`).

    Returns
    -------
    weight_fractions : ndarray, shape ``(elements, *grid)``
    density : ndarray, shape grid, g/cm³ (mass per voxel volume)
    """
    shape = regions[0][0].shape
    partial = np.zeros((len(elements), *shape))
    for index, (coverage, composition) in enumerate(regions):
        given = None if densities is None else densities[index]
        rho = alloy_density(composition) if given is None else given
        for index, element in enumerate(elements):
            partial[index] += coverage * composition.get(element, 0.0) * rho
    density = partial.sum(axis=0)
    fractions = np.divide(partial, density, out=np.zeros_like(partial), where=density > 0)
    return fractions, density
