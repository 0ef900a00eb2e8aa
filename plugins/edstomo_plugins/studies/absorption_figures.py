"""The figure of the ``absorption`` study: O Kα maps without and with correction, and the region errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from edstomo.io import atomic_save_figure
from matplotlib.figure import Figure


def absorption_figure(panels: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """One row per detector configuration: O weight fraction (central slice) of the truth, uncorrected and
    corrected maps, and the error of every region-mean fraction (wt%) before and after the correction."""
    rows = len(panels)
    figure = Figure(figsize=(13, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, 4, squeeze=False)
    for row, (configuration, panel) in zip(axes, panels.items()):
        middle = panel["truth"].shape[2] // 2
        for ax, key in zip(row[:3], ("truth", "uncorrected", "corrected")):
            image = ax.imshow(panel[key][:, :, middle], vmin=0.3, vmax=0.5, cmap="viridis")
            ax.set_title(f"{configuration}: O wt. fraction, {key}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        figure.colorbar(image, ax=row[2], shrink=0.8)
        names = list(panel["errors"]["uncorrected"])
        positions = np.arange(len(names))
        row[3].bar(positions - 0.2, [panel["errors"]["uncorrected"][n] for n in names], 0.4, label="uncorrected")
        row[3].bar(positions + 0.2, [panel["errors"]["corrected"][n] for n in names], 0.4, label="corrected")
        row[3].axhline(0, color="k", lw=0.5)
        row[3].set_xticks(positions, [n.replace("_", " ") for n in names], rotation=60, fontsize=7)
        row[3].set_ylabel("region-mean error (wt%)")
        row[3].legend(fontsize=7)
    return atomic_save_figure(figure, path, dpi=110)
