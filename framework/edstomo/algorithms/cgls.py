"""CGLS: conjugate gradients on the normal equations AᵀA x = Aᵀb, per batch column.

Hestenes–Stiefel CGLS (e.g. Björck, *Numerical Methods for Least Squares
Problems*, 1996, §7.4): with ``r = b − A x``, ``s = Aᵀ r``, ``p = s``, ``γ = ‖s‖²``,
each iteration does

    q = A p;  α = γ / ‖q‖²;  x += α p;  r −= α q;  s = Aᵀ r;
    γ' = ‖s‖²;  p = s + (γ'/γ) p;  γ = γ'.

In exact arithmetic it reaches the least-squares solution of a full-rank
system in at most ``n`` iterations; stopped early it regularises like SIRT
(semi-convergence).  The scalars α, γ are computed separately for every batch
column, so each channel of each slice is its own problem.  CGLS cannot keep
``x ≥ 0`` during the iteration (a projection breaks conjugacy); solvers may
clip the final estimate.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..operators import LinearOperator
from .base import Algorithm, check_shapes, column_dot

__all__ = ["CGLS"]


class CGLS(Algorithm):
    """Conjugate gradients for least squares, one independent problem per batch column.

    Parameters
    ----------
    operator : LinearOperator
        ``A``.
    data : array, shape ``range_shape + batch``
        ``b``.
    x0 : array, shape ``domain_shape + batch``
        Starting estimate (updated in place).
    max_iterations : int
        Iterations of :meth:`run`.
    tolerance : float
        A column whose ‖Aᵀ r‖² falls to ``tolerance² ×`` its initial value is
        converged (its updates stop); when every column is, :meth:`should_stop` is True.
    """

    def __init__(
        self, operator: LinearOperator, data: Any, x0: Any, *, max_iterations: int = 20, tolerance: float = 1e-12
    ) -> None:
        super().__init__(max_iterations=max_iterations)
        check_shapes(operator, data, x0)
        self.operator, self.data, self.x = operator, data, x0
        self.tolerance = float(tolerance)

    def setup(self) -> None:
        xp = backend.namespace(self.x)
        self.core = len(self.operator.domain_shape)
        self.range_core = len(self.operator.range_shape)
        self.r = self.data - self.operator.forward(self.x)
        self.s = self.operator.adjoint(self.r)
        self.p = xp.asarray(self.s, copy=True)
        self.gamma = column_dot(self.s, self.s, self.core)
        self.floor = self.gamma * self.tolerance**2

    def _active(self, xp: Any) -> Any:
        return self.gamma > self.floor

    def should_stop(self) -> bool:
        xp = backend.namespace(self.x)
        return not bool(xp.any(self._active(xp)))

    def step(self) -> float:
        xp = backend.namespace(self.x)
        misfit = float(xp.linalg.vector_norm(self.r))
        active = self._active(xp)
        q = self.operator.forward(self.p)
        delta = xp.reshape(column_dot(q, q, self.range_core), self.gamma.shape)
        usable = active & (delta > 0)
        alpha = xp.where(usable, self.gamma / xp.where(usable, delta, xp.ones_like(delta)), xp.zeros_like(delta))
        self.x += alpha * self.p
        self.r -= xp.reshape(alpha, (1,) * self.range_core + tuple(alpha.shape[self.core :])) * q
        self.s = self.operator.adjoint(self.r)
        gamma = column_dot(self.s, self.s, self.core)
        beta = xp.where(usable, gamma / xp.where(usable, self.gamma, xp.ones_like(gamma)), xp.zeros_like(gamma))
        self.p = self.s + beta * self.p
        self.gamma = xp.where(usable, gamma, xp.zeros_like(gamma))
        return misfit
