"""Quantifier ``eds``: weight fractions from EDS-only reconstructions (paper eq. 12)."""

from __future__ import annotations

import numpy as np

from .ratio import RatioQuantifier


class EdsQuantifier(RatioQuantifier):
    """Weight fractions C_A = (X_A/f_A) / Σ_B (X_B/f_B) inside the thresholded particle (eq. 12).

    For maps ``X_A = n f_A C_A ρ`` reconstructed from EDS data alone; ``f_A``
    (b·mol/g) comes from the physics factors. See :class:`RatioQuantifier` for
    the parameters.
    """

    name = "eds"
    description = "EDS-only maps to weight fractions with f_A (eq. 12), threshold by ESF or given"
    accepts = "f_A"

    def factor_values(self, lines: list[str]) -> np.ndarray:
        return self.factors.f_array(lines)
