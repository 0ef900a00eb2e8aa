"""SIRT and (ordered-subset) SART: row- and column-normalised Landweber steps, optionally non-negative.

For an operator ``A`` with non-negative entries and data ``b``, one iteration
visits the subsets ``S_1 … S_m`` of the tilt angles in turn and updates

    x ← P( x + λ_s C_s A_sᵀ R_s (b_s − A_s x) )

with ``A_s``, ``b_s`` the rows of the angles in ``S_s``, ``R_s = diag(1/A_s 1)``
(inverse row sums), ``C_s = diag(1/A_sᵀ 1)`` (inverse column sums; 0 where a sum
is 0) and ``P`` the projection onto ``x ≥ 0`` (or the identity).  With one
subset this is SIRT (Gregor & Benson 2008); with one angle per subset it is
SART (Andersen & Kak 1984); in between, OS-SART.

The relaxation of a subset is ``λ_s = λ |S_s| / mean_t |S_t|``: ``C_s`` gives
every subset a full step whatever its size, so without this factor the
angles of a smaller subset would weigh more than the others in a pass, and
the iterates drift away from the SIRT path (in our tests such unbalanced
partitions, e.g. 20 subsets of one or two of 31 tilts, ended 1–4 % above
SIRT's best error instead of below it).  For subsets of one size ``λ_s = λ``;
every ``λ_s`` must be below 2.

Fast paths: when ``A = L ∘ W`` with ``W`` a
:class:`~edstomo.operators.ParallelBeamProjector` (see
:meth:`~edstomo.operators.LinearOperator.projector_factorization`) and ``C``
the same for every channel of a pixel, the back projection, update and clip
run as one pass of the projector's compiled kernel (:meth:`ParallelBeamProjector.update`),
and with one subset the new forward projection it returns is reused by the
next iteration.  When ``A`` is the projector itself (``L = I``) and there are
several subsets, a whole iteration is one call of the compiled
:meth:`~edstomo.operators.kernels.PackedSubsets.sart_pass`: every subset's
update is fused with the next subset's projection (one pass over ``x`` per
subset), the residual is formed in the kernel, and the threads share out the
batch columns.  All paths give the same bits.  Otherwise the steps run one by
one on the operator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..errors import InputError
from ..operators import LinearOperator
from .base import Algorithm, check_shapes, expand_core, safe_reciprocal

__all__ = ["SART", "angle_subsets"]

ORDERINGS: tuple[str, ...] = ("golden", "interleaved", "sequential", "random")
"""How ``angle_subsets`` deals the angles: every m-th angle visited in golden-ratio order or in turn,
contiguous blocks, or a random partition."""

GOLDEN = (5**0.5 - 1) / 2
"""The golden section 0.618…: a ``"golden"`` pass visits subset s in the order of ``{s · GOLDEN}`` (fractional part)."""


def angle_subsets(n_angles: int, subsets: int, ordering: str = "interleaved", seed: int = 0) -> list[np.ndarray]:
    """Partition tilt-angle indices into ``subsets`` ordered subsets.

    Parameters
    ----------
    n_angles : int
        Number of tilt angles.
    subsets : int
        Number of subsets (1 … n_angles).
    ordering : {"golden", "interleaved", "sequential", "random"}
        ``"interleaved"``: subset s holds angles s, s + m, s + 2m, … (each subset
        spans the whole tilt range) and the subsets are visited in turn;
        ``"golden"``: the same subsets, visited in the order of the fractional
        parts of ``s × 0.618…`` (after Kohler 2004), so that each update comes
        from tilts far from those of the one before and the steps do not pile
        up in one direction (much less noise from the subsets);
        ``"sequential"``: contiguous blocks; ``"random"``: a seeded random partition.
    seed : int
        Seed of the ``"random"`` ordering.

    Examples
    --------
    >>> [part.tolist() for part in angle_subsets(8, 4, "interleaved")]
    [[0, 4], [1, 5], [2, 6], [3, 7]]
    >>> [part.tolist() for part in angle_subsets(8, 4, "golden")]
    [[0, 4], [2, 6], [1, 5], [3, 7]]
    >>> [int(part[0]) for part in angle_subsets(31, 31, "golden")][:6]
    [0, 13, 26, 5, 18, 10]
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
    parts = [indices[s::subsets] for s in range(subsets)]
    if ordering == "golden":
        return [parts[s] for s in np.argsort((np.arange(subsets) * GOLDEN) % 1.0, kind="stable")]
    return parts


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


class _Packed:
    """The data, weights and scratch space of the whole-pass kernel (:meth:`PackedSubsets.sart_pass`)."""

    def __init__(self, packed: Any, subsets: list[_Subset], batch: int) -> None:
        self.kernel = packed
        self.b = np.concatenate([part.data.reshape(-1, batch) for part in subsets])
        self.weights = np.concatenate([part.minus_row_weights.reshape(-1) for part in subsets])
        self.steps = np.stack([part.pixel_steps.reshape(-1) for part in subsets])
        self.work = packed.work(batch)


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
        axis), visited in this order; default one subset of all angles (SIRT).
        See :func:`angle_subsets`.
    max_iterations : int
        Iterations (passes over all subsets) of :meth:`run`.
    fast : bool
        Use the projector's compiled kernels when the operator allows it.
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
        self._projection: Any = None  # what the last step kept for the next one (A x, or the work buffer of A_0 x)
        self._packed: _Packed | None = None

    def setup(self) -> None:
        xp = backend.namespace(self.x)
        everything = np.arange(self.operator.range_shape[0])
        indices = self.subset_indices
        if indices is None or (len(indices) == 1 and np.array_equal(np.sort(indices[0]), everything)):
            self.subsets = [_Subset(self.operator, self.data, self.x, self.relaxation, self.fast)]
            return
        indices = [np.sort(index) for index in indices]  # the order within a subset changes nothing but rounding
        sizes = [len(index) for index in indices]
        mean = sum(sizes) / len(sizes)
        steps = [self.relaxation * size / mean for size in sizes]
        if max(steps) >= 2.0:
            raise InputError(
                f"relaxation: {self.relaxation!r} gives the largest of these subsets ({max(sizes)} of "
                f"{mean:.3g} angles on average) the step {max(steps):.3g}, which must be below 2; "
                f"use a relaxation below {2.0 * mean / max(sizes):.3g} or subsets of one size"
            )
        partition = self._partition(indices) if self.fast else None
        operators = partition.projectors if partition is not None else [self.operator.subset(i) for i in indices]
        self.subsets = [
            _Subset(op, xp.take(self.data, xp.asarray(index), axis=0), self.x, step, self.fast)
            for op, index, step in zip(operators, indices, steps, strict=True)
        ]
        if partition is not None and partition.packed is not None and all(p.identity_left for p in self.subsets):
            self._packed = _Packed(partition.packed, self.subsets, math.prod(self.x.shape[2:]))

    def _partition(self, indices: list[np.ndarray]) -> Any:
        """The projector's :class:`~edstomo.operators.AnglePartition` when ``A`` is a projector and ``x`` suits it."""
        factors = self.operator.projector_factorization()
        if factors is None or not factors[0].is_identity:
            return None
        projector, x = factors[1], self.x
        if backend.is_gpu_array(x) or x.dtype != projector.dtype or not x.flags.c_contiguous:
            return None
        return projector.partition(indices)

    def _clip(self) -> None:
        if self.nonnegative:
            xp = backend.namespace(self.x)
            xp.maximum(self.x, 0, out=self.x)

    def step(self) -> float:
        keep = self.iteration + 1 < self._target  # keep the next step's first projection
        if self._packed is not None:
            return self._packed_step(keep)
        xp = backend.namespace(self.x)
        single = len(self.subsets) == 1
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
                    self.x, weighted, part.pixel_steps, nonnegative=self.nonnegative, project=single and keep
                )
            else:
                residual = part.operator.forward(self.x)
                residual -= part.data
                squares += float(xp.linalg.vector_norm(residual)) ** 2
                residual *= part.minus_row_weights
                self.x += part.column_steps * part.operator.adjoint(residual)
                self._clip()
        return squares**0.5

    def projection(self, x: Any) -> Any:
        """A copy of ``W x`` for the current estimate ``x`` when the last iteration kept it for the next, else None.

        Only with one subset on the projector's fast path, where each iteration ends with the
        projector's forward product of the new estimate (same values as ``W.forward(x)``); callbacks
        that predict the data (:mod:`edstomo.selection`) then need no second projection.
        """
        subsets = getattr(self, "subsets", None)
        if x is not self.x or self._projection is None or subsets is None or len(subsets) != 1:
            return None
        if self._packed is not None or subsets[0].projector is None:
            return None
        return self._projection.copy()

    def _packed_step(self, keep: bool) -> float:
        """One iteration as one call of the compiled whole-pass kernel (several subsets of a projector)."""
        packed = self._packed
        fresh = self._projection is None
        current = 0 if fresh else self._projection
        squares = packed.kernel.sart_pass(
            self.x.reshape(packed.kernel.rows, -1), packed.b, packed.weights, packed.steps, packed.work,
            clip=self.nonnegative, current=current, fresh=fresh, project_last=keep,
        )  # fmt: skip
        self._projection = (current + len(self.subsets)) % 2 if keep else None
        return float(np.sqrt(squares.sum()))
