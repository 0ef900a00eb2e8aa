"""SIRT: per-channel reconstruction of eq. 11 with row/column normalisation and non-negativity."""

from __future__ import annotations

from edstomo.algorithms import SART, Algorithm
from edstomo.engine import IterativeOptions, Problem, ReconstructionSolver
from pydantic import Field


class SIRTSolver(ReconstructionSolver):
    """Simultaneous iterative reconstruction (SIRT) of each channel, all slices at once.

    Each channel ``A`` with sinogram ``b_A`` is updated as (Gregor & Benson 2008)

        X_A ← max(0, X_A + λ C Wᵀ R (b_A − W X_A)),

    with ``R = diag(1 / Σ_j w_ij)`` (inverse row sums) and ``C = diag(1 / Σ_i w_ij)``
    (inverse column sums); rows or columns that no ray touches get weight 0.
    Channels and slices are the projector's batch axes, so one iteration is one
    forward and one back projection (one sparse product each) for everything.

    Notes
    -----
    The maps are in data units per pixel of path length: for an EDS line
    ``X_A = n f_A C_A ρ`` (eq. 11, times the pixel length), counts per pixel.
    ``channels=["HAADF"]`` reconstructs the HAADF signal instead.
    """

    name = "sirt"
    description = "SIRT per channel (eq. 11), row/column normalised, non-negative, all slices and channels at once"
    default = True

    class Options(IterativeOptions):
        relaxation: float = Field(1.0, gt=0, lt=2, description="relaxation λ")

    def build(self, problem: Problem) -> Algorithm:
        return SART(
            problem.projector,
            problem.data,
            problem.initial,
            relaxation=self.options.relaxation,
            nonnegative=problem.nonnegative,
            max_iterations=self.options.iterations,
        )
