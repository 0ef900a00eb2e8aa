"""SIRT: per-channel reconstruction of eq. 11 with row/column normalisation and non-negativity."""

from __future__ import annotations

from typing import Any

from edstomo.data import HAADF, TiltSeries
from edstomo.projector import ParallelBeamProjector
from edstomo.solver_base import IterativeSolver, Residual, safe_reciprocal


def stacked_sinograms(data: TiltSeries, channels: list[str], xp: Any, dtype: str) -> Any:
    """The sinograms of ``channels`` as one C-ordered array (tilts, positions, channels, slices)."""
    sinograms = xp.zeros((data.n_tilts, data.n_positions, len(channels), data.n_slices), dtype=getattr(xp, dtype))
    for k, channel in enumerate(channels):
        sinograms[:, :, k, :] = xp.asarray(data.channel(channel), dtype=getattr(xp, dtype))
    return sinograms


class SIRTSolver(IterativeSolver):
    """Simultaneous iterative reconstruction (SIRT) of each channel, all slices at once.

    Each channel ``A`` with sinogram ``b_A`` is updated as (Gregor & Benson 2008)

        X_A ← max(0, X_A + λ C Wᵀ R (b_A − W X_A)),

    with ``R = diag(1 / Σ_j w_ij)`` (inverse row sums) and ``C = diag(1 / Σ_i w_ij)``
    (inverse column sums); rows or columns that no ray touches get weight 0.
    Channels and slices are the projector's batch axes, so one iteration is one
    forward and one back projection (one sparse product each) for everything.

    Parameters
    ----------
    iterations, relaxation, initial, projector, nonnegativity, dtype, progress, device
        See :class:`edstomo.solver_base.IterativeSolver`.
    channels : list of str, optional
        Channels to reconstruct; default every EDS line.  ``["HAADF"]`` gives
        the HAADF reconstruction.

    Notes
    -----
    The maps are in data units per pixel of path length: for an EDS line
    ``X_A = n f_A C_A ρ`` (eq. 11, times the pixel length), counts per pixel.
    """

    name = "sirt"
    description = "SIRT per channel (eq. 11), row/column normalised, non-negative, all slices and channels at once"

    def _default_channels(self, data: TiltSeries) -> list[str]:
        if not data.lines:
            raise ValueError(
                f"channels: the tilt series has no EDS line (channels {data.channels}); "
                f"pass channels=[{HAADF!r}] to reconstruct the HAADF signal"
            )
        return data.lines

    def _check_channels(self, data: TiltSeries, channels: list[str]) -> None:
        """Any channel of the series can be reconstructed on its own."""

    def _setup(self, data: TiltSeries, channels: list[str], projector: ParallelBeamProjector, xp: Any) -> Residual:
        sinograms = stacked_sinograms(data, channels, xp, self.dtype)
        weights = -safe_reciprocal(xp.asarray(projector.row_sums()), xp)  # −R, so W x − b becomes R (b − W x)
        weights = xp.reshape(weights, (*projector.range_shape, 1, 1))

        def residual(projection: Any) -> tuple[Any, float]:
            u = projection  # W x, no longer needed: overwritten with the residual
            u -= sinograms
            norm = float(xp.linalg.vector_norm(u))
            u *= weights
            return u, norm

        return residual

    def _describe(self, channels: list[str]) -> tuple[str, str]:
        if HAADF not in channels:
            return "X_A = n f_A C_A rho (eq. 11) per pixel length", "counts/pixel"
        if channels == [HAADF]:
            return "HAADF reconstruction per pixel length", "electrons/pixel"
        return "per-channel reconstruction per pixel length", "data units/pixel"
