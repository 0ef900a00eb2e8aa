"""Projected Landweber iteration as an edstomo solver plugin (a template: copy, rename, change ``step``).

The engine (:class:`edstomo.engine.ReconstructionSolver`) gives this plugin its
options on the command line, channel selection, the initial estimate, the
device, progress, callbacks, chunked solving on Dask, provenance and the
:class:`~edstomo.data.Volume`; the plugin only says what one iteration does.
"""

from __future__ import annotations

from typing import Any

from edstomo.algorithms import Algorithm
from edstomo.engine import IterativeOptions, Problem, ReconstructionSolver
from edstomo.operators import LinearOperator
from pydantic import Field


class Landweber(Algorithm):
    """x ← P(x + τ Aᵀ(b − A x)) with τ = step / ‖A‖² (converges for 0 < step < 2)."""

    def __init__(self, operator: LinearOperator, data: Any, x0: Any, *, step: float, nonnegative: bool, **kw: Any):
        super().__init__(**kw)
        self.operator, self.data, self.x = operator, data, x0
        self.step_size, self.nonnegative = step, nonnegative

    def setup(self) -> None:
        self.tau = self.step_size / self.operator.norm() ** 2

    def step(self) -> float:
        residual = self.data - self.operator.forward(self.x)  # per batch column: no reduction across slices
        self.x += self.tau * self.operator.adjoint(residual)
        if self.nonnegative:
            self.x[self.x < 0] = 0
        return float((residual**2).sum() ** 0.5)


class LandweberSolver(ReconstructionSolver):
    """Projected Landweber iteration on each EDS line (maps on the EDS scale, like SIRT's)."""

    name = "landweber"
    description = "Projected Landweber iteration (template of a solver plugin)"
    requires = frozenset({"lines"})  # what the solver needs: EDS line sinograms
    produces = "f_A"  # its maps are X_A = K f_A C_A ρ: the EDS quantifier applies

    class Options(IterativeOptions):
        step: float = Field(1.0, gt=0, lt=2, description="step as a fraction of 1/‖W‖²")

    def build(self, problem: Problem) -> Algorithm:
        return Landweber(
            problem.projector,
            problem.data,
            problem.initial,
            step=self.options.step,
            nonnegative=problem.nonnegative,
            max_iterations=self.options.iterations,
        )
