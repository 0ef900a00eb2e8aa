"""CGLS: conjugate gradients on the normal equations, per channel and slice."""

from __future__ import annotations

from edstomo.algorithms import CGLS, Algorithm
from edstomo.engine import Iterations, IterativeOptions, Problem, ReconstructionSolver
from pydantic import Field


class CGLSSolver(ReconstructionSolver):
    """Least-squares reconstruction of each channel by CGLS, all slices at once.

    Minimises ‖b − W X‖² by conjugate gradients (:class:`edstomo.algorithms.CGLS`);
    every channel of every slice is its own problem with its own step sizes.
    Stopped early it regularises (semi-convergence), like SIRT, in fewer
    iterations.  The iteration itself cannot keep X ≥ 0: with
    ``nonnegativity=True`` the final maps are clipped at 0 (default False).

    Notes
    -----
    The maps are on the EDS scale, ``X_A = n f_A C_A ρ`` per pixel length, as SIRT's.
    """

    name = "cgls"
    description = "CGLS least squares per channel and slice (conjugate gradients; clip at 0 only at the end)"

    class Options(IterativeOptions):
        iterations: Iterations = Field(20, description="number of iterations n, or 'auto'")
        nonnegativity: bool = Field(False, description="clip the final maps at 0 (the iteration is unconstrained)")

    def build(self, problem: Problem) -> Algorithm:
        return CGLS(problem.projector, problem.data, problem.initial, max_iterations=self.options.iterations)

    def finish(self, algorithm: Algorithm, problem: Problem) -> None:
        if problem.nonnegative:
            problem.xp.maximum(algorithm.x, 0, out=algorithm.x)
