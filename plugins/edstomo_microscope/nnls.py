"""Non-negative least squares for many right-hand sides that share one Gram matrix (all pixels of a tilt).

:func:`nnls_gram` solves, for every row ``b`` of an (n, k) array,

    min_x ½ xᵀ G x − bᵀ x   subject to x ≥ 0,

the normal equations of ``min ‖A x − y‖²`` with ``G = AᵀA`` and ``b = Aᵀy``.
``G`` is first scaled to a unit diagonal; rows whose unconstrained solution
``G⁻¹ b`` is non-negative are done; the others are solved by cyclic coordinate
descent (each coordinate in turn set to its optimum given the others, clipped
at 0), which converges to the solution of this convex problem. A row stops
when no coordinate moves by more than ``tol`` times its largest coefficient.

With numba (the ``speed`` or ``microscope`` extra) the descent runs compiled,
pixel by pixel on all cores; without it, vectorised over the rows in NumPy
(about eight times slower; same solutions to the tolerance).
"""

from __future__ import annotations

import numpy as np
from edstomo.errors import InputError

try:
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

__all__ = ["HAVE_NUMBA", "nnls_gram"]

#: Whether the compiled descent is available.
HAVE_NUMBA: bool = numba is not None


def nnls_gram(
    gram: np.ndarray, rhs: np.ndarray, *, tol: float = 1e-6, max_sweeps: int = 2000, compiled: bool | None = None
) -> np.ndarray:
    """Non-negative least squares for the rows of ``rhs`` with one Gram matrix (see the module docstring).

    Parameters
    ----------
    gram : ndarray
        Symmetric positive semi-definite matrix (k, k); a zero diagonal entry
        leaves that coordinate at 0.
    rhs : ndarray
        Right-hand sides (n, k).
    tol : float
        Relative stopping tolerance.
    max_sweeps : int
        Most sweeps over the coordinates.
    compiled : bool, optional
        Use the compiled descent (default: when numba is installed).

    Returns
    -------
    ndarray
        Solutions (n, k), non-negative.
    """
    gram = np.asarray(gram, dtype=np.float64)
    rhs = np.asarray(rhs, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or rhs.ndim != 2 or rhs.shape[1] != gram.shape[0]:
        raise InputError(f"nnls_gram: gram {gram.shape} and rhs {rhs.shape} must be (k, k) and (n, k)")
    if compiled and not HAVE_NUMBA:
        raise InputError("nnls_gram: compiled=True needs numba (pip install numba)")
    diagonal = np.diag(gram).copy()
    used = diagonal > 0
    scale = np.sqrt(np.where(used, diagonal, 1.0))
    g = gram / np.outer(scale, scale)
    g[~used, :] = 0.0
    g[:, ~used] = 0.0
    g[np.diag_indices_from(g)] = 1.0
    b = np.where(used, rhs / scale, 0.0)
    x = b @ np.linalg.pinv(g, hermitian=True)
    x[:, ~used] = 0.0
    todo = np.flatnonzero(np.any(x < 0, axis=1))
    np.maximum(x, 0.0, out=x)
    if todo.size:
        descent = _descent_compiled if (HAVE_NUMBA if compiled is None else compiled) else _descent_numpy
        x[todo] = descent(g, np.ascontiguousarray(b[todo]), np.ascontiguousarray(x[todo]), float(tol), int(max_sweeps))
    return x / scale


def _descent_numpy(g: np.ndarray, b: np.ndarray, x: np.ndarray, tol: float, max_sweeps: int) -> np.ndarray:
    """Cyclic coordinate descent for unit-diagonal ``g``, vectorised over the rows still moving."""
    x = x.copy()
    active = np.arange(x.shape[0])
    xa, ba = x, b
    gradient = xa @ g - ba
    for _ in range(max_sweeps):
        moved = np.zeros(xa.shape[0])
        for k in range(g.shape[0]):
            old = xa[:, k]
            new = np.maximum(old - gradient[:, k], 0.0)
            delta = new - old
            if not delta.any():
                continue
            xa[:, k] = new
            gradient += delta[:, None] * g[k]
            np.maximum(moved, np.abs(delta), out=moved)
        still = moved > tol * np.maximum(xa.max(axis=1), 1e-300)
        if not still.all():
            x[active[~still]] = xa[~still]
            active, xa, ba, gradient = active[still], xa[still], ba[still], gradient[still]
        if active.size == 0:
            break
    x[active] = xa
    return x


if numba is not None:

    @numba.njit(parallel=True, cache=True)
    def _descent_compiled(g: np.ndarray, b: np.ndarray, x: np.ndarray, tol: float, max_sweeps: int) -> np.ndarray:
        """The same descent, row by row in parallel (compiled)."""
        n, k = x.shape
        out = x.copy()
        for i in numba.prange(n):
            xi = out[i]
            gradient = np.empty(k)
            for p in range(k):
                total = -b[i, p]
                for q in range(k):
                    total += g[p, q] * xi[q]
                gradient[p] = total
            for _ in range(max_sweeps):
                moved = 0.0
                largest = 1e-300
                for p in range(k):
                    old = xi[p]
                    new = old - gradient[p]
                    if new < 0.0:
                        new = 0.0
                    delta = new - old
                    if delta != 0.0:
                        xi[p] = new
                        for q in range(k):
                            gradient[q] += delta * g[p, q]
                        moved = max(moved, abs(delta))
                    largest = max(largest, new)
                if moved <= tol * largest:
                    break
        return out
