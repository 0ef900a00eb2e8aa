"""SIRT and (ordered-subset) SART: row- and column-normalised Landweber steps, optionally non-negative.

For an operator ``A`` with non-negative entries and data ``b``, one iteration
visits the subsets ``S_1 … S_m`` of the tilt angles in turn and updates

    x ← P( x + λ C_s A_sᵀ R_s (b_s − A_s x) )

with ``A_s``, ``b_s`` the rows of the angles in ``S_s``, ``R_s = diag(1/A_s 1)``
(inverse row sums), ``C_s = diag(1/A_sᵀ 1)`` (inverse column sums; 0 where a sum
is 0), relaxation ``λ`` and ``P`` the projection onto ``x ≥ 0`` (or the
identity).  With one subset this is SIRT (Gregor & Benson 2008); with one
angle per subset it is SART (Andersen & Kak 1984); in between, OS-SART.

Fast path: when ``A = L ∘ W`` with ``W`` a
:class:`~edstomo.operators.ParallelBeamProjector` (see
:meth:`~edstomo.operators.LinearOperator.projector_factorization`) and ``C``
the same for every channel of a pixel, the back projection, update and clip
run as one pass of the projector's compiled kernel (:meth:`ParallelBeamProjector.update`),
and with one subset the new forward projection it returns is reused by the
next iteration.  Otherwise the steps run one by one on the operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..errors import InputError
from ..operators import LinearOperator
from .base import Algorithm, check_shapes, expand_core, safe_reciprocal

__all__ = ["SART", "angle_subsets"]

ORDERINGS: tuple[str, ...] = ("interleaved", "sequential", "random")
"""How ``angle_subsets`` deals the angles: every m-th angle, contiguous blocks, or a random partition."""


def angle_subsets(n_angles: int, subsets: int, ordering: str = "interleaved", seed: int = 0) -> list[np.ndarray]:
    """Partition tilt-angle indices into ``subsets`` ordered subsets.

    Parameters
    ----------
    n_angles : int
        Number of tilt angles.
    subsets : int
        Number of subsets (1 … n_angles).
    ordering : {"interleaved", "sequential", "random"}
        ``"interleaved"``: subset s holds angles s, s + m, s + 2m, … (each subset
        spans the whole tilt range, the usual choice); ``"sequential"``:
        contiguous blocks; ``"random"``: a seeded random partition.
    seed : int
        Seed of the ``"random"`` ordering.
    """
    if isinstance(subsets, bool) or int(subsets) != subsets or not 1 <= subsets <= n_angles:
        raise InputError(f"subsets: {subsets!r} must be an integer from 1 to the number of tilt angles {n_angles}")
    if ordering not in ORDERINGS:
        raise InputError(f"ordering: {ordering!r} must be one of {list(ORDERINGS)}")
    indices = np.arange(n_angles)
    if ordering == "random":
        indices = np.random.default_rng(seed).permutation(n_angles)
        return [np.sort(part) for part in np.array_split(indices, subsets)]
    if ordering == "sequential":
        return list(np.array_split(indices, subsets))
    return [indices[s::subsets] for s in range(subsets)]


class _Subset:
    """One subset's operator, data, weights and (fast path) factorisation."""

    def __init__(self, operator: LinearOperator, data: Any, x: Any, relaxation: float, fast: bool) -> None:
        xp = backend.namespace(x)
        dtype = x.dtype
        self.operator, self.data = operator, data
        rows = xp.asarray(operator.row_sums(xp, dtype), dtype=dtype)
        self.minus_row_weights = -expand_core(safe_reciprocal(rows, xp), data.ndim, xp)  # −R_s
        columns = relaxation * safe_reciprocal(xp.asarray(operator.col_sums(xp, dtype), dtype=dtype), xp)
        self.column_steps = expand_core(columns, x.ndim, xp)  # λ C_s
        self.left: LinearOperator | None = None
        self.projector: Any = None
        if fast:
            factors = operator.projector_factorization()
            if factors is not None:
                left, projector = factors
                slice_steps = xp.reshape(columns, (*projector.domain_shape, -1))
                if bool(xp.all(slice_steps == slice_steps[..., :1])):  # one step per pixel for every channel
                    self.left, self.projector = left, projector
                    self.pixel_steps = slice_steps[..., 0]
        self.identity_left = self.left is not None and self.left.is_identity


class SART(Algorithm):
    """SIRT / OS-SART / SART with non-negativity (see the module docstring).

    Parameters
    ----------
    operator : LinearOperator
        ``A``, with non-negative entries.
    data : array, shape ``range_shape + batch``
        ``b``.
    x0 : array, shape ``domain_shape + batch``
        Starting estimate; C-contiguous, of the arithmetic type; updated in place.
    relaxation : float
        λ in (0, 2).
    nonnegative : bool
        Project onto ``x ≥ 0`` after every update.
    subsets : sequence of index arrays, optional
        Ordered subsets of the tilt angles (rows grouped by the first range
        axis); default one subset of all angles (SIRT).  See :func:`angle_subsets`.
    max_iterations : int
        Iterations (passes over all subsets) of :meth:`run`.
    fast : bool
        Use the projector's fused update kernel when the operator allows it.
    """

    def __init__(
        self,
        operator: LinearOperator,
        data: Any,
        x0: Any,
        *,
        relaxation: float = 1.0,
        nonnegative: bool = True,
        subsets: Sequence[Any] | None = None,
        max_iterations: int = 100,
        fast: bool = True,
    ) -> None:
        super().__init__(max_iterations=max_iterations)
        if not 0.0 < float(relaxation) < 2.0:
            raise InputError(f"relaxation: {relaxation!r} must be in the open interval (0, 2)")
        check_shapes(operator, data, x0)
        self.operator, self.data, self.x = operator, data, x0
        self.relaxation, self.nonnegative, self.fast = float(relaxation), bool(nonnegative), bool(fast)
        self.subset_indices = None if subsets is None else [np.asarray(s, dtype=np.int64) for s in subsets]
        self._projection: Any = None

    def setup(self) -> None:
        xp = backend.namespace(self.x)
        everything = np.arange(self.operator.range_shape[0])
        if self.subset_indices is None or (
            len(self.subset_indices) == 1 and np.array_equal(self.subset_indices[0], everything)
        ):
            parts = [(self.operator, self.data)]
        else:
            parts = [
                (self.operator.subset(index), xp.take(self.data, xp.asarray(index), axis=0))
                for index in self.subset_indices
            ]
        self.subsets = [_Subset(op, b, self.x, self.relaxation, self.fast) for op, b in parts]

    def _clip(self) -> None:
        if self.nonnegative:
            xp = backend.namespace(self.x)
            xp.maximum(self.x, 0, out=self.x)

    def step(self) -> float:
        xp = backend.namespace(self.x)
        single = len(self.subsets) == 1
        project_next = single and self.iteration + 1 < self._target  # reuse W x in the next iteration
        squares = 0.0
        for part in self.subsets:
            if part.projector is not None:
                projection = self._projection if single and self._projection is not None else None
                if projection is None:
                    projection = part.projector.forward(self.x)
                predicted = projection if part.identity_left else part.left.forward(projection)
                predicted -= part.data  # A_s x − b_s, in place (the projection is not needed again)
                squares += float(xp.linalg.vector_norm(predicted)) ** 2
                predicted *= part.minus_row_weights  # R_s (b_s − A_s x)
                weighted = predicted if part.identity_left else part.left.adjoint(predicted)
                self._projection = part.projector.update(
                    self.x, weighted, part.pixel_steps, nonnegative=self.nonnegative, project=project_next
                )
            else:
                residual = part.operator.forward(self.x)
                residual -= part.data
                squares += float(xp.linalg.vector_norm(residual)) ** 2
                residual *= part.minus_row_weights
                self.x += part.column_steps * part.operator.adjoint(residual)
                self._clip()
        return squares**0.5
