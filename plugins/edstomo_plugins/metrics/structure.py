"""Metric ``ssim-structure``: the structure term of SSIM over the whole image (paper eq. 19–22)."""

from __future__ import annotations

import numpy as np
from edstomo.interfaces import Metric
from edstomo.options import PluginOptions
from pydantic import Field


class SsimStructure(Metric):
    """s(x, y) = (σ_xy + C) / (σ_x σ_y + C) over all voxels (eq. 19–22).

    σ_xy, σ_x and σ_y are the sample covariance and standard deviations
    (normalised by N − 1) of the estimate x and the reference y. With the
    paper's C = 0 the value is the Pearson correlation: invariant to a positive
    scale and an offset of either image, in [−1, 1].

    Parameters
    ----------
    c
        The stabilising constant C >= 0 (in squared image units); 0 as in the paper.
    """

    name = "ssim-structure"
    description = "Structure term of SSIM over the whole image (eq. 19-22, C = 0): scale- and offset-invariant"

    class Options(PluginOptions):
        c: float = Field(0.0, ge=0, allow_inf_nan=False, description="stabilising constant (squared image units)")

    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        n = estimate.size
        if n < 2:
            raise ValueError(f"estimate: {n} value(s); the structure term needs at least 2")
        x = estimate.ravel() - estimate.mean()
        y = reference.ravel() - reference.mean()
        covariance = float(x @ y) / (n - 1)
        product = np.sqrt(float(x @ x) * float(y @ y)) / (n - 1)
        if product + self.options.c == 0:
            which = "estimate" if not x.any() else "reference"
            raise ValueError(f"{which}: the image is constant, so its structure term with C = 0 is undefined")
        return (covariance + self.options.c) / (product + self.options.c)
