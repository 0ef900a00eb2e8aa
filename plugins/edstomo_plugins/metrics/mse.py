"""Metrics ``mse`` and ``mse-scaled``: mean squared error, directly or after the best scale factor."""

from __future__ import annotations

import numpy as np
from edstomo.interfaces import Metric


class Mse(Metric):
    """Mean squared error (1/N) Σ (x_i − y_i)², in squared image units (paper: quantified maps)."""

    name = "mse"
    description = "Mean squared error"
    higher_is_better = False

    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        return float(np.mean((estimate - reference) ** 2))


def best_scale(estimate: np.ndarray, reference: np.ndarray) -> float:
    """The factor a minimising Σ (a x_i − y_i)²: a = Σ x y / Σ x² (0 when x is all zero)."""
    norm = float(np.vdot(estimate, estimate))
    return float(np.vdot(estimate, reference)) / norm if norm > 0 else 0.0


class MseScaled(Metric):
    """MSE of the estimate after the least-squares scale factor: min_a (1/N) Σ (a x_i − y_i)².

    The factor has the closed form a = Σ x y / Σ x² (:func:`best_scale`), so the
    value is in the reference's squared units. Used by the paper for raw maps,
    which are on no absolute scale.
    """

    name = "mse-scaled"
    description = "Mean squared error after the least-squares scale factor (closed form)"
    higher_is_better = False

    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        return float(np.mean((best_scale(estimate, reference) * estimate - reference) ** 2))
