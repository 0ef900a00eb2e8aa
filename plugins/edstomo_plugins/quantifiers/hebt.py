"""Quantifier ``hebt``: weight fractions from HAADF-EDS bimodal reconstructions (paper eq. 18)."""

from __future__ import annotations

import numpy as np

from .ratio import RatioQuantifier


class HebtQuantifier(RatioQuantifier):
    """Weight fractions C_A = (X_A/z_A) / Σ_B (X_B/z_B) inside the thresholded particle (eq. 18).

    For HEBT maps ``X_A^b ∝ z_A C_A ρ``; ``z_A = σ_ela/M`` (b·mol/g) comes from
    the physics factors, which must therefore hold elastic cross-sections. See
    :class:`RatioQuantifier` for the parameters.
    """

    name = "hebt"
    description = "HEBT maps to weight fractions with z_A (eq. 18), threshold by ESF or given"
    accepts = "z_A"

    def factor_values(self, lines: list[str]) -> np.ndarray:
        return self.factors.z_array(lines)
