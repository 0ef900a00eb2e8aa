"""OS-SART: SIRT-type updates over ordered subsets of the tilt angles (SART with one angle per subset)."""

from __future__ import annotations

from typing import Literal

from edstomo.algorithms import ORDERINGS, SART, Algorithm, angle_subsets
from edstomo.engine import Iterations, IterativeOptions, Problem, ReconstructionSolver
from edstomo.errors import InputError
from pydantic import Field


class SARTSolver(ReconstructionSolver):
    """Ordered-subset SART of each channel, all slices at once.

    One iteration visits ``subsets`` groups of tilt angles in turn and updates
    after each (:class:`edstomo.algorithms.SART`):

        X ← max(0, X + λ C_s W_sᵀ R_s (b_s − W_s X)),

    so the estimate improves ``subsets`` times per pass over the data, for about
    the cost of one SIRT iteration.  ``subsets=1`` is SIRT; ``subsets`` equal to
    the number of tilts is SART (Andersen & Kak 1984).  More subsets converge
    faster per iteration and also reach the noise (semi-convergence) sooner:
    stop earlier.

    Notes
    -----
    The maps are on the EDS scale, ``X_A = n f_A C_A ρ`` per pixel length, as SIRT's.
    """

    name = "sart"
    description = "OS-SART: SIRT updates over ordered subsets of the tilts (subsets=1: SIRT, one tilt each: SART)"

    class Options(IterativeOptions):
        iterations: Iterations = Field(10, description="passes over all subsets, or 'auto'")
        subsets: int = Field(8, ge=1, description="number of ordered subsets of the tilt angles")
        ordering: Literal[ORDERINGS] = Field("interleaved", description="how the tilts are dealt into subsets")
        seed: int = Field(0, ge=0, description="seed of the 'random' ordering")
        relaxation: float = Field(1.0, gt=0, lt=2, description="relaxation λ")

    def build(self, problem: Problem) -> Algorithm:
        tilts = problem.projector.n_angles
        if self.options.subsets > tilts:
            raise InputError(f"subsets: {self.options.subsets} is more than the {tilts} tilt angles of the series")
        return SART(
            problem.projector,
            problem.data,
            problem.initial,
            relaxation=self.options.relaxation,
            nonnegative=problem.nonnegative,
            subsets=angle_subsets(tilts, self.options.subsets, self.options.ordering, self.options.seed),
            max_iterations=self.options.iterations,
        )
