"""Compiled, multithreaded sparse products for the projector (optional: needs numba).

The projector stores one CSR matrix ``A`` of shape ``(N, M)``: ``A = Wᵀ``, one
row per pixel, one column per detector bin and angle, column indices sorted
within each row (see :mod:`edstomo.operators.projector`).  Dense operands are C-ordered
``(rows, batch)`` arrays whose batch axis (slices × channels) is contiguous, so
every non-zero ``a_pk`` updates one contiguous row of ``batch`` values: the
inner loops are vectorised by LLVM and the matrix is read once per product.

Three kernels run over that storage, multithreaded with numba (``parallel=True``):

``gather``     ``A y`` (= ``Wᵀ y``, the back projection).  The pixel rows are
               split into one block per thread (equal non-zeros); each output
               row is summed by one thread, four non-zeros per pass over the
               row, which quarters the loads and stores of the accumulator.
``scatter``    ``Aᵀ x`` (= ``W x``, the forward projection).  The *sinogram*
               rows are split into one block of bins per thread; every thread
               walks all pixel rows and adds each into the bins of its block
               (found by binary search in the sorted row), so no two threads
               write one row and no private copies or reductions are needed.
``update``     the SIRT step ``x ← P(x + s ⊙ A u)`` in place: the gather of one
               pixel row is followed at once by its update (scale, add,
               optional clip at 0), so the back projection is never stored.

Pixels are visited in small square tiles (:func:`tile_order`): the sinogram
rows touched by one tile fit in a core's L2 cache, for every angle.

The arithmetic is deterministic and independent of the thread count: every
output value is accumulated by one thread, in the same order (pixel tiles,
then the row's non-zeros), and only multiply-add contraction is allowed (no
reassociation), so one batch column does not depend on the batch size or the
other columns either.  A volume solved in slice chunks therefore equals the
volume solved at once, bit for bit.

All functions compile on first use and are cached on disk (``cache=True``).
:data:`HAVE_NUMBA` is False when numba is not installed; the projector then
uses scipy.sparse.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only without the 'speed' extra
    numba = None

__all__ = [
    "HAVE_NUMBA",
    "MIN_COLUMNS",
    "PARALLEL_WORK",
    "CompiledCSR",
    "PackedSubsets",
    "describe",
    "launch",
    "mix_channels",
    "split_columns",
    "tile_order",
]

HAVE_NUMBA: bool = numba is not None
"""Whether the compiled kernels are available (numba importable)."""

DEFAULT_TILE = 8
"""Edge of the square pixel tiles visited in turn, in pixels (see :func:`tile_order`)."""

MIN_COLUMNS = 16
"""Fewest batch columns a thread takes in a :meth:`PackedSubsets.sart_pass` (64 bytes of float32)."""

PARALLEL_WORK = 4_000_000
"""Multiply-adds (non-zeros × batch) below which a product runs on one thread: a parallel
region costs tens of microseconds, and milliseconds when another process holds a core."""

_LOCK = threading.Lock()
"""Serialises kernel launches: numba's parallel regions must not be entered from two
Python threads at once (its 'workqueue' layer aborts), and each launch already uses
every core."""


def tile_order(nz: int, nx: int, tile: int = DEFAULT_TILE) -> np.ndarray:
    """Pixel indices ``i * nx + j`` ordered tile by tile (row-major tiles, row-major inside).

    Parameters
    ----------
    nz, nx : int
        Slice shape in pixels.
    tile : int
        Tile edge in pixels (≥ 1); edge tiles may be smaller.

    Returns
    -------
    ndarray of int64, shape ``(nz * nx,)``
        A permutation of ``range(nz * nx)``.
    """
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
    i, j = np.divmod(np.arange(nz * nx, dtype=np.int64), nx)
    tiles_per_row = -(-nx // tile)
    key = ((i // tile) * tiles_per_row + j // tile) * (tile * tile) + (i % tile) * tile + (j % tile)
    return np.argsort(key, kind="stable").astype(np.int64)


def _balanced_bounds(counts: np.ndarray, blocks: int) -> np.ndarray:
    """Split ``len(counts)`` items into ``blocks`` contiguous ranges of about equal total count."""
    cumulative = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    targets = cumulative[-1] * np.arange(blocks + 1) / blocks
    bounds = np.searchsorted(cumulative, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, len(counts)
    return bounds


if HAVE_NUMBA:
    _JIT = {"parallel": True, "cache": True, "fastmath": {"contract"}, "nogil": True}
    _ONE = numba.uint64(1)

    # Row helpers.  Every one works on the batch columns c0 … c1 − 1 of its rows; the
    # columns are unsigned (uint64), so numba drops its negative-index test and the
    # loops over them vectorise.  Each value gets the same operations whatever the
    # column range, so a column's result does not depend on the others.

    @numba.njit(inline="always")
    def _gather_row(indices, data, k, end, y, o, c0, c1):  # pragma: no cover - compiled
        """``o[c] += Σ_k data[k] * y[indices[k], c]`` over one CSR row, four non-zeros per pass.

        A single column takes a scalar loop with the very same operations (same bits).
        """
        if c1 - c0 == _ONE:
            acc = o[c0]
            while k + 4 <= end:
                acc += (
                    (data[k] * y[indices[k], c0] + data[k + 1] * y[indices[k + 1], c0])
                    + data[k + 2] * y[indices[k + 2], c0]
                ) + data[k + 3] * y[indices[k + 3], c0]
                k += 4
            while k < end:
                acc += data[k] * y[indices[k], c0]
                k += 1
            o[c0] = acc
            return
        while k + 4 <= end:
            w0, w1, w2, w3 = data[k], data[k + 1], data[k + 2], data[k + 3]
            r0, r1, r2, r3 = y[indices[k]], y[indices[k + 1]], y[indices[k + 2]], y[indices[k + 3]]
            for c in range(c0, c1):
                o[c] += ((w0 * r0[c] + w1 * r1[c]) + w2 * r2[c]) + w3 * r3[c]
            k += 4
        while k < end:
            w0 = data[k]
            r0 = y[indices[k]]
            for c in range(c0, c1):
                o[c] += w0 * r0[c]
            k += 1

    @numba.njit(inline="always")
    def _scatter_row(indices, data, k, end, v, out, c0, c1):  # pragma: no cover - compiled
        """``out[indices[k], c] += data[k] * v[c]`` over one CSR row, two non-zeros per pass."""
        if c1 - c0 == _ONE:
            value = v[c0]
            while k < end:
                out[indices[k], c0] += data[k] * value
                k += 1
            return
        while k + 2 <= end:
            w0, w1 = data[k], data[k + 1]
            o0, o1 = out[indices[k]], out[indices[k + 1]]
            for c in range(c0, c1):
                o0[c] += w0 * v[c]
                o1[c] += w1 * v[c]
            k += 2
        if k < end:
            w0 = data[k]
            o0 = out[indices[k]]
            for c in range(c0, c1):
                o0[c] += w0 * v[c]

    @numba.njit(inline="always")
    def _update_row(indices, data, k, end, u, v, s, g, clip, c0, c1):  # pragma: no cover - compiled
        """``v ← P(v + s · Σ_k data[k] u[indices[k]])`` for one pixel row ``v``, with ``g`` as scratch."""
        for c in range(c0, c1):
            g[c] = 0
        _gather_row(indices, data, k, end, u, g, c0, c1)
        if clip:
            for c in range(c0, c1):
                value = v[c] + s * g[c]
                v[c] = value if value > 0 else 0
        else:
            for c in range(c0, c1):
                v[c] = v[c] + s * g[c]

    @numba.njit(inline="always")
    def _zero_rows(out, first, last, c0, c1):  # pragma: no cover - compiled
        for r in range(first, last):
            o = out[r]
            for c in range(c0, c1):
                o[c] = 0

    @numba.njit(**_JIT)
    def _gather(indptr, indices, data, y, out, order, rows):  # pragma: no cover - compiled
        c1 = numba.uint64(out.shape[1])
        for t in numba.prange(len(rows) - 1):
            for q in range(rows[t], rows[t + 1]):
                p = order[q]
                o = out[p]
                for c in range(c1):
                    o[c] = 0
                _gather_row(indices, data, indptr[p], indptr[p + 1], y, o, numba.uint64(0), c1)

    @numba.njit(**_JIT)
    def _scatter(indptr, indices, data, x, out, order, cols):  # pragma: no cover - compiled
        c1 = numba.uint64(out.shape[1])
        for t in numba.prange(len(cols) - 1):
            first, last = cols[t], cols[t + 1]
            out[first:last] = 0
            for q in range(len(order)):
                p = order[q]
                k = indptr[p]
                end = indptr[p + 1]
                if len(cols) > 2:  # several blocks: this block's part of the (sorted) row
                    row = indices[k:end]
                    end = k + np.searchsorted(row, last)
                    k = k + np.searchsorted(row, first)
                _scatter_row(indices, data, k, end, x[p], out, numba.uint64(0), c1)

    @numba.njit(**_JIT)
    def _update(indptr, indices, data, u, x, scale, clip, order, rows):  # pragma: no cover - compiled
        c1 = numba.uint64(x.shape[1])
        for t in numba.prange(len(rows) - 1):
            g = np.empty(x.shape[1], dtype=x.dtype)
            for q in range(rows[t], rows[t + 1]):
                p = order[q]
                _update_row(indices, data, indptr[p], indptr[p + 1], u, x[p], scale[p], g, clip, numba.uint64(0), c1)

    @numba.njit(**_JIT)
    def _mix_channels(matrix, x, out):  # pragma: no cover - compiled
        columns = numba.uint64(x.shape[2])
        for i in numba.prange(x.shape[0]):
            for m in range(matrix.shape[0]):
                o = out[i, m]
                empty = True
                for k in range(matrix.shape[1]):
                    w = matrix[m, k]
                    if w == 0:
                        continue
                    v = x[i, k]
                    if empty:
                        for c in range(columns):
                            o[c] = w * v[c]
                        empty = False
                    else:
                        for c in range(columns):
                            o[c] += w * v[c]
                if empty:
                    for c in range(columns):
                        o[c] = 0

    @numba.njit(cache=True, nogil=True)
    def _split_columns(indptr, indices, data, group_of, local_of, groups, ordered):  # pragma: no cover - compiled
        rows = len(indptr) - 1
        pointers = np.zeros((groups, rows + 1), dtype=np.int64)
        for p in range(rows):
            for k in range(indptr[p], indptr[p + 1]):
                group = group_of[indices[k]]
                if group >= 0:
                    pointers[group, p + 1] += 1
        total = 0
        for group in range(groups):
            for p in range(rows + 1):
                total += pointers[group, p]
                pointers[group, p] = total
        new_indices = np.empty(total, dtype=indices.dtype)
        new_data = np.empty(total, dtype=data.dtype)
        sums = np.zeros((groups, rows))
        free = pointers[:, :rows].copy()
        for p in range(rows):
            for k in range(indptr[p], indptr[p + 1]):
                column = indices[k]
                group = group_of[column]
                if group >= 0:
                    q = free[group, p]
                    free[group, p] = q + 1
                    new_indices[q] = local_of[column]
                    new_data[q] = data[k]
                    sums[group, p] += data[k]
        if not ordered:  # sort each row by its new column (insertion sort: rows are short)
            for group in range(groups):
                for p in range(rows):
                    for q in range(pointers[group, p] + 1, pointers[group, p + 1]):
                        column, value = new_indices[q], new_data[q]
                        r = q - 1
                        while r >= pointers[group, p] and new_indices[r] > column:
                            new_indices[r + 1], new_data[r + 1] = new_indices[r], new_data[r]
                            r -= 1
                        new_indices[r + 1], new_data[r + 1] = column, value
        return pointers, new_indices, new_data, sums

    @numba.njit(**_JIT)
    def _sart_pass(indptr, indices, data, order, x, system, work, mode, columns, squares):  # pragma: no cover
        offsets, b, weights, steps = system
        clip, current, fresh, project_last = mode
        m = len(offsets) - 1
        for t in numba.prange(len(columns) - 1):
            c0, c1 = numba.uint64(columns[t]), numba.uint64(columns[t + 1])
            g = np.empty(x.shape[1], dtype=x.dtype)
            if fresh:  # W_0 x: work[current] does not hold it yet
                _zero_rows(work[current], 0, offsets[1] - offsets[0], c0, c1)
                for q in range(len(order)):
                    p = order[q]
                    _scatter_row(indices, data, indptr[0, p], indptr[0, p + 1], x[p], work[current], c0, c1)
            for s in range(m):
                u, out = work[(current + s) % 2], work[(current + s + 1) % 2]
                first = offsets[s]
                for r in range(offsets[s + 1] - first):  # u ← −R_s (W_s x − b_s), and the squared residual
                    row, known, w = u[r], b[first + r], weights[first + r]
                    for c in range(c0, c1):
                        value = row[c] - known[c]
                        squares[c] += np.float64(value) * np.float64(value)
                        row[c] = value * w
                following = (s + 1) % m
                project = s + 1 < m or project_last
                if project:
                    _zero_rows(out, 0, offsets[following + 1] - offsets[following], c0, c1)
                for q in range(len(order)):
                    p = order[q]
                    v = x[p]
                    _update_row(indices, data, indptr[s, p], indptr[s, p + 1], u, v, steps[s, p], g, clip, c0, c1)
                    if project:
                        _scatter_row(indices, data, indptr[following, p], indptr[following, p + 1], v, out, c0, c1)


def _unsigned(index: np.ndarray) -> np.ndarray:
    """A uint32 view of an int32 index array (other index types are returned as they are)."""
    return index.view(np.uint32) if index.dtype == np.int32 else index


def _rows_sorted(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """Whether the column indices increase strictly within every CSR row."""
    if len(indices) < 2:
        return True
    rising = np.diff(indices) > 0
    rising[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < len(indices))] - 1] = True  # row boundaries
    return bool(rising.all())


class CompiledCSR:
    """Multithreaded products with one CSR matrix ``A`` of shape ``(N, M)`` (numba).

    Parameters
    ----------
    indptr, indices, data : ndarray
        The CSR arrays of ``A``; column indices strictly increasing within each
        row; ``data`` float32 or float64 (the dense operands must have the same dtype).
    shape : (int, int)
        ``(N, M)``.
    order : ndarray of int64, shape ``(N,)``
        The order in which rows are visited (a permutation, e.g. :func:`tile_order`).

    Notes
    -----
    Every method takes and returns C-ordered 2-D arrays ``(rows, batch)`` of the
    matrix dtype; callers (the projector) check shapes and types.  Products of
    at least :data:`PARALLEL_WORK` multiply-adds use numba's thread count
    (``numba.get_num_threads()``), smaller ones one thread; the results are
    the same bits either way.
    """

    def __init__(
        self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int], order: np.ndarray
    ) -> None:
        if not HAVE_NUMBA:
            raise ImportError("the compiled kernels need numba: pip install 'edstomo[speed]'")
        self.shape = (int(shape[0]), int(shape[1]))
        if len(indptr) != self.shape[0] + 1:
            raise ValueError(f"indptr has {len(indptr)} entries, expected {self.shape[0] + 1} for shape {shape}")
        if not _rows_sorted(indptr, indices):
            raise ValueError("indices must increase strictly within each row (a canonical CSR matrix)")
        # Unsigned views of the (non-negative) indices: numba then skips its negative-index
        # wraparound test on every access, which halves the cost of narrow products.
        self.indptr, self.indices, self.data = _unsigned(indptr), _unsigned(indices), data
        self.order = np.ascontiguousarray(order, dtype=np.int64)
        if self.order.shape != (self.shape[0],):
            raise ValueError(f"order has shape {self.order.shape}, expected ({self.shape[0]},)")
        self._row_blocks: dict[int, np.ndarray] = {}
        self._col_blocks: dict[int, np.ndarray] = {}

    def _threads(self, batch: int) -> int:
        return 1 if len(self.data) * batch < PARALLEL_WORK else int(numba.get_num_threads())

    def _rows(self, threads: int) -> np.ndarray:
        """Blocks of ``order`` (pixel rows) with about equal non-zeros, one per thread."""
        if threads not in self._row_blocks:
            self._row_blocks[threads] = _balanced_bounds(np.diff(self.indptr)[self.order], threads)
        return self._row_blocks[threads]

    def _cols(self, threads: int) -> np.ndarray:
        """Blocks of columns (sinogram rows) with about equal non-zeros, one per thread."""
        if threads not in self._col_blocks:
            self._col_blocks[threads] = _balanced_bounds(np.bincount(self.indices, minlength=self.shape[1]), threads)
        return self._col_blocks[threads]

    def _run(self, kernel: Any, threads: int, *arguments: Any) -> None:
        """``kernel(indptr, indices, data, *arguments)`` with numba limited to ``threads`` threads."""
        with _LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                kernel(self.indptr, self.indices, self.data, *arguments)
            finally:
                numba.set_num_threads(previous)

    def gather(self, y: np.ndarray) -> np.ndarray:
        """``A @ y`` for ``y`` of shape ``(M, batch)``; returns ``(N, batch)``."""
        out = np.empty((self.shape[0], y.shape[1]), dtype=self.data.dtype)
        threads = self._threads(y.shape[1])
        self._run(_gather, threads, y, out, self.order, self._rows(threads))
        return out

    def scatter(self, x: np.ndarray) -> np.ndarray:
        """``Aᵀ @ x`` for ``x`` of shape ``(N, batch)``; returns ``(M, batch)``."""
        out = np.empty((self.shape[1], x.shape[1]), dtype=self.data.dtype)
        threads = self._threads(x.shape[1])
        self._run(_scatter, threads, x, out, self.order, self._cols(threads))
        return out

    def update(self, u: np.ndarray, x: np.ndarray, scale: np.ndarray, *, clip: bool) -> None:
        """The step ``x ← P(x + scale ⊙ (A @ u))``, in place, without storing ``A @ u``.

        Parameters
        ----------
        u : ndarray, shape ``(M, batch)``
            Weighted residual sinogram.
        x : ndarray, shape ``(N, batch)``
            Estimate, updated in place.
        scale : ndarray, shape ``(N,)``
            Per-row step (e.g. relaxation × inverse column sums).
        clip : bool
            Set negative values of the updated ``x`` to 0 (``P``).
        """
        threads = self._threads(x.shape[1])
        self._run(_update, threads, u, x, scale, clip, self.order, self._rows(threads))


class PackedSubsets:
    """Column subsets of one CSR matrix ``A`` stored one after the other, for whole SART passes.

    ``A`` has shape ``(N, M)``; its columns are split into ``m`` subsets, and
    subset ``s`` is the CSR matrix ``A_s`` of shape ``(N, M_s)`` whose columns
    are numbered ``0 … M_s − 1``.  The subsets' entries are stored subset after
    subset in one ``indices`` and one ``data`` array; ``indptr[s]`` holds the
    row pointers of ``A_s`` into them.  For the projector, ``A = Wᵀ``, a
    column subset is a subset of the tilt angles, and a pass is one iteration
    of ordered-subset SART (see :meth:`sart_pass`).

    Parameters
    ----------
    indptr : ndarray of int64, shape ``(m, N + 1)``
        Row pointers of each subset into ``indices`` and ``data``.
    indices, data : ndarray
        Column indices (local to their subset, increasing within each row of a
        subset) and values, subset after subset.
    offsets : ndarray of int64, shape ``(m + 1,)``
        Subset ``s`` holds the packed sinogram rows ``offsets[s] … offsets[s + 1] − 1``
        (so ``M_s = offsets[s + 1] − offsets[s]``).
    order : ndarray of int64, shape ``(N,)``
        The order in which rows are visited (e.g. :func:`tile_order`).

    Attributes
    ----------
    parts : list of CompiledCSR
        ``A_s`` for each subset, on views of the packed arrays.
    """

    def __init__(
        self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, offsets: np.ndarray, order: np.ndarray
    ) -> None:
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        m, rows = self.indptr.shape[0], self.indptr.shape[1] - 1
        if self.offsets.shape != (m + 1,) or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 1):
            raise ValueError(f"offsets {self.offsets.tolist()} must rise from 0 in {m} steps of at least 1")
        self.indices, self.data = _unsigned(indices), data
        self.parts = [
            CompiledCSR(
                self.indptr[s] - self.indptr[s, 0],
                indices[self.indptr[s, 0] : self.indptr[s, -1]],
                data[self.indptr[s, 0] : self.indptr[s, -1]],
                (rows, int(self.offsets[s + 1] - self.offsets[s])),
                order,
            )
            for s in range(m)
        ]
        self.order = self.parts[0].order

    @property
    def rows(self) -> int:
        """``N``, the number of rows (pixels)."""
        return self.parts[0].shape[0]

    def work(self, batch: int) -> np.ndarray:
        """Two scratch sinograms for :meth:`sart_pass`, shape ``(2, max M_s, batch)``."""
        return np.empty((2, int(np.diff(self.offsets).max()), batch), dtype=self.data.dtype)

    def columns(self, batch: int) -> np.ndarray:
        """Bounds of the blocks of batch columns that the threads of a pass take (multiples of :data:`MIN_COLUMNS`)."""
        threads = 1 if len(self.data) * batch < PARALLEL_WORK else int(numba.get_num_threads())
        blocks = max(1, min(threads, batch // MIN_COLUMNS))
        bounds = np.round(np.linspace(0, batch / MIN_COLUMNS, blocks + 1)).astype(np.int64) * MIN_COLUMNS
        bounds[-1] = batch
        return bounds

    def sart_pass(
        self,
        x: np.ndarray,
        b: np.ndarray,
        weights: np.ndarray,
        steps: np.ndarray,
        work: np.ndarray,
        *,
        clip: bool,
        current: int,
        fresh: bool,
        project_last: bool,
    ) -> np.ndarray:
        """One pass of ordered-subset SART, in place: for s = 0 … m − 1, ``x ← P(x + steps_s ⊙ A_s u_s)``.

        with ``u_s = weights_s ⊙ (A_sᵀ x − b_s)`` (``weights`` are minus the
        inverse row sums, so this is ``R_s (b_s − W_s x)``).  Each subset costs
        one pass over ``x``: the update of a pixel row is followed at once by its
        projection into the next subset's sinogram.  The batch columns are split
        between the threads (:meth:`columns`), which then need no synchronisation;
        a batch too narrow to give every thread :data:`MIN_COLUMNS` columns runs
        subset by subset on the row-parallel kernels instead.  The bits are the
        same either way, and the same as :meth:`CompiledCSR.scatter`, subtraction,
        scaling and :meth:`CompiledCSR.update` one after the other.

        Parameters
        ----------
        x : ndarray, shape ``(N, batch)``
            The estimate, updated in place.
        b : ndarray, shape ``(offsets[-1], batch)``
            Data, subset after subset.
        weights : ndarray, shape ``(offsets[-1],)``
            Minus the inverse row sums of each subset's sinogram rows.
        steps : ndarray, shape ``(m, N)``
            Per-pixel step of each subset (relaxation × inverse column sums).
        work : ndarray, shape ``(2, max M_s, batch)``
            From :meth:`work`; ``work[current]`` holds ``A_0ᵀ x`` unless ``fresh``.
        clip : bool
            Set negative values to 0 after every update.
        current : int
            0 or 1 (see ``work``).
        fresh : bool
            Compute ``A_0ᵀ x`` first.
        project_last : bool
            After the last update, leave ``A_0ᵀ x`` of the new estimate in
            ``work[(current + m) % 2]`` for the next pass.

        Returns
        -------
        ndarray of float64, shape ``(batch,)``
            Σ over subsets of the squared residual ``‖A_sᵀ x − b_s‖²`` of each
            column, each at the estimate the subset's update started from.
        """
        batch = x.shape[1]
        squares = np.zeros(batch)
        columns = self.columns(batch)
        threads = 1 if len(self.data) * batch < PARALLEL_WORK else int(numba.get_num_threads())
        if len(columns) - 1 < threads:
            self._pass_by_parts(x, b, weights, steps, work, squares, clip, current, fresh, project_last)
            return squares
        arguments = (self.order, x, (self.offsets, b, weights, steps), work, (clip, current, fresh, project_last))
        with _LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(len(columns) - 1)
            try:
                _sart_pass(self.indptr, self.indices, self.data, *arguments, columns, squares)
            finally:
                numba.set_num_threads(previous)
        return squares

    def _pass_by_parts(
        self, x, b, weights, steps, work, squares, clip, current, fresh, project_last
    ) -> None:  # same operations as _sart_pass, one subset and one product at a time
        m = len(self.parts)
        sizes = np.diff(self.offsets)
        if fresh:
            work[current, : sizes[0]] = self.parts[0].scatter(x)
        for s in range(m):
            first, last = self.offsets[s], self.offsets[s + 1]
            u = work[(current + s) % 2, : sizes[s]]
            u -= b[first:last]
            squares += np.einsum("ij,ij->j", u, u, dtype=np.float64)
            u *= weights[first:last, None]
            self.parts[s].update(u, x, steps[s], clip=clip)
            if s + 1 < m or project_last:
                following = (s + 1) % m
                work[(current + s + 1) % 2, : sizes[following]] = self.parts[following].scatter(x)


def mix_channels(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``out[i, m, c] = Σ_k matrix[m, k] x[i, k, c]``: small channel mixings of many rows, multithreaded.

    Each output value is summed in the order of ``k`` (zeros of ``matrix``
    skipped) by one thread, so a column ``c`` gets the same bits whatever the
    other columns and the thread count (a BLAS product does not promise that).

    Parameters
    ----------
    matrix : ndarray, shape ``(m, k)``
        The mixing matrix, of the dtype of ``x``.
    x : ndarray, shape ``(rows, k, columns)``
        C-ordered.

    Returns
    -------
    ndarray, shape ``(rows, m, columns)``
    """
    out = np.empty((x.shape[0], matrix.shape[0], x.shape[2]), dtype=x.dtype)
    work = np.count_nonzero(matrix) * x.shape[0] * x.shape[2]
    launch(_mix_channels, work >= PARALLEL_WORK, np.ascontiguousarray(matrix, dtype=x.dtype), x, out)
    return out


def launch(kernel: Any, parallel: bool, *arguments: Any) -> Any:
    """``kernel(*arguments)`` for a kernel compiled with ``parallel=True``: under the launch lock (numba's
    parallel regions must not be entered from two Python threads at once), on every thread numba has when
    ``parallel`` (enough work to pay for a parallel region), else on one."""
    with _LOCK:
        previous = numba.get_num_threads()
        numba.set_num_threads(previous if parallel else 1)
        try:
            return kernel(*arguments)
        finally:
            numba.set_num_threads(previous)


def split_columns(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, group_of: np.ndarray, local_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the columns of a CSR matrix into groups, renumbered within each group (one compiled pass).

    Parameters
    ----------
    indptr, indices, data : ndarray
        The CSR matrix, ``N`` rows, ``M`` columns.
    group_of : ndarray of int, shape ``(M,)``
        Group of each column, ``0 … groups − 1``, or −1 to drop it.
    local_of : ndarray of int, shape ``(M,)``
        New number of each column within its group.

    Returns
    -------
    pointers : ndarray of int64, shape ``(groups, N + 1)``
        Row pointers of each group into ``indices`` and ``data`` (groups stored one after the other).
    indices, data : ndarray
        The new column indices (increasing within each row of a group) and the values.
    sums : ndarray of float64, shape ``(groups, N)``
        Row sums of each group's matrix.
    """
    group_of = np.asarray(group_of, dtype=np.int64)
    local_of = np.asarray(local_of, dtype=np.int64)
    groups = int(group_of.max()) + 1
    ordered = all(np.all(np.diff(local_of[group_of == g]) > 0) for g in range(groups))
    return _split_columns(indptr, indices, data, group_of, local_of, groups, ordered)


def describe() -> dict[str, Any]:
    """What the compiled path runs with: numba version, threads and threading layer (for benchmarks)."""
    if not HAVE_NUMBA:
        return {"numba": None}
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        layer = "not started"
    return {"numba": numba.__version__, "threads": int(numba.get_num_threads()), "threading_layer": layer}
