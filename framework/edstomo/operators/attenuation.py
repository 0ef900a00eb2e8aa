"""X-ray absorption on the way to the EDS detectors: path integrals, transmission factors, the attenuated W.

An X-ray of line A emitted in voxel ``p`` reaches a detector in direction ``d``
with probability ``exp(−∫₀^∞ m_A(p + s d) ds)``, where ``m_A = ρ Σ_E w_E μ_E(E_A)``
is the local linear attenuation coefficient of line A's energy (mixture rule).
The direction is fixed in the microscope; in the specimen frame it turns with
the holder, so each tilt has its own directions, and a detector that does not
lie in the plane perpendicular to the tilt axis sends the path out of the slice
plane (slices are then coupled).

Geometry (voxel coordinates ``(z, x, y)`` = (row, column, slice) of the solver's
volume, as in :mod:`edstomo.operators.projector`): at tilt θ the beam runs along
``(cos θ, −sin θ, 0)`` in ``(z, x, y)`` and the projector's detector axis along
``(sin θ, cos θ, 0)``.  A detector at elevation ε above the specimen plane and
azimuth φ (measured in that plane from the direction perpendicular to the tilt
axis, towards +y) lies along the microscope vector ``cos ε cos φ`` (detector axis)
+ ``cos ε sin φ`` (tilt axis) − ``sin ε`` (beam: the detector looks down on the
specimen from the side the beam comes from); see :func:`detector_direction`.

:func:`path_integrals` computes ``∫ m ds`` from every voxel centre by resampling
the fields on a grid whose third axis is ``d``, a reverse cumulative sum along
it, and resampling back (trilinear both ways; exact when ``d`` is a grid axis).
:class:`AttenuatedProjector` is ``y_t = W_t (a_t ⊙ x)``: the projector of each tilt
after a per-voxel transmission ``a_t`` that depends on the batch column (line and
slice), so its batch shape is fixed by the factors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from .. import backend
from ..errors import InputError
from .base import LinearOperator
from .projector import ParallelBeamProjector

__all__ = ["AttenuatedProjector", "detector_direction", "path_integrals"]


def detector_direction(elevation: float, azimuth: float, tilt: float) -> np.ndarray:
    """Unit vector from the specimen towards a detector, in voxel coordinates ``(z, x, y)``.

    Parameters
    ----------
    elevation : float
        Take-off angle above the specimen plane at zero tilt (radians, in (0, π/2)).
    azimuth : float
        Direction in the specimen plane from the perpendicular to the tilt axis, towards +y (radians).
    tilt : float
        Tilt angle θ of the projector's convention (radians).

    Returns
    -------
    ndarray, shape (3,)
        ``(d_z, d_x, d_y)``, unit length.

    Examples
    --------
    At zero tilt a detector at 30° elevation, azimuth 0, looks along +x and up (−z):

    >>> import math
    >>> [round(float(v), 6) for v in detector_direction(math.radians(30), 0.0, 0.0)]
    [-0.5, 0.866025, 0.0]
    """
    along = math.cos(elevation) * math.cos(azimuth)  # the projector's detector axis
    axis = math.cos(elevation) * math.sin(azimuth)  # the tilt axis (y)
    beam = -math.sin(elevation)  # against the beam: towards the source side
    c, s = math.cos(tilt), math.sin(tilt)
    # beam (z, x) = (cos θ, −sin θ); detector axis (z, x) = (sin θ, cos θ)
    z = along * s + beam * c
    x = along * c - beam * s
    return np.array([z, x, axis])


def _frame(direction: np.ndarray) -> np.ndarray:
    """An orthonormal frame (rows u, v, w) with w = ``direction``; grid-aligned when ``direction`` is an axis."""
    w = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    helper = np.eye(3)[int(np.argmin(np.abs(w)))]
    u = helper - np.dot(helper, w) * w
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    return np.stack([u, v, w])


def path_integrals(fields: np.ndarray, direction: Sequence[float]) -> np.ndarray:
    """``∫₀^∞ f(p + s d) ds`` from the centre of every voxel ``p`` along ``d``, for each field.

    Parameters
    ----------
    fields : ndarray, shape ``(nz, nx, ny, k)``
        Values per voxel (e.g. linear attenuation coefficients in 1/pixel), zero
        outside the array.
    direction : sequence of 3 floats
        ``(d_z, d_x, d_y)`` in voxel units (normalised here).

    Returns
    -------
    ndarray, shape ``(nz, nx, ny, k)``
        Path integrals in field × pixel length: the half of the voxel's own
        length beyond its centre plus every voxel beyond it. Exact for a
        direction along a grid axis; otherwise both resamplings are trilinear.
    """
    fields = np.asarray(fields, dtype=float)
    if fields.ndim != 4:
        raise InputError(f"fields: shape {fields.shape} must be (nz, nx, ny, k)")
    direction = np.asarray(direction, dtype=float)
    if direction.shape != (3,) or not np.all(np.isfinite(direction)) or not np.linalg.norm(direction) > 0:
        raise InputError(f"direction: {direction.tolist()} must be three finite numbers, not all zero")
    frame = _frame(direction)
    shape = fields.shape[:3]
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1)
    extent = frame @ corners  # coordinates of the voxel-centre box corners in (u, v, w)
    low = extent.min(axis=1)
    sizes = np.floor(extent.max(axis=1) - low + 1e-9).astype(int) + 1
    sizes[2] += 1  # one sample beyond the far corner, so the last voxel has a neighbour of zero
    # rotated grid point (a, b, c) sits at frame.T @ (low + (a, b, c)) in voxel coordinates
    matrix = frame.T
    offset = matrix @ low
    integrals = np.empty_like(fields)
    for index in range(fields.shape[3]):
        rotated = ndimage.affine_transform(
            fields[..., index], matrix, offset=offset, output_shape=tuple(sizes), order=1, mode="constant", cval=0.0
        )
        beyond = np.cumsum(rotated[:, :, ::-1], axis=2)[:, :, ::-1]  # Σ over samples at or beyond
        beyond -= 0.5 * rotated  # half of the sample's own voxel
        # back: voxel p sits at frame @ p − low in the rotated grid
        back = frame
        back_offset = -low
        integrals[..., index] = ndimage.affine_transform(
            beyond, back, offset=back_offset, output_shape=shape, order=1, mode="nearest"
        )
    return integrals


class AttenuatedProjector(LinearOperator):
    """``A x = [W_t (a_t ⊙ x)]_t``: the projector of each tilt after a per-voxel transmission.

    Parameters
    ----------
    projector : ParallelBeamProjector
        W for the tilt angles and slice shape.
    factors : ndarray, shape ``(tilts, nz, nx, *batch)``
        Transmission ``a_t`` of each voxel at each tilt, per batch column (e.g.
        ``(lines, slices)`` in the solver layout), in [0, 1]. With all factors 1
        the operator is ``W`` exactly.

    Notes
    -----
    Unlike W, the operator differs between batch columns, so its inputs must
    carry exactly the batch axes of ``factors``; :meth:`row_sums` and
    :meth:`col_sums` return arrays with those batch axes.  The adjoint is
    ``Aᵀ y = Σ_t a_t ⊙ W_tᵀ y_t``.
    """

    pointwise_in_angle = True

    def __init__(self, projector: ParallelBeamProjector, factors: Any) -> None:
        super().__init__(projector.domain_shape, projector.range_shape)
        factors = np.asarray(factors)
        expected = (projector.n_angles, *projector.slice_shape)
        if factors.ndim < 3 or factors.shape[:3] != expected:
            raise InputError(f"factors: shape {factors.shape} must start with (tilts, nz, nx) = {expected}")
        if not np.all(np.isfinite(factors)) or factors.min(initial=0.0) < 0:
            raise InputError("factors: transmissions must be finite and not negative")
        self.projector, self.factors = projector, factors
        self.batch = tuple(factors.shape[3:])
        self.transparent = bool(np.all(factors == 1.0))  # then A is W, computed by W itself
        matrix = projector.matrix
        n_det = projector.n_det
        self._rows = [matrix[t * n_det : (t + 1) * n_det] for t in range(projector.n_angles)]

    # the projector's description, for code that reads it
    @property
    def angles(self) -> np.ndarray:
        return self.projector.angles

    @property
    def n_angles(self) -> int:
        return self.projector.n_angles

    @property
    def n_det(self) -> int:
        return self.projector.n_det

    @property
    def slice_shape(self) -> tuple[int, int]:
        return self.projector.slice_shape

    def _check_batch(self, array: Any, name: str) -> None:
        if tuple(array.shape[2:]) != self.batch:
            raise InputError(
                f"{name}: batch axes {tuple(array.shape[2:])} differ from the attenuation factors' {self.batch}"
            )

    def _forward(self, x: Any) -> Any:
        self._check_batch(x, "x")
        if self.transparent:
            return self.projector.forward(x)
        x = backend.to_numpy(x)
        n = x.shape[0] * x.shape[1]
        columns = math.prod(self.batch)
        out = np.empty((self.n_angles, self.n_det, *self.batch), dtype=np.result_type(x.dtype, self.factors.dtype))
        for t, rows in enumerate(self._rows):
            weighted = (self.factors[t] * x).reshape(n, columns)
            out[t] = (rows @ weighted).reshape(self.n_det, *self.batch)
        return out

    def _adjoint(self, y: Any) -> Any:
        self._check_batch(y, "y")
        if self.transparent:
            return self.projector.adjoint(y)
        y = backend.to_numpy(y)
        nz, nx = self.slice_shape
        columns = math.prod(self.batch)
        out = np.zeros((nz, nx, *self.batch), dtype=np.result_type(y.dtype, self.factors.dtype))
        for t, rows in enumerate(self._rows):
            back = (rows.T @ y[t].reshape(self.n_det, columns)).reshape(nz, nx, *self.batch)
            out += self.factors[t] * back
        return out

    def row_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        """``A 1`` with the batch axes of the factors, shape ``(tilts, n_det, *batch)``."""
        return self.forward(np.ones((*self.domain_shape, *self.batch), dtype=dtype or np.float64))

    def col_sums(self, xp: Any = None, dtype: Any = None) -> Any:
        """``Aᵀ 1`` with the batch axes of the factors, shape ``(nz, nx, *batch)``."""
        return self.adjoint(np.ones((*self.range_shape, *self.batch), dtype=dtype or np.float64))

    def norm(self, iterations: int = 100, rtol: float = 1e-7, seed: int = 0) -> float:
        """An upper bound of ‖A‖ over every batch column: ‖W‖ times the largest transmission."""
        return float(self.projector.norm(iterations, rtol, seed) * float(self.factors.max(initial=0.0)))

    def subset(self, angles: Sequence[int]) -> AttenuatedProjector:
        index = np.asarray(angles, dtype=np.int64)
        return AttenuatedProjector(self.projector.subset(index), self.factors[index])

    def __repr__(self) -> str:
        return f"AttenuatedProjector({self.projector!r}, batch={self.batch})"
