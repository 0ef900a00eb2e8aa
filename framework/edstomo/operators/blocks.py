"""Operators that build block systems: identity, diagonal weights, block-diagonal copies,
channel mixing and concatenation along a channel axis.

The HEBT system of the paper (eq. 17) is the block matrix

    A = [ (1−α) I_k ⊗ W ]      (one block row per EDS line)
        [   α  1_kᵀ ⊗ W ]      (the HAADF row: the sum of all lines' projections)

acting on the stacked maps ``(nz, nx, k)``.  With these blocks it is written
either literally, ``Concatenate([(1 − α) * BlockDiagonal(W, k), α * (MixChannels(1ᵀ) @ BlockDiagonal(W, k))])``,
or as the product ``MixChannels(M) @ BlockDiagonal(W, k)`` with the small
``(k+1) × k`` matrix ``M = [(1−α) I_k; α 1ᵀ]``: the projections are computed once
and mixed in the sinogram domain.  Both forms are the same operator (tested).

Convention: on the sinogram side the first core axis is the tilt angle, so
operators there that act on each angle separately (``pointwise_in_angle``) can
be restricted to a subset of angles along with the projector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..errors import InputError
from . import kernels
from .base import LinearOperator

__all__ = ["BlockDiagonal", "Concatenate", "Diagonal", "Identity", "MixChannels"]


def _expand(weights: Any, ndim: int, xp: Any) -> Any:
    """``weights`` with trailing length-1 axes added up to ``ndim`` axes (to broadcast over batch axes)."""
    weights = xp.asarray(weights)
    return xp.reshape(weights, tuple(weights.shape) + (1,) * (ndim - weights.ndim))


class Identity(LinearOperator):
    """The identity on arrays of core shape ``shape``."""

    pointwise_in_angle = True
    is_identity = True

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape, shape)

    def _forward(self, x: Any) -> Any:
        return x

    def _adjoint(self, y: Any) -> Any:
        return y

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return Identity((len(angles), *self.domain_shape[1:]))


class Diagonal(LinearOperator):
    """Element-wise weights: ``(D x)[i] = d[i] x[i]`` over the core axes, the same for every batch column.

    Parameters
    ----------
    weights : array
        The diagonal ``d``, of the operator's core shape.
    """

    pointwise_in_angle = True

    def __init__(self, weights: Any) -> None:
        self.weights = weights
        super().__init__(tuple(weights.shape), tuple(weights.shape))

    def _forward(self, x: Any) -> Any:
        xp = backend.namespace(x)
        return x * xp.astype(_expand(self.weights, x.ndim, xp), x.dtype)

    _adjoint = _forward

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return Diagonal(self.weights[np.asarray(angles)])


class BlockDiagonal(LinearOperator):
    """``I_n ⊗ A``: the operator ``A`` applied to each of ``n`` channels (a new last core axis).

    The channel axis is a batch axis of ``A`` itself, so no copy or loop is
    needed: ``BlockDiagonal(W, k)`` projects ``k`` maps of every slice in one
    product.

    Parameters
    ----------
    operator : LinearOperator
        The block ``A``.
    channels : int
        Number of copies ``n``.
    """

    def __init__(self, operator: LinearOperator, channels: int) -> None:
        if int(channels) < 1:
            raise InputError(f"channels: {channels!r} must be a positive integer")
        super().__init__((*operator.domain_shape, int(channels)), (*operator.range_shape, int(channels)))
        self.operator, self.channels = operator, int(channels)
        self.pointwise_in_angle, self.is_identity = operator.pointwise_in_angle, operator.is_identity

    def _forward(self, x: Any) -> Any:
        return self.operator._forward(x)

    def _adjoint(self, y: Any) -> Any:
        return self.operator._adjoint(y)

    def row_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        xp = xp or backend.namespace()
        sums = xp.asarray(self.operator.row_sums(xp, dtype))
        return xp.broadcast_to(_expand(sums, sums.ndim + 1, xp), self.range_shape)

    def col_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        xp = xp or backend.namespace()
        sums = xp.asarray(self.operator.col_sums(xp, dtype))
        return xp.broadcast_to(_expand(sums, sums.ndim + 1, xp), self.domain_shape)

    def projector_factorization(self) -> tuple[LinearOperator, Any] | None:
        inner = self.operator.projector_factorization()
        if inner is None:
            return None
        left, projector = inner
        return BlockDiagonal(left, self.channels), projector

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return BlockDiagonal(self.operator.subset(angles), self.channels)

    def __repr__(self) -> str:
        return f"BlockDiagonal({self.operator!r}, {self.channels})"


class MixChannels(LinearOperator):
    """Linear combinations of channels: ``y[..., m] = Σ_k M[m, k] x[..., k]`` on the last core axis.

    Parameters
    ----------
    matrix : array_like, shape (m, k)
        The mixing matrix ``M`` (small, dense).
    core_shape : tuple of int
        The core axes before the channel axis (e.g. a sinogram's ``(n_angles, n_det)``).
    """

    pointwise_in_angle = True

    def __init__(self, matrix: Any, core_shape: Sequence[int]) -> None:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or not np.all(np.isfinite(matrix)):
            raise InputError(f"matrix: expected a finite two-dimensional mixing matrix, got shape {matrix.shape}")
        core = tuple(int(n) for n in core_shape)
        super().__init__((*core, matrix.shape[1]), (*core, matrix.shape[0]))
        self.matrix, self.core_shape = matrix, core

    def _mix(self, x: Any, matrix: np.ndarray) -> Any:
        """``matrix`` applied to the channel axis; a C-ordered result.

        NumPy arrays with numba: :func:`edstomo.operators.kernels.mix_channels` (one pass, and the same bits
        for a batch column whatever the rest of the batch; about 10× faster than ``tensordot`` with its
        copies: 0.1 s less per HEBT iteration on 256 slices of 256²); otherwise ``tensordot``.
        """
        xp = backend.namespace(x)
        axis = len(self.core_shape)
        if kernels.HAVE_NUMBA and not backend.is_gpu_array(x):
            lead, batch = tuple(x.shape[:axis]), tuple(x.shape[axis + 1 :])
            rows = np.ascontiguousarray(x).reshape(math.prod(lead), x.shape[axis], math.prod(batch))
            return kernels.mix_channels(matrix, rows).reshape(*lead, matrix.shape[0], *batch)
        mixed = xp.tensordot(xp.asarray(matrix, dtype=x.dtype), x, axes=([1], [axis]))
        return xp.moveaxis(mixed, 0, axis)

    def _forward(self, x: Any) -> Any:
        return self._mix(x, self.matrix)

    def _adjoint(self, y: Any) -> Any:
        return self._mix(y, self.matrix.T)

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return MixChannels(self.matrix, (len(angles), *self.core_shape[1:]))

    def __repr__(self) -> str:
        return f"MixChannels({self.matrix.shape[0]}x{self.matrix.shape[1]}, core {self.core_shape})"


class Concatenate(LinearOperator):
    """Operators of one domain stacked along the last core axis of their ranges (a block column).

    Parameters
    ----------
    operators : sequence of LinearOperator
        Blocks with equal domains and ranges that differ at most in their last axis.
    """

    def __init__(self, operators: Sequence[LinearOperator]) -> None:
        operators = list(operators)
        if not operators:
            raise InputError("operators: give at least one block")
        first = operators[0]
        for op in operators[1:]:
            if op.domain_shape != first.domain_shape or op.range_shape[:-1] != first.range_shape[:-1]:
                raise InputError(f"operators: {op!r} does not stack with {first!r} (domains or ranges differ)")
        sizes = [op.range_shape[-1] for op in operators]
        super().__init__(first.domain_shape, (*first.range_shape[:-1], sum(sizes)))
        self.operators, self.sizes = operators, sizes
        self.pointwise_in_angle = all(getattr(op, "pointwise_in_angle", False) for op in operators)

    def _forward(self, x: Any) -> Any:
        xp = backend.namespace(x)
        return xp.concat([op._forward(x) for op in self.operators], axis=len(self.range_shape) - 1)

    def _adjoint(self, y: Any) -> Any:
        axis = len(self.range_shape) - 1
        start, total = 0, None
        for op, size in zip(self.operators, self.sizes):
            index = (slice(None),) * axis + (slice(start, start + size),)
            part = op._adjoint(y[index])
            total = part if total is None else total + part
            start += size
        return total

    def projector_factorization(self) -> tuple[LinearOperator, Any] | None:
        factors = [op.projector_factorization() for op in self.operators]
        if any(f is None for f in factors):
            return None
        projectors = {id(projector) for _, projector in factors}
        lefts = [left for left, _ in factors]
        if len(projectors) != 1 or len({left.domain_shape for left in lefts}) != 1:
            return None
        return Concatenate(lefts), factors[0][1]

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return Concatenate([op.subset(angles) for op in self.operators])

    def __repr__(self) -> str:
        return f"Concatenate({self.operators!r})"
