"""Parallel-beam, single-tilt-axis projector (the system matrix W and its adjoint).

Geometry and conventions
------------------------
All lengths are in pixel units; callers multiply by the physical pixel size.

* A 2-D slice (perpendicular to the tilt axis y) is a grid of shape ``(nz, nx)``.
  The row index ``i`` runs along z (the beam direction at 0° tilt), the column
  index ``j`` along x (the detector direction at 0° tilt).  Pixel ``(i, j)`` is a
  unit square centred on ``x_j = j - (nx - 1) / 2``, ``z_i = i - (nz - 1) / 2``,
  so z increases with the row index.
* A tilt angle θ (radians) maps a point ``(x, z)`` to the detector coordinate
  ``s = x cos θ + z sin θ``.  The ray through ``s`` runs along
  ``(-sin θ, cos θ)``.  At θ = 0 a ray integrates down a column (sum over z);
  at θ = 90° it integrates along a row (sum over x) and the detector
  coordinate is ``s = z``.  Sense of rotation: with the slice displayed as an
  image (row 0 at the top, x to the right, z downwards), a positive θ turns the
  object counter-clockwise relative to the fixed beam and detector: the point
  ``(0, r)`` is seen at ``s = r sin θ``, depth ``r cos θ``.
* The detector has ``n_det`` bins (default ``nx``) of width ``d = det_spacing``
  (default 1 pixel) centred on s = 0: bin ``k`` covers ``[s_k - d/2, s_k + d/2]``
  with ``s_k = (k - (n_det - 1) / 2) d``.
* ``W`` has shape ``(M, N)`` with ``M = n_angles * n_det`` and ``N = nz * nx``;
  row ``a * n_det + k`` is bin ``k`` at angle ``a``; column ``i * nx + j`` is
  pixel ``(i, j)``.  Its entries are path lengths in pixels.
* Batch axes are trailing: :meth:`ParallelBeamProjector.forward` maps a volume
  ``(nz, nx, *batch)`` to a sinogram ``(n_angles, n_det, *batch)`` and
  :meth:`ParallelBeamProjector.adjoint` maps back.  The batch axes carry slices
  (and, for solvers, channels), all sharing the one sparse matrix.  Inputs are
  cast to the projector dtype and folded into C-ordered ``(rows, batch)``
  arrays; W is stored once, as Wᵀ in CSR (pixel-major), and both products run
  over that storage: ``Wᵀ y`` gathers (CSR × dense), ``W x`` scatters (the same
  arrays read as W in CSC), so each contiguous pixel row of x is read once.

Models
------
``"strip"``
    ``w = area(pixel ∩ strip of bin) / d``: the mean path length of the pixel
    over the bin's strip, computed exactly in closed form (see
    :func:`_square_area_below`).  A uniform unit-valued disk of radius R
    projects to the chord length ``2 sqrt(R² - s²)`` (bin-averaged).
``"joseph"``
    Joseph (1982) linear interpolation: the ray through each bin centre steps
    pixel by pixel along the grid axis most parallel to it, interpolates
    linearly between the two neighbouring pixels across the other axis
    (pixels outside the grid count as zero) and weighs each step by its
    length ``1 / max(|cos θ|, |sin θ|)``.

See ``docs/projector.md`` for the formulas and the mapping to ASTRA.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, DTypeLike

from .. import backend
from ..errors import InputError
from . import kernels
from .base import LinearOperator
from .blocks import Identity

__all__ = ["KERNELS", "MODELS", "AnglePartition", "ParallelBeamProjector", "projector_for"]

MODELS: tuple[str, ...] = ("strip", "joseph")
"""Names of the available projection models."""

KERNELS: tuple[str, ...] = ("auto", "numba", "scipy")
"""Product implementations: compiled multithreaded (``"numba"``, see :mod:`edstomo.operators.kernels`),
``scipy.sparse`` (``"scipy"``), or numba when installed else scipy (``"auto"``)."""

_SNAP = 1e-12
"""|cos θ| or |sin θ| below this is set to exactly 0 (θ at a multiple of 90°)."""

_MIN_AREA = 1e-12
"""Pixel/strip overlap areas (in pixel²) at or below this are dropped from W."""


def _as_angles(angles: Any) -> np.ndarray:
    """Return tilt angles as a finite, non-empty 1-D float64 array in radians."""
    if hasattr(angles, "m_as"):
        angles = angles.m_as("rad")
    try:
        arr = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InputError(f"angles must be real numbers in radians, got {angles!r}") from exc
    if arr.ndim != 1:
        raise InputError(f"angles must be a 1-D array of radians, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError("angles must contain at least one tilt angle, got an empty array")
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)]
        raise InputError(f"angles must be finite, got non-finite value(s) {bad.tolist()}")
    return arr


def _positive_int(value: Any, name: str) -> int:
    """Return ``value`` as a positive ``int`` or raise a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _cos_sin(theta: float) -> tuple[float, float]:
    """cos θ and sin θ, snapped to exact 0 and ±1 at multiples of 90°."""
    c, s = float(np.cos(theta)), float(np.sin(theta))
    if abs(c) < _SNAP:
        c, s = 0.0, float(np.sign(s))
    elif abs(s) < _SNAP:
        c, s = float(np.sign(c)), 0.0
    return c, s


def _square_area_below(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """Area of a unit square on the side ``u < t`` of a line, ``u`` measured from its centre.

    The square's points, projected on a unit direction ``(cos θ, sin θ)``, give
    ``u = U1 cos θ + U2 sin θ`` with ``U1, U2`` uniform on ``[-1/2, 1/2]``; the
    area is the distribution function of ``u``.  With ``a = max(|cos θ|, |sin θ|)``
    and ``b = min(...)``, ``h0 = (a - b)/2`` and ``h1 = (a + b)/2`` it is the
    piecewise-quadratic

    ``A(t) = [p²/(2b) + q + r - r²/(2b)] / a``

    with ``p = clip(t + h1, 0, b)``, ``q = clip(t + h0, 0, a - b)`` and
    ``r = clip(t - h0, 0, b)``; for ``b = 0`` (θ a multiple of 90°) the quadratic
    terms vanish and ``A(t) = clip(t + 1/2, 0, 1)``.

    Parameters
    ----------
    t : ndarray
        Offsets of the line from the square's centre along the projection
        direction, in pixels.
    a, b : float
        ``max`` and ``min`` of ``|cos θ|`` and ``|sin θ|``.

    Returns
    -------
    ndarray
        Areas in pixel², in ``[0, 1]``.
    """
    h0 = 0.5 * (a - b)
    q = np.clip(t + h0, 0.0, a - b)
    if b == 0.0:
        return q / a
    h1 = 0.5 * (a + b)
    p = np.clip(t + h1, 0.0, b)
    r = np.clip(t - h0, 0.0, b)
    return (p * p / (2.0 * b) + q + r - r * r / (2.0 * b)) / a


def _pixel_centres(nz: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(z, x)`` of all pixels, flattened in column order ``i * nx + j``."""
    z = np.arange(nz, dtype=np.float64) - 0.5 * (nz - 1)
    x = np.arange(nx, dtype=np.float64) - 0.5 * (nx - 1)
    zz, xx = np.meshgrid(z, x, indexing="ij")
    return zz.ravel(), xx.ravel()


def _strip_entries(theta: float, nz: int, nx: int, n_det: int, d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero entries ``(bin, pixel, weight)`` of the strip model at one angle."""
    c, s = _cos_sin(theta)
    a, b = max(abs(c), abs(s)), min(abs(c), abs(s))
    zc, xc = _pixel_centres(nz, nx)
    centre = xc * c + zc * s  # detector coordinate of each pixel centre
    pixel = np.arange(nz * nx)
    # The pixel's shadow is [centre - (a+b)/2, centre + (a+b)/2]; bin k's lower
    # edge is (k - n_det/2) d, so the shadow touches at most floor((a+b)/d) + 2 bins.
    first = np.floor((centre - 0.5 * (a + b)) / d + 0.5 * n_det).astype(np.int64)
    bins, pixels, weights = [], [], []
    for offset in range(int(np.floor((a + b) / d)) + 2):
        k = first + offset
        lower = (k - 0.5 * n_det) * d - centre
        area = _square_area_below(lower + d, a, b) - _square_area_below(lower, a, b)
        keep = (k >= 0) & (k < n_det) & (area > _MIN_AREA)
        bins.append(k[keep])
        pixels.append(pixel[keep])
        weights.append(area[keep] / d)
    return np.concatenate(bins), np.concatenate(pixels), np.concatenate(weights)


def _joseph_entries(theta: float, nz: int, nx: int, n_det: int, d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero entries ``(bin, pixel, weight)`` of the Joseph model at one angle."""
    c, s = _cos_sin(theta)
    s_bin = (np.arange(n_det, dtype=np.float64) - 0.5 * (n_det - 1)) * d
    along_z = abs(c) >= abs(s)
    if along_z:
        # Mostly along z: step over rows, interpolate across columns.
        n_step, n_across, cos_step, sin_across = nz, nx, c, s
    else:
        # Mostly along x: step over columns, interpolate across rows.
        n_step, n_across, cos_step, sin_across = nx, nz, s, c
    step = np.arange(n_step, dtype=np.float64) - 0.5 * (n_step - 1)
    # Position across the stepping axis, as a fractional pixel index.
    across = (s_bin[:, None] - step[None, :] * sin_across) / cos_step + 0.5 * (n_across - 1)
    lower = np.floor(across)
    frac = across - lower
    lower = lower.astype(np.int64)
    length = 1.0 / abs(cos_step)
    k = np.broadcast_to(np.arange(n_det)[:, None], across.shape)
    m = np.broadcast_to(np.arange(n_step)[None, :], across.shape)
    bins, pixels, weights = [], [], []
    for idx, w in ((lower, 1.0 - frac), (lower + 1, frac)):
        keep = (idx >= 0) & (idx < n_across) & (w > 0.0)
        i, j = (m[keep], idx[keep]) if along_z else (idx[keep], m[keep])
        bins.append(k[keep])
        pixels.append(i * nx + j)
        weights.append(w[keep] * length)
    return np.concatenate(bins), np.concatenate(pixels), np.concatenate(weights)


_ENTRIES = {"strip": _strip_entries, "joseph": _joseph_entries}


@dataclass(frozen=True)
class AnglePartition:
    """Projectors of disjoint groups of tilt angles, sliced from one projector.

    Made by :meth:`ParallelBeamProjector.partition`.

    Attributes
    ----------
    projectors : list of ParallelBeamProjector
        One per group, in the order given.
    indices : list of ndarray
        The groups' angle indices into the parent projector's angles.
    packed : PackedSubsets or None
        The groups' matrices packed for whole ordered-subset SART passes
        (:meth:`edstomo.operators.kernels.PackedSubsets.sart_pass`); None without the compiled kernels.
    """

    projectors: list[ParallelBeamProjector]
    indices: list[np.ndarray]
    packed: kernels.PackedSubsets | None


class ParallelBeamProjector(LinearOperator):
    """Parallel-beam projector about one tilt axis, shared by all slices (a :class:`LinearOperator`).

    Parameters
    ----------
    angles : array_like or pint.Quantity
        Tilt angles θ, in radians (a Pint quantity is converted with
        ``.m_as("rad")``), shape ``(n_angles,)``.
    shape : tuple of int
        Slice shape ``(nz, nx)`` in pixels.
    n_det : int, optional
        Number of detector bins; default ``nx``.
    det_spacing : float, optional
        Detector bin width in pixels; default 1.
    model : {"strip", "joseph"}, optional
        Projection model (see the module docstring); default ``"strip"``.
    dtype : {"float32", "float64"}, optional
        Data type of the matrix and of all products; inputs are cast to it.
    kernel : {"auto", "numba", "scipy"}, optional
        Implementation of the products on NumPy arrays (see :data:`KERNELS`);
        default ``"auto"``: the compiled multithreaded kernels of
        :mod:`edstomo.operators.kernels` when numba is installed, else ``scipy.sparse``.
        CuPy inputs always use ``cupyx.scipy.sparse`` on their GPU.

    Attributes
    ----------
    angles : ndarray
        Tilt angles in radians, float64.
    slice_shape : tuple of int
        ``(nz, nx)``.
    n_det : int
        Number of detector bins.
    det_spacing : float
        Detector bin width in pixels.
    model : str
        Projection model name.
    dtype : numpy.dtype
        Arithmetic data type.
    kernel : str
        ``"numba"`` or ``"scipy"``: the implementation in use on the CPU.

    Examples
    --------
    >>> import numpy as np
    >>> proj = ParallelBeamProjector(np.deg2rad([0.0, 90.0]), (3, 4))
    >>> vol = np.arange(12.0).reshape(3, 4)
    >>> proj.forward(vol)[0]  # column sums at 0°
    array([12., 15., 18., 21.], dtype=float32)
    """

    def __init__(
        self,
        angles: ArrayLike,
        shape: tuple[int, int],
        n_det: int | None = None,
        det_spacing: float = 1.0,
        model: str = "strip",
        dtype: DTypeLike = "float32",
        kernel: str = "auto",
    ) -> None:
        self.angles = _as_angles(angles)
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise InputError(f"shape must be a pair (nz, nx) of positive integers, got {shape!r}")
        nz, nx = (_positive_int(n, "shape") for n in shape)
        self.slice_shape: tuple[int, int] = (nz, nx)
        self.n_det = nx if n_det is None else _positive_int(n_det, "n_det")
        super().__init__((nz, nx), (len(self.angles), self.n_det))
        try:
            spacing = float(det_spacing)
        except (TypeError, ValueError) as exc:
            raise InputError(f"det_spacing must be a positive number of pixels, got {det_spacing!r}") from exc
        if not (np.isfinite(spacing) and spacing > 0.0):
            raise InputError(f"det_spacing must be a positive number of pixels, got {det_spacing!r}")
        self.det_spacing = spacing
        if not isinstance(model, str) or model.lower() not in MODELS:
            raise InputError(f"model must be one of {list(MODELS)}, got {model!r}")
        self.model = model.lower()
        try:
            self.dtype = np.dtype(dtype)
        except TypeError as exc:
            raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if not isinstance(kernel, str) or kernel not in KERNELS:
            raise InputError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}")
        if kernel == "numba" and not kernels.HAVE_NUMBA:
            raise InputError("kernel 'numba' needs numba, which is not installed (pip install 'edstomo[speed]')")
        self.kernel = "scipy" if kernel == "scipy" or not kernels.HAVE_NUMBA else "numba"
        self._device_matrix: Any = None
        self._build()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        """Assemble Wᵀ as CSR (pixel-major storage) and the row and column sums of W.

        Two passes over the angles: the first counts the entries of each pixel
        row and accumulates the sums (in float64), the second computes the
        entries again and writes them straight into their CSR slots (a counting
        sort on the pixel).  Only the final matrix and one angle's entries are
        in memory at any time.  Within a pixel row the bins increase (sorted
        indices); no (bin, pixel) pair occurs twice.
        """
        nz, nx = self.slice_shape
        n_rows, n_cols = self.n_angles * self.n_det, nz * nx

        def entries(a: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            k, pixel, w = _ENTRIES[self.model](float(self.angles[a]), nz, nx, self.n_det, self.det_spacing)
            return k + a * self.n_det, pixel, w

        row_sums = np.zeros(n_rows)
        col_sums = np.zeros(n_cols)
        counts = np.zeros(n_cols, dtype=np.int64)
        for a in range(self.n_angles):
            bins, pixel, w = entries(a)
            counts += np.bincount(pixel, minlength=n_cols)
            row_sums += np.bincount(bins, weights=w, minlength=n_rows)
            col_sums += np.bincount(pixel, weights=w, minlength=n_cols)
        nnz = int(counts.sum())
        index = np.int32 if max(n_rows, n_cols, nnz) < np.iinfo(np.int32).max else np.int64
        indptr = np.zeros(n_cols + 1, dtype=index)
        np.cumsum(counts, out=indptr[1:])
        indices = np.empty(nnz, dtype=index)
        data = np.empty(nnz, dtype=self.dtype)
        free = indptr[:-1].astype(np.int64)  # next free slot of each pixel row
        for a in range(self.n_angles):
            bins, pixel, w = entries(a)
            order = np.lexsort((bins, pixel))
            pixel = pixel[order]
            first = np.searchsorted(pixel, pixel, side="left")  # start of each pixel's run
            slots = free[pixel] + (np.arange(len(pixel)) - first)
            indices[slots] = bins[order]
            data[slots] = w[order]
            free += np.bincount(pixel, minlength=n_cols)
        matrix_t = sp.csr_array((data, indices, indptr), shape=(n_cols, n_rows))
        compiled = (
            kernels.CompiledCSR(indptr, indices, data, matrix_t.shape, kernels.tile_order(nz, nx))
            if self.kernel == "numba"
            else None
        )
        self._store(matrix_t, row_sums, col_sums, compiled)

    def _store(self, matrix_t: sp.csr_array, row_sums: np.ndarray, col_sums: np.ndarray, compiled: Any) -> None:
        """Keep Wᵀ (canonical CSR), the float64 row and column sums of W and the compiled kernels."""
        self._row_sums = row_sums
        self._col_sums = col_sums
        self._matrix_t = matrix_t
        self._matrix_t.has_sorted_indices = True
        # W in CSC format is a view of the same arrays: the forward product scatters
        # each pixel's row of x into the sinogram, streaming x once.
        self._matrix_csc = self._matrix_t.T
        self._compiled = compiled
        self._partitions: OrderedDict[tuple[tuple[int, ...], ...], AnglePartition] = OrderedDict()

    # ------------------------------------------------------------- properties
    @property
    def n_angles(self) -> int:
        """Number of tilt angles."""
        return len(self.angles)

    @cached_property
    def matrix(self) -> sp.csr_array:
        """The system matrix W as CSR, shape ``(n_angles*n_det, nz*nx)``, entries in pixels.

        Built from the stored transpose on first access and then cached.
        """
        return self._matrix_t.T.tocsr()

    @property
    def matrix_t(self) -> sp.csr_array:
        """Wᵀ as CSR, shape ``(nz*nx, n_angles*n_det)``: the stored (pixel-major) form."""
        return self._matrix_t

    # ----------------------------------------------------------- operations
    def forward(self, volume: ArrayLike) -> np.ndarray:
        """Project a volume: ``W x``.

        Parameters
        ----------
        volume : array_like, shape ``(nz, nx, *batch)``
            Values per pixel (e.g. per pixel-length attenuation); cast to ``dtype``.

        Returns
        -------
        ndarray, shape ``(n_angles, n_det, *batch)``
            Line integrals, in (value × pixel length).
        """
        return self._forward(volume)

    def adjoint(self, sinogram: ArrayLike) -> np.ndarray:
        """Back-project a sinogram: ``Wᵀ y``.

        Parameters
        ----------
        sinogram : array_like, shape ``(n_angles, n_det, *batch)``
            Values per detector bin; cast to ``dtype``.

        Returns
        -------
        ndarray, shape ``(nz, nx, *batch)``
            Back-projection (value × pixel length).
        """
        return self._adjoint(sinogram)

    def _forward(self, volume: ArrayLike) -> Any:
        x2d, batch = self._to_2d(volume, self.domain_shape, "volume", "(nz, nx, *batch)")
        return self._matvec(x2d).reshape(self.range_shape + batch)

    def _adjoint(self, sinogram: ArrayLike) -> Any:
        y2d, batch = self._to_2d(sinogram, self.range_shape, "sinogram", "(n_angles, n_det, *batch)")
        return self._rmatvec(y2d).reshape(self.domain_shape + batch)

    def projector_factorization(self) -> tuple[LinearOperator, ParallelBeamProjector]:
        """``(I, W)``: the projector is its own factor (solvers use :meth:`update`)."""
        return Identity(self.range_shape), self

    def subset(self, angles: Sequence[int]) -> ParallelBeamProjector:
        """The projector of the tilt angles at indices ``angles`` (same slice, model, dtype; cached).

        Its matrix is sliced from this one's (see :meth:`partition`).
        """
        return self.partition([angles]).projectors[0]

    def partition(self, parts: Sequence[Sequence[int]]) -> AnglePartition:
        """The projectors of disjoint groups of tilt angles, sliced from this matrix in one pass (cached).

        Parameters
        ----------
        parts : sequence of sequences of int
            Indices of the tilt angles of each group (no angle in two groups).
            Group ``s`` gives a projector whose angles are ``angles[parts[s]]``,
            in that order.

        Returns
        -------
        AnglePartition
            The groups' projectors; their matrices hold this matrix's entries
            (the same values), stored one group after the other, and with the
            compiled kernels they share one :class:`~edstomo.operators.kernels.PackedSubsets`
            for whole ordered-subset passes.  Row sums are this projector's;
            column sums are summed (in float64) from the stored entries.  The four
            most recent partitions are kept.
        """
        index = [np.asarray(part, dtype=np.int64) for part in parts]
        for part, given in zip(index, parts, strict=True):
            if part.ndim != 1 or part.size == 0 or part.min() < 0 or part.max() >= self.n_angles:
                raise InputError(f"angles: {given!r} must be a non-empty list of indices below {self.n_angles}")
        joined = np.concatenate(index)
        if len(np.unique(joined)) != len(joined):
            raise InputError(f"parts: the groups of tilt angles {[p.tolist() for p in index]} overlap")
        key = tuple(tuple(int(a) for a in part) for part in index)
        if key in self._partitions:
            self._partitions.move_to_end(key)
            return self._partitions[key]
        result = self._slice(index)
        self._partitions[key] = result
        while len(self._partitions) > 4:
            self._partitions.popitem(last=False)
        return result

    def _slice(self, index: list[np.ndarray]) -> AnglePartition:
        """Build the groups' matrices from Wᵀ (see :meth:`partition`): one compiled pass, or scipy column selections."""
        matrix = self._matrix_t
        row_sums = self._row_sums.reshape(self.n_angles, self.n_det)
        if self._compiled is None:
            projectors = []
            for part in index:
                columns = (part[:, None] * self.n_det + np.arange(self.n_det)).ravel()
                selected = sp.csr_array(matrix[:, columns])
                selected.sort_indices()
                col_sums = np.asarray(selected.astype(np.float64).sum(axis=1)).ravel()
                projectors.append(self._sliced(part, selected, row_sums[part].ravel(), col_sums, None))
            return AnglePartition(projectors=projectors, indices=index, packed=None)
        group_of = np.full((self.n_angles, self.n_det), -1, dtype=np.int64)  # per sinogram row of W
        local_of = np.zeros((self.n_angles, self.n_det), dtype=np.int64)
        for s, part in enumerate(index):
            group_of[part] = s
            local_of[part] = np.arange(len(part) * self.n_det).reshape(len(part), self.n_det)
        pointers, indices, data, col_sums = kernels.split_columns(
            matrix.indptr, matrix.indices, matrix.data, group_of.ravel(), local_of.ravel()
        )
        offsets = np.concatenate(([0], np.cumsum([len(part) * self.n_det for part in index])))
        packed = kernels.PackedSubsets(pointers, indices, data, offsets, self._compiled.order)
        projectors = []
        for s, part in enumerate(index):
            first, last = pointers[s, 0], pointers[s, -1]
            local = sp.csr_array(
                (data[first:last], indices[first:last], (pointers[s] - first).astype(matrix.indptr.dtype)),
                shape=packed.parts[s].shape,
            )
            projectors.append(self._sliced(part, local, row_sums[part].ravel(), col_sums[s], packed.parts[s]))
        return AnglePartition(projectors=projectors, indices=index, packed=packed)

    def _sliced(
        self, part: np.ndarray, matrix_t: sp.csr_array, row_sums: np.ndarray, col_sums: np.ndarray, compiled: Any
    ) -> ParallelBeamProjector:
        """A projector of this geometry for the angles ``angles[part]``, on a given matrix."""
        sliced = object.__new__(type(self))
        LinearOperator.__init__(sliced, self.slice_shape, (len(part), self.n_det))
        sliced.angles = self.angles[part]
        sliced.slice_shape, sliced.n_det, sliced.det_spacing = self.slice_shape, self.n_det, self.det_spacing
        sliced.model, sliced.dtype, sliced.kernel = self.model, self.dtype, self.kernel
        sliced._device_matrix = None
        sliced._store(matrix_t, row_sums, col_sums, compiled)
        return sliced

    def update(self, volume: Any, residual: Any, scale: Any, *, nonnegative: bool = True, project: bool = True) -> Any:
        """One SIRT-family step in place, ``x ← P(x + s ⊙ Wᵀ u)``, then ``W x`` of the new estimate.

        With the compiled kernels the back projection, the update and the clip
        are one pass over the pixels that never stores the back projection
        (:meth:`edstomo.operators.kernels.CompiledCSR.update`), followed by the forward
        projection; the other paths (scipy, CuPy) run the same steps one after
        the other.

        Parameters
        ----------
        volume : ndarray, shape ``(nz, nx, *batch)``
            The estimate ``x``: a C-contiguous NumPy or CuPy array of the
            projector ``dtype``; updated in place.
        residual : array, shape ``(n_angles, n_det, *batch)``
            The weighted residual sinogram ``u`` (e.g. ``R (b − W x)``), cast to
            ``dtype``, on the same device as ``volume``.
        scale : array of ``nz * nx`` values
            Per-pixel step ``s`` (e.g. relaxation × inverse column sums), shape
            ``(nz, nx)``, ``(nz * nx,)`` or ``(nz, nx, 1, …)``.
        nonnegative : bool
            Set negative values of the updated estimate to 0 (``P``); else ``P`` is the identity.
        project : bool
            Return the forward projection of the updated estimate; with False
            nothing is projected and None is returned (e.g. after the last iteration).

        Returns
        -------
        array, shape ``(n_angles, n_det, *batch)``, or None
            ``W x`` of the updated ``x``.
        """
        lead = self.domain_shape
        n = lead[0] * lead[1]
        if (
            not hasattr(volume, "flags")
            or volume.dtype != self.dtype
            or not volume.flags.c_contiguous
            or volume.ndim < 2
            or tuple(volume.shape[:2]) != lead
        ):
            raise InputError(
                f"volume must be a C-contiguous {self.dtype.name} array of shape (nz, nx, *batch) with leading "
                f"axes {lead} (it is updated in place), got "
                f"{type(volume).__name__} {getattr(volume, 'dtype', '')} of shape {getattr(volume, 'shape', None)}"
            )
        batch = tuple(volume.shape[2:])
        x2d = volume.reshape(n, math.prod(batch))
        u2d, u_batch = self._to_2d(residual, self.range_shape, "residual", "(n_angles, n_det, *batch)")
        if u_batch != batch:
            raise InputError(f"residual has batch axes {u_batch}, expected the volume's {batch}")
        if backend.is_gpu_array(x2d) != backend.is_gpu_array(u2d):
            raise InputError("residual and volume must be on the same device (both NumPy or both CuPy)")
        steps = backend.contiguous(scale, self.dtype)
        if math.prod(steps.shape) != n:
            raise InputError(f"scale has shape {tuple(steps.shape)}, expected {n} values, one per pixel of {lead}")
        steps = steps.reshape(n)
        if self._compiled is not None and not backend.is_gpu_array(x2d):
            self._compiled.update(u2d, x2d, steps, clip=bool(nonnegative))
        else:
            xp = backend.namespace(x2d)
            step = self._rmatvec(u2d)
            step *= xp.reshape(xp.asarray(steps), (n, 1))
            x2d += step
            if nonnegative:
                xp.maximum(x2d, 0, out=x2d)
        projection = self._matvec(x2d) if project else None
        return None if projection is None else projection.reshape(self.range_shape + batch)

    def row_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        """Sums of W over pixels, ``Σ_j w_ij``, shape ``range_shape`` = ``(n_angles, n_det)``, in pixels.

        Computed exactly (float64) when the matrix is built; returned in ``dtype``
        (default: the projector's) in the namespace ``xp`` (default NumPy).
        """
        return self._sums(self._row_sums, self.range_shape, xp, dtype)

    def col_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        """Sums of W over detector bins, ``Σ_i w_ij``, shape ``domain_shape`` = ``(nz, nx)``, in pixels."""
        return self._sums(self._col_sums, self.domain_shape, xp, dtype)

    def _sums(self, sums: np.ndarray, shape: tuple[int, ...], xp: Any, dtype: Any) -> Any:
        values = np.array(sums.reshape(shape), dtype=dtype or self.dtype)
        return values if xp is None else xp.asarray(values)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_angles={self.n_angles}, shape={self.slice_shape}, n_det={self.n_det}, "
            f"det_spacing={self.det_spacing}, model={self.model!r}, dtype={self.dtype.name!r}, kernel={self.kernel!r})"
        )

    # ---------------------------------------------------------------- kernel
    def _to_2d(self, array: ArrayLike, lead: tuple[int, int], name: str, layout: str) -> tuple[Any, tuple[int, ...]]:
        """Cast to ``dtype`` and fold into a C-ordered ``(prod(lead), prod(batch))`` array.

        NumPy (and anything array-like) gives a NumPy array; a CuPy array stays on its GPU.
        """
        arr = backend.contiguous(array, self.dtype)
        if arr.ndim < 2 or tuple(arr.shape[:2]) != lead:
            raise InputError(f"{name} has shape {tuple(arr.shape)}, expected {layout} with leading axes {lead}")
        batch = tuple(arr.shape[2:])
        return arr.reshape(lead[0] * lead[1], math.prod(batch)), batch

    def _gpu_matrix(self) -> Any:
        """Wᵀ as a ``cupyx.scipy.sparse`` CSR matrix, copied to the GPU on first use."""
        if self._device_matrix is None:
            self._device_matrix = backend.device_csr(self._matrix_t)
        return self._device_matrix

    def _matvec(self, x2d: Any) -> Any:
        """``W @ x2d`` for a C-ordered ``(N, batch)`` array of ``dtype``.

        Both CPU paths read W as the columns of the stored Wᵀ: each contiguous
        pixel row of ``x2d`` is read once and scattered into the (smaller)
        sinogram (a row gather with W in CSR would re-read the large volume
        from memory at every angle).  ``"numba"``: :meth:`CompiledCSR.scatter`
        on all cores; ``"scipy"``: W as CSC (one core); CuPy: on the GPU.
        """
        if backend.is_gpu_array(x2d):
            return self._gpu_matrix().T @ x2d
        if self._compiled is not None:
            return self._compiled.scatter(x2d)
        return self._matrix_csc @ x2d

    def _rmatvec(self, y2d: Any) -> Any:
        """``Wᵀ @ y2d`` for a C-ordered ``(M, batch)`` array of ``dtype`` (CSR row gather)."""
        if backend.is_gpu_array(y2d):
            return self._gpu_matrix() @ y2d
        if self._compiled is not None:
            return self._compiled.gather(y2d)
        return self._matrix_t @ y2d


@lru_cache(maxsize=16)
def _cached_projector(
    angles: tuple[float, ...], shape: tuple[int, int], model: str, dtype: str, n_det: int | None, det_spacing: float
) -> ParallelBeamProjector:
    return ParallelBeamProjector(np.asarray(angles), shape, n_det, det_spacing, model=model, dtype=dtype)


def projector_for(
    angles_rad: Sequence[float],
    shape: tuple[int, int],
    model: str = "strip",
    dtype: str = "float32",
    n_det: int | None = None,
    det_spacing: float = 1.0,
) -> ParallelBeamProjector:
    """The projector of a geometry, built once and reused (the 16 most recent are kept).

    Parameters
    ----------
    angles_rad : sequence of float
        Tilt angles in radians.
    shape : (int, int)
        Slice shape ``(nz, nx)`` in pixels.
    model : {"strip", "joseph"}
        Projection model.
    dtype : {"float32", "float64"}
        Arithmetic type of the projector.
    n_det, det_spacing
        Detector bins and their width in pixels (default: ``nx`` bins of 1 pixel).

    Returns
    -------
    ParallelBeamProjector
        A shared instance; callers must not modify it.
    """
    key = tuple(float(a) for a in np.asarray(angles_rad, dtype=np.float64).ravel())
    return _cached_projector(key, tuple(int(n) for n in shape), model, str(dtype), n_det, float(det_spacing))
