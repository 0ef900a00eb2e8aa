"""Finite-difference gradient (for total-variation regularisation), 2-D per slice or n-D.

``Gradient(shape, axes)`` maps an array of core shape ``shape`` to the forward
differences along each axis in ``axes``, stacked on a new last core axis:

    (∇x)[..., d] = (x[i + e_d] − x[i]) / h_d   for i + e_d inside the grid, else 0

(Neumann boundary: the difference across the last face is 0), with ``h_d`` the
spacing along axis ``d``.  Its adjoint is minus the matching divergence, so
``⟨∇x, p⟩ = ⟨x, ∇ᵀp⟩`` holds exactly.

For per-slice (2-D) total variation of a volume in solver layout
``(nz, nx, channels, slices)``, use ``Gradient((nz, nx))``: channels and slices
stay batch columns.  For 3-D total variation across slices, make the slice
axis a core axis, e.g. ``Gradient((nz, nx, channels, slices), axes=(0, 1, 3))``;
slices are then coupled, and a solver using it no longer treats slices as
independent columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..errors import InputError
from .base import LinearOperator

__all__ = ["Gradient"]


class Gradient(LinearOperator):
    """Forward differences along some core axes, stacked on a new last axis.

    Parameters
    ----------
    shape : tuple of int
        Core shape of the input.
    axes : sequence of int, optional
        The axes to difference (default: every axis of ``shape``).
    spacing : sequence of float, optional
        Grid spacing along each of ``axes`` (default 1: differences per pixel).

    Examples
    --------
    >>> import numpy as np
    >>> grad = Gradient((1, 4))
    >>> grad.forward(np.array([[0.0, 1.0, 3.0, 3.0]]))[0].T.tolist()
    [[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]]
    """

    def __init__(self, shape: Sequence[int], axes: Sequence[int] | None = None, spacing: Sequence[float] | None = None):
        shape = tuple(int(n) for n in shape)
        axes = tuple(range(len(shape))) if axes is None else tuple(int(a) for a in axes)
        if not axes or len(set(axes)) != len(axes) or any(not 0 <= a < len(shape) for a in axes):
            raise InputError(f"axes: {axes!r} must be distinct axes of the core shape {shape}")
        spacing = (1.0,) * len(axes) if spacing is None else tuple(float(h) for h in spacing)
        if len(spacing) != len(axes) or any(not h > 0 for h in spacing):
            raise InputError(f"spacing: {spacing!r} must hold one positive grid spacing per axis {axes}")
        super().__init__(shape, (*shape, len(axes)))
        self.axes, self.spacing = axes, spacing

    @staticmethod
    def _cut(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
        index = [slice(None)] * ndim
        index[axis] = part
        return tuple(index)

    def _forward(self, x: Any) -> Any:
        xp = backend.namespace(x)
        core = len(self.domain_shape)
        batch = tuple(x.shape[core:])
        out = xp.zeros((*self.domain_shape, len(self.axes), *batch), dtype=x.dtype)
        for d, (axis, h) in enumerate(zip(self.axes, self.spacing)):
            ahead = x[self._cut(x.ndim, axis, slice(1, None))]
            here = x[self._cut(x.ndim, axis, slice(None, -1))]
            target = (*self._cut(core, axis, slice(None, -1)), d)
            out[target] = (ahead - here) / h
        return out

    def _adjoint(self, y: Any) -> Any:
        xp = backend.namespace(y)
        core = len(self.domain_shape)
        batch = tuple(y.shape[core + 1 :])
        out = xp.zeros((*self.domain_shape, *batch), dtype=y.dtype)
        for d, (axis, h) in enumerate(zip(self.axes, self.spacing)):
            component = y[(*([slice(None)] * core), d)] / h  # shape domain + batch
            inner = component[self._cut(component.ndim, axis, slice(None, -1))]
            # ∇ᵀ p = −div p: the difference x[i+1] − x[i] sends +p[i] to i+1 and −p[i] to i.
            out[self._cut(out.ndim, axis, slice(1, None))] += inner
            out[self._cut(out.ndim, axis, slice(None, -1))] -= inner
        return out

    def __repr__(self) -> str:
        return f"Gradient({self.domain_shape}, axes={self.axes})"
