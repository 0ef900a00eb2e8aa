"""Compiled element-wise passes of PDHG and 2-D total variation (optional: needs numba).

The generic code (:mod:`edstomo.algorithms.pdhg`, :mod:`edstomo.algorithms.tv`)
runs any array library through the array API, one NumPy operation at a time;
on volumes of hundreds of megabytes each operation is a pass over memory.
These kernels do the same arithmetic in one pass each, multithreaded over the
first image axis:

* ``tv2d_ascend``: p ← proj_λ(p + σ ∇(w x̄)) for per-slice 2-D TV (forward
  differences, Neumann boundary), per channel or channel-coupled;
* ``tv2d_adjoint``: out += w ∇ᵀp (minus the divergence);
* ``primal_step``: x ← P(x − τ g), x̄ ← x + (x − x_old) and the partial sums of ‖x − x_old‖²;
* ``kl_dual_prox``: the proximal map of the KL conjugate on sinograms
  ``(tilts, positions, channels, slices)`` (any strides, e.g. the line channels of a larger dual).

Arrays are NumPy, C-ordered (except the sinograms of ``kl_dual_prox``); estimates ``(nz, nx, channels, slices)``,
duals ``(nz, nx, 2, channels, slices)``.  Every value is computed by one
thread from its own inputs, and sums over channels run in a fixed order, so a
batch column's result does not depend on the other columns or the number of
threads: slices solved in chunks give the same bits.  :data:`HAVE_NUMBA` is
False without numba; callers then use the generic code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..operators.kernels import launch

try:
    import numba
except ImportError:  # pragma: no cover - exercised only without the 'speed' extra
    numba = None

__all__ = ["HAVE_NUMBA", "PARALLEL_WORK", "kl_dual_prox", "primal_step", "tv2d_adjoint", "tv2d_ascend"]

#: Whether the compiled passes are available (numba importable).
HAVE_NUMBA: bool = numba is not None

#: Values (voxels × batch) below which a pass runs on one thread: a parallel region costs tens of
#: microseconds, and milliseconds when another process holds a core.
PARALLEL_WORK = 2_000_000

if HAVE_NUMBA:
    _JIT = {"cache": True, "fastmath": {"contract"}, "nogil": True}

    def _tv2d_ascend(x, p, w, sigma, radius, joint):  # pragma: no cover - compiled
        nz, nx, nc, ns = x.shape
        for i in numba.prange(nz):
            down = min(i + 1, nz - 1)  # at the last row x[down] − x[i] = 0: the Neumann boundary
            first = np.empty((nc, ns), dtype=p.dtype)
            second = np.empty((nc, ns), dtype=p.dtype)
            norms = np.empty((nc, ns), dtype=np.float64)
            total = np.empty(ns, dtype=np.float64)
            for j in range(nx):
                right = min(j + 1, nx - 1)
                for c in range(nc):
                    wc = w[c]
                    for s in range(ns):
                        here = x[i, j, c, s]
                        a = p[i, j, 0, c, s] + sigma[c, s] * ((x[down, j, c, s] - here) * wc)
                        b = p[i, j, 1, c, s] + sigma[c, s] * ((x[i, right, c, s] - here) * wc)
                        first[c, s] = a
                        second[c, s] = b
                        norms[c, s] = a * a + b * b
                if joint:
                    for s in range(ns):
                        total[s] = 0.0
                    for c in range(nc):
                        for s in range(ns):
                            total[s] += norms[c, s]
                    for c in range(nc):
                        for s in range(ns):
                            norms[c, s] = total[s]
                for c in range(nc):
                    for s in range(ns):
                        r = radius[c, s]
                        factor = r / max(math.sqrt(norms[c, s]), r, 1e-300)  # 1 inside the ball, 0 for r = 0
                        p[i, j, 0, c, s] = first[c, s] * factor
                        p[i, j, 1, c, s] = second[c, s] * factor

    def _tv2d_adjoint(p, w, out):  # pragma: no cover - compiled
        nz, nx, _, nc, ns = p.shape
        for i in numba.prange(nz):
            up, has_up, has_down = max(i - 1, 0), 1.0 if i >= 1 else 0.0, 1.0 if i + 1 < nz else 0.0
            for j in range(nx):
                left, has_left, has_right = max(j - 1, 0), 1.0 if j >= 1 else 0.0, 1.0 if j + 1 < nx else 0.0
                for c in range(nc):
                    wc = w[c]
                    for s in range(ns):
                        value = (
                            has_up * p[up, j, 0, c, s]
                            - has_down * p[i, j, 0, c, s]
                            + has_left * p[i, left, 1, c, s]
                            - has_right * p[i, j, 1, c, s]
                        )
                        out[i, j, c, s] += wc * value

    def _primal_step(x, xbar, g, tau, nonnegative, partial):  # pragma: no cover - compiled
        rows, inner = x.shape
        floor = 0.0 if nonnegative else -np.inf
        for r in numba.prange(rows):
            acc = 0.0
            for k in range(inner):
                old = x[r, k]
                new = max(old - tau[k] * g[r, k], floor)
                x[r, k] = new
                step = new - old
                xbar[r, k] = new + step
                acc += step * step
            partial[r] = acc

    def _kl_dual_prox(z, sigma, data, background, out):  # pragma: no cover - compiled
        nt, npos, nc, ns = z.shape
        for t in numba.prange(nt):
            for i in range(npos):
                for c in range(nc):
                    for s in range(ns):
                        step = sigma[c, s]
                        u = z[t, i, c, s] + step * background
                        d = u - 1
                        out[t, i, c, s] = 0.5 * (1 + u - math.sqrt(d * d + 4 * step * data[t, i, c, s]))

    #: The compiled passes; the same bits on any number of threads (one thread per value).
    _KERNELS = {
        function.__name__: numba.njit(parallel=True, **_JIT)(function)
        for function in (_tv2d_ascend, _tv2d_adjoint, _primal_step, _kl_dual_prox)
    }


def _run(name: str, size: int, *arguments: Any) -> None:
    """One compiled pass over ``size`` values, launched as every compiled kernel is (:func:`kernels.launch`)."""
    launch(_KERNELS[name], size >= PARALLEL_WORK, *arguments)


def _usable(*arrays: Any) -> bool:
    return HAVE_NUMBA and all(
        isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype in (np.float32, np.float64) for a in arrays
    )


def tv2d_ascend(x: Any, p: Any, weights: Any, sigma: Any, radius: Any, joint: bool) -> bool:
    """``p ← proj(p + σ ∇(w x))`` in place for 2-D TV; returns False (doing nothing) when it cannot run.

    Parameters
    ----------
    x : ndarray, shape (nz, nx, channels, slices)
    p : ndarray, shape (nz, nx, 2, channels, slices)
    weights : array, broadcasting to (channels,)
    sigma, radius : arrays or floats, broadcasting to (channels, slices) from the trailing axes
    joint : bool
        Channel-coupled balls (one norm over the channels) or one ball per channel.
    """
    if x.ndim != 4 or p.shape != (*x.shape[:2], 2, *x.shape[2:]) or not _usable(x, p):
        return False
    batch = x.shape[2:]
    _run(
        "_tv2d_ascend",
        x.size,
        x,
        p,
        _vector(weights, batch[0], x.dtype),
        _batch(sigma, batch, x.dtype),
        _batch(radius, batch, x.dtype),
        bool(joint),
    )
    return True


def tv2d_adjoint(p: Any, weights: Any, out: Any) -> bool:
    """``out += w ∇ᵀ p`` for 2-D TV; returns False (doing nothing) when it cannot run."""
    if out.ndim != 4 or p.shape != (*out.shape[:2], 2, *out.shape[2:]) or not _usable(p, out):
        return False
    _run("_tv2d_adjoint", out.size, p, _vector(weights, out.shape[2], out.dtype), out)
    return True


def primal_step(x: Any, xbar: Any, step: Any, tau: Any, nonnegative: bool) -> float | None:
    """``x ← P(x − τ g)``, ``x̄ ← 2x − x_old`` in one pass; returns ``‖x − x_old‖`` (None when it cannot run).

    ``tau`` must be a float or an array whose shape is that of the trailing axes of
    ``x`` (leading length-1 axes allowed).
    """
    if not (_usable(x, xbar, step) and x.shape == xbar.shape == step.shape and x.dtype == xbar.dtype == step.dtype):
        return None
    tau = np.asarray(tau, dtype=x.dtype)
    if tau.ndim > x.ndim:
        return None
    tau = tau.reshape((1,) * (x.ndim - tau.ndim) + tau.shape)
    varying = [axis for axis, size in enumerate(tau.shape) if size != 1]
    first = varying[0] if varying else x.ndim - 1
    try:
        tau = np.broadcast_to(tau.reshape(tau.shape[first:]), x.shape[first:])
    except ValueError:
        return None
    inner = int(np.prod(x.shape[first:]))
    rows = x.size // inner
    partial = np.empty(rows, dtype=np.float64)
    _run(
        "_primal_step",
        x.size,
        x.reshape(rows, inner),
        xbar.reshape(rows, inner),
        step.reshape(rows, inner),
        np.ascontiguousarray(tau.reshape(inner)),
        bool(nonnegative),
        partial,
    )
    return math.sqrt(float(partial.sum()))


def kl_dual_prox(z: Any, sigma: Any, data: Any, background: Any, out: Any) -> bool:
    """``out ← ½ (1 + u − √((u − 1)² + 4σb))``, ``u = z + σβ``, in one pass; False (nothing done) when it cannot run.

    Parameters
    ----------
    z, data, out : ndarray, shape (tilts, positions, channels, slices)
        The argument, the counts b and the result (may be ``z``); any strides, one dtype.
    sigma : float or array
        σ, broadcasting to (channels, slices) from the trailing axes.
    background : float
        β (a scalar; arrays take the generic code).
    """
    if not (HAVE_NUMBA and np.ndim(background) == 0 and all(isinstance(a, np.ndarray) for a in (z, data, out))):
        return False
    if not (z.ndim == 4 and z.shape == data.shape == out.shape and z.dtype == data.dtype == out.dtype):
        return False
    if z.dtype not in (np.float32, np.float64):
        return False
    try:
        steps = _batch(sigma, z.shape[2:], z.dtype)
    except ValueError:
        return False
    _run("_kl_dual_prox", z.size, z, steps, data, float(background), out)
    return True


def _vector(values: Any, size: int, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=dtype).reshape(-1), (size,)))


def _batch(values: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``values`` (a float, or an array whose trailing axes broadcast to ``shape``) as a C-ordered ``shape`` array."""
    array = np.asarray(values, dtype=dtype)
    while array.ndim > len(shape):
        if array.shape[0] != 1:
            raise ValueError(f"values of shape {array.shape} vary along an axis before the batch axes {shape}")
        array = array.reshape(array.shape[1:])
    return np.ascontiguousarray(np.broadcast_to(array, shape))
