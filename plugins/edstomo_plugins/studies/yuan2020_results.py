"""What the Yuan 2020 phantom study produces per dose level, and the settings its summary and figures share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo.experiment import Experiment
from edstomo.preprocessing import ResponseRatios
from edstomo.threshold import EsfFit

#: The HEBT setting of the summary's region means, mask and quantified SSIM.
HEADLINE_ALPHA, HEADLINE_N = 0.8, 200
#: Distance (pixels) kept from every interface when averaging a region.
EROSION = 3.0
#: Iterations of the HAADF-only reconstruction (the paper's Figure 7).
HAADF_ITERATIONS = 50
#: n of the EDS-only maps shown (Figures 3 and 5); α and n of the HEBT maps shown (Figures 9–12).
FIGURE_EDS_N: tuple[int, ...] = (20, 50, 100)
FIGURE_HEBT_ALPHAS: tuple[float, ...] = (0.7, 0.8, 0.9)
FIGURE_HEBT_N: tuple[int, ...] = (50, 200, 500)
FIGURE_HEBT_FIXED_ALPHA = 0.9


@dataclass
class Snapshot:
    """Raw maps at one setting and their quantification (None when the ESF found no plateau)."""

    raw: Volume
    quantified: CompositionMaps | None


@dataclass
class LevelResult:
    """Everything one dose level produced, for the summary and the figures."""

    level: str
    experiment: Experiment
    truth: CompositionMaps
    regions: dict[str, np.ndarray]
    series: TiltSeries
    filtered: TiltSeries
    ratios: ResponseRatios
    haadf: Volume
    eds: dict[int, Snapshot] = field(default_factory=dict)
    hebt: dict[tuple[float, int], Snapshot] = field(default_factory=dict)
    poisson: dict[str, Snapshot] = field(default_factory=dict)
    esf: EsfFit | None = None
    seconds: float = 0.0
    auto: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> Snapshot:
        return self.hebt[(HEADLINE_ALPHA, HEADLINE_N)]
