"""PDHG (Chambolle–Pock): the primal–dual hybrid gradient method for ``min_x G(x) + Σ_b F_b(K_b x)``.

With convex, proper, lower-semicontinuous ``F_b`` and ``G`` (here ``G`` is 0 or the
indicator of ``x ≥ 0``), each iteration does (Chambolle & Pock 2011, Algorithm 1
with θ = 1, and diagonal steps as in Pock & Chambolle 2011)

    y_b ← prox_{σ_b F_b*}(y_b + σ_b K_b x̄)          for every term b
    x'  ← prox_{τ G}(x − τ Σ_b K_bᵀ y_b)
    x̄  ← x' + θ (x' − x),   x ← x'

and converges to a minimiser when ``‖Σ^{1/2} K T^{1/2}‖ < 1`` for the stacked
operator ``K = [K_1; K_2; …]``, primal steps ``T`` and dual steps ``Σ``.  Because
``‖[K_1; …; K_B]‖² ≤ Σ_b ‖K_b‖²``, the steps of :func:`dual_steps`,
``σ_b = ρ / (B τ ‖K_b‖²)`` with ρ < 1, satisfy it for any ``τ > 0``; the
operator norms come from :meth:`~edstomo.operators.LinearOperator.norm` (the
power method).  The primal step ``τ`` (one per batch column, or one per
channel) sets the balance between primal and dual progress: it changes how
fast the iteration converges, not the minimiser.

A term is a :class:`DualTerm`: an operator ``K_b``, its dual step and the
proximal map of ``σ F_b*`` (:mod:`edstomo.algorithms.proximal`).  Terms that
couple channels (e.g. channel-coupled total variation) do so only in their
proximal maps; every reduction is still per batch column of the slices, so
solving any subset of slices gives the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import backend
from ..errors import InputError
from ..operators import LinearOperator
from . import pdhg_kernels
from .base import Algorithm

__all__ = ["PDHG", "DualTerm", "ProxTerm", "dual_steps"]


def add_adjoint(operator: LinearOperator, y: Any, out: Any) -> None:
    """``out += Aᵀ y``; for ``A = L ∘ W`` with W a projector, by W's fused update on NumPy.

    :meth:`~edstomo.operators.ParallelBeamProjector.update` with a unit step adds
    ``Wᵀ (Lᵀ y)`` to ``out`` row by row without storing the back projection (the
    same bits as adding it): no volume-sized temporary is allocated each
    iteration.  Other operators and arrays: ``out += A.adjoint(y)``.
    """
    factors = operator.projector_factorization()
    if factors is not None and isinstance(out, np.ndarray) and hasattr(factors[1], "update"):
        left, projector = factors
        if out.flags.c_contiguous and out.dtype == projector.dtype and out.shape[:2] == projector.domain_shape:
            projector.update(out, left.adjoint(y), _unit_steps(projector), nonnegative=False, project=False)
            return
    out += operator.adjoint(y)


def _unit_steps(projector: Any) -> np.ndarray:
    """Ones, one per pixel of the projector (the step of a plain back projection), cached on the projector."""
    steps = getattr(projector, "_pdhg_unit_steps", None)
    if steps is None:
        steps = np.ones(projector.domain_shape, dtype=projector.dtype)
        projector._pdhg_unit_steps = steps
    return steps


def dual_steps(tau: Any, norms: Sequence[float], safety: float = 0.99, terms: int | None = None) -> list[Any]:
    """Dual steps ``σ_b = ρ / (B τ ‖K_b‖²)`` that make PDHG converge for the primal step ``τ``.

    Then ``Σ_b σ_b τ ‖K_b‖² = ρ < 1``, which bounds ``‖Σ^{1/2} K T^{1/2}‖²`` for the
    stacked operator (Chambolle & Pock 2011, Theorem 1).

    Parameters
    ----------
    tau : float or array
        Primal step(s) τ > 0 (an array gives one σ per entry).
    norms : sequence of float
        ``‖K_b‖`` of every term (e.g. from ``LinearOperator.norm()``), > 0.
    safety : float
        ρ in (0, 1).
    terms : int, optional
        B, the number of terms sharing ρ (default ``len(norms)``; more when the
        steps of some terms are set elsewhere).

    Returns
    -------
    list
        One σ_b per term (same type and shape as ``tau``).
    """
    if not 0.0 < safety < 1.0:
        raise InputError(f"safety: {safety!r} must be in the open interval (0, 1)")
    if not norms or any(not n > 0 for n in norms):
        raise InputError(f"norms: {list(norms)!r} must be positive operator norms, one per term")
    count = len(norms) if terms is None else int(terms)
    if count < len(norms):
        raise InputError(f"terms: {terms!r} must be at least the number of norms given ({len(norms)})")
    return [safety / (count * tau * float(n) ** 2) for n in norms]


class DualTerm(ABC):
    """One term ``F(K x)`` of the objective, handled through its dual variable ``y``.

    Parameters
    ----------
    operator : LinearOperator
        ``K``.
    sigma : float or array
        The dual step σ (broadcasts against ``y``, of shape ``range_shape + batch``).
    """

    def __init__(self, operator: LinearOperator, sigma: Any) -> None:
        self.operator, self.sigma = operator, sigma

    def start(self, x: Any) -> Any:
        """The initial dual variable: zeros of shape ``range_shape + batch`` of ``x``."""
        xp = backend.namespace(x)
        return xp.zeros((*self.operator.range_shape, *self.operator.batch_shape(x)), dtype=x.dtype)

    @abstractmethod
    def prox(self, z: Any) -> Any:
        """``prox_{σF*}(z)`` (may overwrite and return ``z``)."""

    def ascend(self, y: Any, xbar: Any) -> Any:
        """The dual update ``prox_{σF*}(y + σ K x̄)``; may update ``y`` in place and return it."""
        z = self.sigma * self.operator.forward(xbar)  # a new array: the operator may return x̄ itself
        z += y
        return self.prox(z)

    def adjoint(self, y: Any) -> Any:
        """``Kᵀ y`` (a new array)."""
        return self.operator.adjoint(y)

    def add_adjoint(self, y: Any, out: Any) -> None:
        """``out += Kᵀ y`` (see :func:`add_adjoint`)."""
        add_adjoint(self.operator, y, out)


class ProxTerm(DualTerm):
    """A dual term given by its operator, dual step and a function ``prox(z, sigma)`` of ``σF*``.

    Parameters
    ----------
    operator : LinearOperator
        ``K``.
    prox : callable
        ``prox(z, sigma) -> y``: the proximal map of ``σF*`` (see :mod:`edstomo.algorithms.proximal`).
    sigma : float or array
        The dual step.
    """

    def __init__(self, operator: LinearOperator, prox: Callable[[Any, Any], Any], sigma: Any) -> None:
        super().__init__(operator, sigma)
        self._prox = prox

    def prox(self, z: Any) -> Any:
        return self._prox(z, self.sigma)


class PDHG(Algorithm):
    """The primal–dual hybrid gradient method (see the module docstring).

    Parameters
    ----------
    terms : sequence of DualTerm
        The terms ``F_b(K_b x)``, with their dual steps.
    x0 : array, shape ``domain_shape + batch``
        Starting estimate (C-contiguous, of the arithmetic type; updated in place).
    tau : float or array
        Primal step(s), broadcasting against ``x0`` (e.g. one per channel and slice).
    nonnegative : bool
        ``G`` = the indicator of ``x ≥ 0`` (else ``G = 0``).
    extrapolation : float
        θ in [0, 1] (1: Chambolle–Pock's choice, for which the convergence theorem holds).
    max_iterations : int
        Iterations of :meth:`run`.

    Notes
    -----
    :meth:`step` returns ``‖x' − x‖``, the size of the primal update (it tends
    to 0 as the iteration converges), as the history's ``"residual"``.
    """

    def __init__(
        self,
        terms: Sequence[DualTerm],
        x0: Any,
        tau: Any,
        *,
        nonnegative: bool = True,
        extrapolation: float = 1.0,
        max_iterations: int = 100,
    ) -> None:
        super().__init__(max_iterations=max_iterations)
        if not terms:
            raise InputError("terms: PDHG needs at least one dual term")
        if not 0.0 <= float(extrapolation) <= 1.0:
            raise InputError(f"extrapolation: {extrapolation!r} must be in [0, 1]")
        self.terms, self.x, self.tau = list(terms), x0, tau
        self.nonnegative, self.extrapolation = bool(nonnegative), float(extrapolation)

    def setup(self) -> None:
        xp = backend.namespace(self.x)
        self.duals = [term.start(self.x) for term in self.terms]
        self.xbar = xp.asarray(self.x, copy=True)
        self.back = xp.zeros_like(self.x)  # Σ_b K_bᵀ y_b, reused: no volume-sized allocation per iteration

    def step(self) -> float:
        xp = backend.namespace(self.x)
        for index, term in enumerate(self.terms):
            self.duals[index] = term.ascend(self.duals[index], self.xbar)
        back = self.back
        back[...] = 0
        for term, y in zip(self.terms, self.duals):
            term.add_adjoint(y, back)
        change = pdhg_kernels.primal_step(self.x, self.xbar, back, self.tau, self.nonnegative)
        if change is not None and self.extrapolation == 1.0:
            return change
        if change is not None:  # x̄ = x' + (x' − x) from the kernel; rescale the extrapolation
            self.xbar -= self.x
            self.xbar *= self.extrapolation
            self.xbar += self.x
            return change
        back *= self.tau
        previous = self.xbar
        previous[...] = self.x  # the x̄ buffer now holds the old estimate
        self.x -= back
        if self.nonnegative:
            xp.maximum(self.x, 0, out=self.x)
        xp.subtract(self.x, previous, out=previous)  # x' − x
        change = float(xp.linalg.vector_norm(previous))
        if self.extrapolation != 1.0:
            previous *= self.extrapolation
        previous += self.x  # x̄ = x' + θ (x' − x)
        return change
