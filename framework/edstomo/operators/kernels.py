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

__all__ = ["HAVE_NUMBA", "PARALLEL_WORK", "CompiledCSR", "describe", "tile_order"]

HAVE_NUMBA: bool = numba is not None
"""Whether the compiled kernels are available (numba importable)."""

DEFAULT_TILE = 8
"""Edge of the square pixel tiles visited in turn, in pixels (see :func:`tile_order`)."""

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

    @numba.njit(inline="always")
    def _gather_row(indices, data, k, end, y, o):  # pragma: no cover - compiled
        """``o += Σ_k data[k] * y[indices[k]]`` over one CSR row, four non-zeros per pass.

        A batch of one takes a scalar loop with the very same operations (same bits).
        """
        n_batch = o.shape[0]
        if n_batch == 1:
            acc = o[0]
            while k + 4 <= end:
                acc += (
                    (data[k] * y[indices[k], 0] + data[k + 1] * y[indices[k + 1], 0])
                    + data[k + 2] * y[indices[k + 2], 0]
                ) + data[k + 3] * y[indices[k + 3], 0]
                k += 4
            while k < end:
                acc += data[k] * y[indices[k], 0]
                k += 1
            o[0] = acc
            return
        while k + 4 <= end:
            w0, w1, w2, w3 = data[k], data[k + 1], data[k + 2], data[k + 3]
            r0, r1, r2, r3 = y[indices[k]], y[indices[k + 1]], y[indices[k + 2]], y[indices[k + 3]]
            for b in range(n_batch):
                o[b] += ((w0 * r0[b] + w1 * r1[b]) + w2 * r2[b]) + w3 * r3[b]
            k += 4
        while k < end:
            w0 = data[k]
            r0 = y[indices[k]]
            for b in range(n_batch):
                o[b] += w0 * r0[b]
            k += 1

    @numba.njit(**_JIT)
    def _gather(indptr, indices, data, y, out, order, rows):  # pragma: no cover - compiled
        n_batch = out.shape[1]
        for t in numba.prange(len(rows) - 1):
            for q in range(rows[t], rows[t + 1]):
                p = order[q]
                o = out[p]
                for b in range(n_batch):
                    o[b] = 0
                _gather_row(indices, data, indptr[p], indptr[p + 1], y, o)

    @numba.njit(**_JIT)
    def _scatter(indptr, indices, data, x, out, order, cols):  # pragma: no cover - compiled
        n_batch = out.shape[1]
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
                v = x[p]
                if n_batch == 1:
                    value = v[0]
                    while k < end:
                        out[indices[k], 0] += data[k] * value
                        k += 1
                    continue
                while k + 2 <= end:
                    w0, w1 = data[k], data[k + 1]
                    o0, o1 = out[indices[k]], out[indices[k + 1]]
                    for b in range(n_batch):
                        o0[b] += w0 * v[b]
                        o1[b] += w1 * v[b]
                    k += 2
                if k < end:
                    w0 = data[k]
                    o0 = out[indices[k]]
                    for b in range(n_batch):
                        o0[b] += w0 * v[b]

    @numba.njit(**_JIT)
    def _update(indptr, indices, data, u, x, scale, clip, order, rows):  # pragma: no cover - compiled
        n_batch = x.shape[1]
        for t in numba.prange(len(rows) - 1):
            g = np.empty(n_batch, dtype=x.dtype)
            for q in range(rows[t], rows[t + 1]):
                p = order[q]
                for b in range(n_batch):
                    g[b] = 0
                _gather_row(indices, data, indptr[p], indptr[p + 1], u, g)
                s = scale[p]
                v = x[p]
                if clip:
                    for b in range(n_batch):
                        value = v[b] + s * g[b]
                        v[b] = value if value > 0 else 0
                else:
                    for b in range(n_batch):
                        v[b] = v[b] + s * g[b]


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


def describe() -> dict[str, Any]:
    """What the compiled path runs with: numba version, threads and threading layer (for benchmarks)."""
    if not HAVE_NUMBA:
        return {"numba": None}
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        layer = "not started"
    return {"numba": numba.__version__, "threads": int(numba.get_num_threads()), "threading_layer": layer}
