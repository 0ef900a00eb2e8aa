"""The linear-operator protocol: core shapes, trailing batch axes, adjoints, algebra, norms, sums.

A :class:`LinearOperator` ``A`` maps arrays of shape ``domain_shape + batch`` to
arrays of shape ``range_shape + batch``.  The *core* axes (``domain_shape``,
``range_shape``) are the ones the operator acts on; any further, *trailing*
axes are batch axes: ``A`` acts on every batch column (one index of the batch
axes) independently and identically.  This is the layout of the projector
(:class:`~edstomo.operators.ParallelBeamProjector`): the core of a volume is one
slice ``(nz, nx)``, its batch axes are channels and slices, and one sparse
product handles all of them.

Contract of a subclass: implement :meth:`LinearOperator._forward` and
:meth:`LinearOperator._adjoint`, which receive an array whose leading axes
already match the core shape and must return ``range_shape + batch`` (or
``domain_shape + batch``) without modifying their input.  ``_adjoint`` must be
the exact adjoint: ``⟨A x, y⟩ = ⟨x, Aᵀ y⟩`` for every x and y (check it with
:func:`edstomo.testing.dottest`).  Everything else — composition ``A @ B``,
sums ``A + B``, scaling ``c * A``, the adjoint view ``A.T``, row and column sums,
the operator norm by the power method — comes from this base class.

Example
-------
>>> import numpy as np
>>> from edstomo.operators import MatrixOperator
>>> A = MatrixOperator(np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]]))
>>> A.forward(np.ones(2)).tolist()
[3.0, 1.0, 3.0]
>>> (2 * A).T.forward(np.ones(3)).tolist()
[8.0, 6.0]
>>> round(A.norm(), 6)  # the largest singular value
3.271324
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..errors import InputError

__all__ = [
    "AdjointOperator",
    "ComposedOperator",
    "LinearOperator",
    "MatrixOperator",
    "ScaledOperator",
    "SummedOperator",
]

Shape = tuple[int, ...]


def _shape(value: Sequence[int], name: str) -> Shape:
    shape = tuple(int(n) for n in value)
    if any(n < 1 for n in shape):
        raise InputError(f"{name}: {value!r} must be a tuple of positive integers")
    return shape


def _pointwise(operator: LinearOperator) -> bool:
    """Whether an operator acts on each tilt angle (first core axis) separately."""
    return bool(getattr(operator, "pointwise_in_angle", False))


class LinearOperator(ABC):
    """A linear map between arrays of shape ``domain_shape + batch`` and ``range_shape + batch``.

    Parameters
    ----------
    domain_shape : tuple of int
        Core shape of the input.
    range_shape : tuple of int
        Core shape of the output.

    Notes
    -----
    Operators combine with ``@`` (composition, or application to an array),
    ``+``, ``-`` and scalar ``*``; ``A.T`` (also ``A.H``) is the adjoint.
    An operator on the sinogram side that acts on each tilt angle (its first
    core axis) separately sets ``pointwise_in_angle`` (see :meth:`subset`).
    """

    pointwise_in_angle: bool = False
    is_identity: bool = False

    def __init__(self, domain_shape: Sequence[int], range_shape: Sequence[int]) -> None:
        self.domain_shape: Shape = _shape(domain_shape, "domain_shape")
        self.range_shape: Shape = _shape(range_shape, "range_shape")
        self._norm: float | None = None

    # ------------------------------------------------------------ contract
    @abstractmethod
    def _forward(self, x: Any) -> Any:
        """``A x`` for an array of shape ``domain_shape + batch``."""

    @abstractmethod
    def _adjoint(self, y: Any) -> Any:
        """``Aᵀ y`` for an array of shape ``range_shape + batch``."""

    # ---------------------------------------------------------- application
    def forward(self, x: Any) -> Any:
        """Apply the operator: ``A x``.

        Parameters
        ----------
        x : array, shape ``domain_shape + batch``
            NumPy or CuPy array (anything array-like becomes NumPy).

        Returns
        -------
        array, shape ``range_shape + batch``
        """
        return self._forward(self._checked(x, self.domain_shape, "x"))

    def adjoint(self, y: Any) -> Any:
        """Apply the adjoint: ``Aᵀ y``.

        Parameters
        ----------
        y : array, shape ``range_shape + batch``

        Returns
        -------
        array, shape ``domain_shape + batch``
        """
        return self._adjoint(self._checked(y, self.range_shape, "y"))

    @staticmethod
    def _checked(array: Any, core: Shape, name: str) -> Any:
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            array = np.asarray(array, dtype=float)
        if tuple(array.shape[: len(core)]) != core:
            raise InputError(
                f"{name}: shape {tuple(array.shape)} does not start with the operator's core shape {core} "
                "(core axes first, batch axes trailing)"
            )
        return array

    def batch_shape(self, x: Any) -> Shape:
        """The batch axes of an input of the domain: ``x.shape[len(domain_shape):]``."""
        return tuple(x.shape[len(self.domain_shape) :])

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of the operator as a matrix on one batch column."""
        return math.prod(self.range_shape), math.prod(self.domain_shape)

    # -------------------------------------------------------------- algebra
    @property
    def T(self) -> LinearOperator:
        """The adjoint operator Aᵀ."""
        return AdjointOperator(self)

    H = T

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator):
            return ComposedOperator(self, other)
        return self.forward(other)

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SummedOperator(self, other)

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SummedOperator(self, ScaledOperator(other, -1.0))

    def __mul__(self, scalar: float) -> LinearOperator:
        if isinstance(scalar, LinearOperator) or not np.isscalar(scalar):
            return NotImplemented
        return ScaledOperator(self, float(scalar))

    __rmul__ = __mul__

    def __neg__(self) -> LinearOperator:
        return ScaledOperator(self, -1.0)

    # ------------------------------------------------------- sums and norms
    def row_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        """Sums of the operator's rows, ``A 1``, shape ``range_shape``.

        Parameters
        ----------
        xp : array namespace, optional
            Where to compute (default NumPy).
        dtype : dtype, optional
            Arithmetic type (default float64).
        """
        xp = xp or backend.namespace()
        return self.forward(xp.ones(self.domain_shape, dtype=dtype or xp.float64))

    def col_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        """Sums of the operator's columns, ``Aᵀ 1``, shape ``domain_shape``."""
        xp = xp or backend.namespace()
        return self.adjoint(xp.ones(self.range_shape, dtype=dtype or xp.float64))

    def norm(self, iterations: int = 100, rtol: float = 1e-7, seed: int = 0) -> float:
        """The spectral norm ‖A‖₂ by the power method on AᵀA (computed once, then cached).

        Parameters
        ----------
        iterations : int
            Largest number of power iterations.
        rtol : float
            Stop when the estimate changes by less than this, relatively.
        seed : int
            Seed of the random start vector.

        Returns
        -------
        float
            An estimate from below that converges to ‖A‖₂ (one batch column).
        """
        if self._norm is None:
            rng = np.random.default_rng(seed)
            x = rng.standard_normal(self.domain_shape)
            x /= np.linalg.norm(x)
            estimate = 0.0
            for _ in range(iterations):
                y = backend.to_numpy(self.adjoint(self.forward(x))).astype(np.float64)
                size = float(np.linalg.norm(y))
                if size == 0.0:
                    break
                previous, estimate = estimate, math.sqrt(size)
                x = y / size
                if abs(estimate - previous) <= rtol * estimate:
                    break
            self._norm = estimate
        return self._norm

    # -------------------------------------------------------- factorisation
    def projector_factorization(self) -> tuple[LinearOperator, Any] | None:
        """``(L, W)`` with ``A = L ∘ W`` and ``W`` a projector acting with extra batch axes, else None.

        ``L`` acts on the sinogram side only.  Solvers use this to run the
        projector's fused update kernel (``W.update``) instead of a separate back
        projection; operators that are not built on a projector return None.
        """
        return None

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        """The operator restricted to the rows of some tilt angles (the first range axis).

        Used by ordered-subset solvers.  Operators whose rows are not grouped by
        angle raise NotImplementedError.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be restricted to a subset of tilt angles")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(domain_shape={self.domain_shape}, range_shape={self.range_shape})"


class AdjointOperator(LinearOperator):
    """The adjoint view ``Aᵀ`` of an operator (``A.T``); ``A.T.T`` is ``A`` again."""

    def __init__(self, operator: LinearOperator) -> None:
        super().__init__(operator.range_shape, operator.domain_shape)
        self.operator = operator

    def _forward(self, x: Any) -> Any:
        return self.operator._adjoint(x)

    def _adjoint(self, y: Any) -> Any:
        return self.operator._forward(y)

    @property
    def T(self) -> LinearOperator:
        return self.operator

    H = T

    def __repr__(self) -> str:
        return f"{self.operator!r}.T"


class ComposedOperator(LinearOperator):
    """``A ∘ B``: apply ``B`` then ``A`` (``A @ B``); the domain of ``A`` must be the range of ``B``."""

    def __init__(self, left: LinearOperator, right: LinearOperator) -> None:
        if left.domain_shape != right.range_shape:
            raise InputError(
                f"operators: cannot compose {left!r} after {right!r}: domain {left.domain_shape} "
                f"differs from range {right.range_shape}"
            )
        super().__init__(right.domain_shape, left.range_shape)
        self.left, self.right = left, right
        self.pointwise_in_angle = _pointwise(left) and _pointwise(right)

    def _forward(self, x: Any) -> Any:
        return self.left._forward(self.right._forward(x))

    def _adjoint(self, y: Any) -> Any:
        return self.right._adjoint(self.left._adjoint(y))

    def projector_factorization(self) -> tuple[LinearOperator, Any] | None:
        inner = self.right.projector_factorization()
        if inner is None:
            return None
        left, projector = inner
        return ComposedOperator(self.left, left), projector

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        if not getattr(self.left, "pointwise_in_angle", False):
            raise NotImplementedError(f"{self.left!r} mixes tilt angles; cannot restrict {self!r} to a subset")
        return ComposedOperator(self.left.subset(angles), self.right.subset(angles))

    def __repr__(self) -> str:
        return f"({self.left!r} @ {self.right!r})"


class SummedOperator(LinearOperator):
    """``A + B`` for two operators of equal domain and range."""

    def __init__(self, first: LinearOperator, second: LinearOperator) -> None:
        if (first.domain_shape, first.range_shape) != (second.domain_shape, second.range_shape):
            raise InputError(f"operators: cannot add {first!r} and {second!r}: shapes differ")
        super().__init__(first.domain_shape, first.range_shape)
        self.first, self.second = first, second
        self.pointwise_in_angle = _pointwise(first) and _pointwise(second)

    def _forward(self, x: Any) -> Any:
        return self.first._forward(x) + self.second._forward(x)

    def _adjoint(self, y: Any) -> Any:
        return self.first._adjoint(y) + self.second._adjoint(y)

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return SummedOperator(self.first.subset(angles), self.second.subset(angles))

    def __repr__(self) -> str:
        return f"({self.first!r} + {self.second!r})"


class ScaledOperator(LinearOperator):
    """``c A`` for a real scalar ``c``."""

    def __init__(self, operator: LinearOperator, scalar: float) -> None:
        super().__init__(operator.domain_shape, operator.range_shape)
        self.operator, self.scalar = operator, float(scalar)
        self.pointwise_in_angle = _pointwise(operator)

    def _forward(self, x: Any) -> Any:
        return self.scalar * self.operator._forward(x)

    def _adjoint(self, y: Any) -> Any:
        return self.scalar * self.operator._adjoint(y)

    def projector_factorization(self) -> tuple[LinearOperator, Any] | None:
        inner = self.operator.projector_factorization()
        if inner is None:
            return None
        left, projector = inner
        return ScaledOperator(left, self.scalar), projector

    def subset(self, angles: Sequence[int]) -> LinearOperator:
        return ScaledOperator(self.operator.subset(angles), self.scalar)

    def __repr__(self) -> str:
        return f"{self.scalar:g} * {self.operator!r}"


class MatrixOperator(LinearOperator):
    """A dense or SciPy-sparse matrix acting on one core axis (for tests and small systems).

    Parameters
    ----------
    matrix : ndarray or scipy.sparse array, shape (m, n)
        The operator; inputs have shape ``(n, *batch)``, outputs ``(m, *batch)``.
    """

    def __init__(self, matrix: Any) -> None:
        if getattr(matrix, "ndim", None) != 2:
            raise InputError(f"matrix: expected a two-dimensional matrix, got {type(matrix).__name__}")
        super().__init__((matrix.shape[1],), (matrix.shape[0],))
        self.matrix = matrix

    def _forward(self, x: Any) -> Any:
        batch = x.shape[1:]
        return (self.matrix @ x.reshape(x.shape[0], -1)).reshape(self.range_shape + batch)

    def _adjoint(self, y: Any) -> Any:
        batch = y.shape[1:]
        return (self.matrix.T @ y.reshape(y.shape[0], -1)).reshape(self.domain_shape + batch)
