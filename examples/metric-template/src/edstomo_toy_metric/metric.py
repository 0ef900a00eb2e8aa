"""The largest absolute difference between an estimate and its reference."""

import numpy as np
from edstomo.interfaces import Metric


class MaxAbsoluteError(Metric):
    """Maximum absolute error, max |estimate - reference| (in the maps' own units)."""

    name = "max-abs-error"
    higher_is_better = False

    def compute(self, estimate: np.ndarray, reference: np.ndarray) -> float:
        return float(np.max(np.abs(estimate - reference)))
