"""The figure of the ``uncertainty`` study: estimate, bootstrap σ and true error of each element's weight fraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edstomo import figures
from edstomo.data import CompositionMaps


def uncertainty_figure(maps: CompositionMaps, truth: CompositionMaps, path: Path, level: str) -> Path:
    """One row per element: the weight fraction (wt%), its uncertainty σ and the error ``|estimate − truth|`` (wt%).

    σ and the error share one colour scale per row, so that a good error bar looks like its error.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.6, 2.7 * len(maps.elements) + 0.6), dpi=figures.DPI, layout="constrained")
    axes = figure.subplots(len(maps.elements), 3, squeeze=False)
    pixel = maps.pixel_size.m_as("nm")
    statements = []
    for row, element in enumerate(maps.elements):
        index = maps.elements.index(element)
        estimate = 100 * maps.weight_fractions[index][..., 0]
        sigma = 100 * maps.uncertainty[index][..., 0]
        error = 100 * np.abs(maps.weight_fractions[index] - truth.fraction(element))[..., 0]
        top = float(max(np.percentile(sigma, 99), np.percentile(error, 99), 1e-6))
        shown = figures.image_panel(
            axes[row, 0], estimate, pixel, limits=(0, 100), title=f"{element} estimate", xlabel="x", ylabel="z"
        )
        figures.colour_bar(figure, shown, axes[row, 0], f"{element} (wt%)")
        for column, (image, title) in enumerate(
            ((sigma, "σ (bootstrap and phase model)"), (error, "|estimate − truth|")), start=1
        ):
            shown = figures.image_panel(
                axes[row, column],
                image,
                pixel,
                limits=(0, top),
                cmap="magma",
                title=f"{element} {title}",
                xlabel="x",
                ylabel="z",
            )
            figures.colour_bar(figure, shown, axes[row, column], f"{element} (wt%)", clipped=True)
        statements.append(f"{element}: estimate 0–100 wt%, σ and error 0–{top:.3g} wt% (99th percentile)")
    figure.suptitle(f"Uncertainty against the true error, {level} dose, first seed", fontsize=10)
    figures.caption(figure, "; ".join(statements) + f"; voxel {pixel:.3g} nm")
    return figures.save(figure, path)
