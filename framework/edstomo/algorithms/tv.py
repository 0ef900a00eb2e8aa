"""Isotropic total variation as a PDHG term: ``λ Σ_pixels ‖(w ∇x)_pixel‖₂``, per channel or channel-coupled.

The term is ``F(K x)`` with ``K = ∇ ∘ diag(w)`` (the finite-difference gradient
:class:`~edstomo.operators.Gradient` of the weighted maps ``w_k x_k``) and
``F(g) = λ Σ_pixels ‖g_pixel‖₂``.  Its conjugate is the indicator of pointwise ℓ2
balls of radius λ, so the dual update is a projection
(:func:`~edstomo.algorithms.proximal.project_balls`).  The ball is taken over
the gradient components (isotropic TV) and, for channel-coupled ("vectorial")
total variation, over the channels too: every element map then pays for an
edge only once where all of them change together (Sapiro & Ringach 1996;
Blomgren & Chan 1998).  The weights ``w_k`` put the channels on a common
scale; they are part of ``K``, so the dual set stays a ball.

Per-slice 2-D TV uses ``Gradient((nz, nx))``: channels and slices are batch
columns, and slices stay independent.  3-D TV across slices uses a gradient
whose core includes the slice axis; it couples slices.

For per-slice 2-D TV on NumPy arrays the dual update and the adjoint run as
compiled passes (:mod:`edstomo.algorithms.pdhg_kernels`) when numba is
installed; otherwise, and for 3-D TV, as array operations (same arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..errors import InputError
from ..operators import Gradient
from . import pdhg_kernels
from .pdhg import DualTerm
from .proximal import project_balls

__all__ = ["TotalVariationTerm"]


class TotalVariationTerm(DualTerm):
    """``λ Σ ‖(∇ (w x))_pixel‖₂`` as a dual term of :class:`~edstomo.algorithms.PDHG`.

    Parameters
    ----------
    gradient : Gradient
        The finite differences; its core axes lead the estimate's axes.
    weights : float or array
        ``w``, broadcasting against the estimate ``x`` (e.g. shape ``(1, 1, channels, 1)``), ≥ 0.
    radius : float or array
        λ ≥ 0, broadcasting against ``∇x`` with length 1 along the ball's axes.
    sigma : float or array
        Dual step, constant along the ball's axes.
    coupled : sequence of int
        Axes of ``∇x`` (besides the gradient components) inside each ball, e.g.
        the channel axis for channel-coupled TV.
    """

    def __init__(self, gradient: Gradient, weights: Any, radius: Any, sigma: Any, coupled: Sequence[int] = ()) -> None:
        if not isinstance(gradient, Gradient):
            raise InputError(f"gradient: expected an edstomo.operators.Gradient, got {type(gradient).__name__}")
        super().__init__(gradient, sigma)
        self.weights, self.radius = weights, radius
        self.component_axis = len(gradient.domain_shape)
        self.axes = (self.component_axis, *(int(a) for a in coupled))
        self.compiled = (
            len(gradient.domain_shape) == 2
            and gradient.axes == (0, 1)
            and gradient.spacing == (1.0, 1.0)
            and tuple(coupled) in ((), (3,))
        )

    def _weighted(self, x: Any) -> Any:
        return x if _is_one(self.weights) else x * self.weights

    def ascend(self, y: Any, xbar: Any) -> Any:
        if self.compiled and pdhg_kernels.tv2d_ascend(
            xbar, y, self.weights, self.sigma, self.radius, joint=len(self.axes) > 1
        ):
            return y
        y += self.sigma * self.operator.forward(self._weighted(xbar))
        return project_balls(y, self.radius, self.axes, out=y)

    def prox(self, z: Any) -> Any:
        return project_balls(z, self.radius, self.axes, out=z)

    def adjoint(self, y: Any) -> Any:
        return self._weighted(self.operator.adjoint(y))

    def add_adjoint(self, y: Any, out: Any) -> None:
        if not (self.compiled and pdhg_kernels.tv2d_adjoint(y, self.weights, out)):
            out += self.adjoint(y)

    def value(self, x: Any) -> Any:
        """``λ Σ ‖∇(w x)‖₂`` per remaining batch column (for objectives and tests)."""
        xp = backend.namespace(x)
        g = self.operator.forward(self._weighted(x))
        norms = xp.sqrt(xp.sum(g * g, axis=self.axes, keepdims=True)) * self.radius
        return xp.sum(norms, axis=tuple(range(len(self.operator.domain_shape))) + self.axes)


def _is_one(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == 1
