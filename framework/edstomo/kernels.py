"""Compiled, multithreaded sparse products for the projector (optional: needs numba).

The projector stores one CSR matrix ``A`` of shape ``(N, M)``: ``A = Wᵀ``, one
row per pixel, one column per detector bin and angle (see
:mod:`edstomo.projector`).  Dense operands are C-ordered ``(rows, batch)``
arrays whose batch axis (slices × channels) is contiguous, so every non-zero
``a_pk`` of the matrix updates one contiguous row of ``batch`` values: the
inner loops are vectorised by LLVM and the matrix is read once per product.

Three products run over that storage, all multithreaded with numba
(``parallel=True``, one contiguous block of pixel rows per thread):

``gather``     ``A y`` (= ``Wᵀ y``, the back projection): each thread writes its
               own pixel rows; four non-zeros are folded into each pass over the
               output row, which quarters the loads and stores of the accumulator.
``scatter``    ``Aᵀ x`` (= ``W x``, the forward projection): each pixel row of
               ``x`` is read once and added into the sinogram rows it touches;
               thread 0 adds into the output and every other thread into a
               private sinogram, summed at the end (no atomics, no races).
``update``     the fused SIRT step ``x ← P(x + s ⊙ A u)`` followed by ``Aᵀ x``:
               per pixel, gather, update (scale, add, optional clip at 0) and
               scatter while the pixel's matrix row is still in cache, so the
               back projection is never stored.

Pixels are visited in small square tiles (:func:`tile_order`): the sinogram
rows touched by one tile fit in the core's L2 cache, for every angle.

Arithmetic is deterministic: the result for one batch column does not depend
on the batch size or on the other columns (no reassociation across columns;
only multiply-add contraction is allowed), so a volume solved in slice chunks
equals the volume solved at once, bit for bit, for a given thread count.

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

__all__ = ["HAVE_NUMBA", "CompiledCSR", "describe", "tile_order"]

HAVE_NUMBA: bool = numba is not None
"""Whether the compiled kernels are available (numba importable)."""

DEFAULT_TILE = 8
"""Edge of the square pixel tiles visited in turn, in pixels (see :func:`tile_order`)."""

_LOCK = threading.Lock()
"""Serialises kernel launches: numba's parallel regions must not be entered from two
Python threads at once (the 'workqueue' layer aborts), and each launch already uses
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


def _thread_bounds(indptr: np.ndarray, order: np.ndarray, threads: int) -> np.ndarray:
    """Split ``order`` into ``threads`` contiguous blocks with about equal non-zeros."""
    counts = np.diff(indptr)[order]
    cumulative = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    targets = cumulative[-1] * np.arange(threads + 1) / threads
    bounds = np.searchsorted(cumulative, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, len(order)
    return bounds


if HAVE_NUMBA:
    _JIT = {"parallel": True, "cache": True, "fastmath": {"contract"}, "nogil": True}

    @numba.njit(**_JIT)
    def _gather(indptr, indices, data, y, out, order, bounds):  # pragma: no cover - compiled
        n_batch = out.shape[1]
        for t in numba.prange(len(bounds) - 1):
            for q in range(bounds[t], bounds[t + 1]):
                p = order[q]
                o = out[p]
                for b in range(n_batch):
                    o[b] = 0
                k = indptr[p]
                end = indptr[p + 1]
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

    @numba.njit(inline="always")
    def _scatter_row(indices, data, k, end, xp_row, o_all):  # pragma: no cover - compiled
        n_batch = xp_row.shape[0]
        while k + 2 <= end:
            w0, w1 = data[k], data[k + 1]
            o0, o1 = o_all[indices[k]], o_all[indices[k + 1]]
            for b in range(n_batch):
                v = xp_row[b]
                o0[b] += w0 * v
                o1[b] += w1 * v
            k += 2
        if k < end:
            w0 = data[k]
            o0 = o_all[indices[k]]
            for b in range(n_batch):
                o0[b] += w0 * xp_row[b]

    @numba.njit(inline="always")
    def _reduce(out, partial):  # pragma: no cover - compiled
        n_batch = out.shape[1]
        for m in numba.prange(out.shape[0]):
            o = out[m]
            for t in range(partial.shape[0]):
                s = partial[t, m]
                for b in range(n_batch):
                    o[b] += s[b]

    @numba.njit(**_JIT)
    def _scatter(indptr, indices, data, x, out, partial, order, bounds):  # pragma: no cover - compiled
        for t in numba.prange(len(bounds) - 1):
            target = out if t == 0 else partial[t - 1]
            target[:] = 0
            for q in range(bounds[t], bounds[t + 1]):
                p = order[q]
                _scatter_row(indices, data, indptr[p], indptr[p + 1], x[p], target)
        _reduce(out, partial)

    @numba.njit(**_JIT)
    def _update(indptr, indices, data, u, x, scale, clip, out, partial, order, bounds):  # pragma: no cover
        n_batch = x.shape[1]
        for t in numba.prange(len(bounds) - 1):
            target = out if t == 0 else partial[t - 1]
            target[:] = 0
            g = np.empty(n_batch, dtype=x.dtype)
            for q in range(bounds[t], bounds[t + 1]):
                p = order[q]
                for b in range(n_batch):
                    g[b] = 0
                k = indptr[p]
                end = indptr[p + 1]
                while k + 4 <= end:
                    w0, w1, w2, w3 = data[k], data[k + 1], data[k + 2], data[k + 3]
                    r0, r1, r2, r3 = u[indices[k]], u[indices[k + 1]], u[indices[k + 2]], u[indices[k + 3]]
                    for b in range(n_batch):
                        g[b] += ((w0 * r0[b] + w1 * r1[b]) + w2 * r2[b]) + w3 * r3[b]
                    k += 4
                while k < end:
                    w0 = data[k]
                    r0 = u[indices[k]]
                    for b in range(n_batch):
                        g[b] += w0 * r0[b]
                    k += 1
                s = scale[p]
                row = x[p]
                if clip:
                    for b in range(n_batch):
                        v = row[b] + s * g[b]
                        row[b] = v if v > 0 else 0
                else:
                    for b in range(n_batch):
                        row[b] = row[b] + s * g[b]
                _scatter_row(indices, data, indptr[p], indptr[p + 1], row, target)
        _reduce(out, partial)

    @numba.njit(**_JIT)
    def _update_only(indptr, indices, data, u, x, scale, clip, order, bounds):  # pragma: no cover - compiled
        n_batch = x.shape[1]
        for t in numba.prange(len(bounds) - 1):
            g = np.empty(n_batch, dtype=x.dtype)
            for q in range(bounds[t], bounds[t + 1]):
                p = order[q]
                for b in range(n_batch):
                    g[b] = 0
                k = indptr[p]
                end = indptr[p + 1]
                while k + 4 <= end:
                    w0, w1, w2, w3 = data[k], data[k + 1], data[k + 2], data[k + 3]
                    r0, r1, r2, r3 = u[indices[k]], u[indices[k + 1]], u[indices[k + 2]], u[indices[k + 3]]
                    for b in range(n_batch):
                        g[b] += ((w0 * r0[b] + w1 * r1[b]) + w2 * r2[b]) + w3 * r3[b]
                    k += 4
                while k < end:
                    w0 = data[k]
                    r0 = u[indices[k]]
                    for b in range(n_batch):
                        g[b] += w0 * r0[b]
                    k += 1
                s = scale[p]
                row = x[p]
                if clip:
                    for b in range(n_batch):
                        v = row[b] + s * g[b]
                        row[b] = v if v > 0 else 0
                else:
                    for b in range(n_batch):
                        row[b] = row[b] + s * g[b]


class CompiledCSR:
    """Multithreaded products with one CSR matrix ``A`` of shape ``(N, M)`` (numba).

    Parameters
    ----------
    indptr, indices, data : ndarray
        The CSR arrays of ``A`` (``data`` float32 or float64; the dense operands
        must have the same dtype).
    shape : (int, int)
        ``(N, M)``.
    order : ndarray of int64, shape ``(N,)``
        The order in which rows are visited (a permutation, e.g. :func:`tile_order`).

    Notes
    -----
    Every method takes and returns C-ordered 2-D arrays ``(rows, batch)`` of the
    matrix dtype; callers (the projector) check shapes and types.  The thread
    count is numba's current one (``numba.get_num_threads()``).
    """

    def __init__(
        self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int], order: np.ndarray
    ) -> None:
        if not HAVE_NUMBA:
            raise ImportError("the compiled kernels need numba: pip install 'edstomo[speed]'")
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = (int(shape[0]), int(shape[1]))
        self.order = np.ascontiguousarray(order, dtype=np.int64)
        if self.order.shape != (self.shape[0],):
            raise ValueError(f"order has shape {self.order.shape}, expected ({self.shape[0]},)")
        self._bounds: dict[int, np.ndarray] = {}

    def _split(self) -> np.ndarray:
        threads = int(numba.get_num_threads())
        if threads not in self._bounds:
            self._bounds[threads] = _thread_bounds(self.indptr, self.order, threads)
        return self._bounds[threads]

    def _partial(self, bounds: np.ndarray, batch: int) -> np.ndarray:
        """Private sinograms of threads 1 … T-1, shape ``(T-1, M, batch)``."""
        return np.empty((len(bounds) - 2, self.shape[1], batch), dtype=self.data.dtype)

    def gather(self, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``A @ y`` for ``y`` of shape ``(M, batch)``; returns ``(N, batch)``."""
        if out is None:
            out = np.empty((self.shape[0], y.shape[1]), dtype=self.data.dtype)
        with _LOCK:
            _gather(self.indptr, self.indices, self.data, y, out, self.order, self._split())
        return out

    def scatter(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``Aᵀ @ x`` for ``x`` of shape ``(N, batch)``; returns ``(M, batch)``."""
        if out is None:
            out = np.empty((self.shape[1], x.shape[1]), dtype=self.data.dtype)
        with _LOCK:
            bounds = self._split()
            _scatter(
                self.indptr, self.indices, self.data, x, out, self._partial(bounds, x.shape[1]), self.order, bounds
            )
        return out

    def update(
        self, u: np.ndarray, x: np.ndarray, scale: np.ndarray, *, clip: bool, project: bool = True
    ) -> np.ndarray | None:
        """The fused step ``x ← P(x + scale ⊙ (A @ u))`` in place, then ``Aᵀ @ x``.

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
        project : bool
            Return ``Aᵀ @ x`` of the updated ``x`` (else None and no scatter).

        Returns
        -------
        ndarray of shape ``(M, batch)`` or None
        """
        with _LOCK:
            bounds = self._split()
            if not project:
                _update_only(self.indptr, self.indices, self.data, u, x, scale, clip, self.order, bounds)
                return None
            out = np.empty((self.shape[1], x.shape[1]), dtype=self.data.dtype)
            partial = self._partial(bounds, x.shape[1])
            _update(self.indptr, self.indices, self.data, u, x, scale, clip, out, partial, self.order, bounds)
        return out


def describe() -> dict[str, Any]:
    """What the compiled path runs with: numba version, threads and threading layer (for benchmarks)."""
    if not HAVE_NUMBA:
        return {"numba": None}
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        layer = "not started"
    return {"numba": numba.__version__, "threads": int(numba.get_num_threads()), "threading_layer": layer}
