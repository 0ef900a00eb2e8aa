"""HEBT-SIRT: HAADF-EDS bimodal tomography (eq. 17) by SIRT on the stacked system, matrix-free."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from edstomo.data import HAADF, TiltSeries
from edstomo.preprocessing import ResponseRatios, response_ratios
from edstomo.projector import ParallelBeamProjector
from edstomo.solver_base import IterativeSolver, Progress, Residual, safe_reciprocal

from .sirt import stacked_sinograms


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise ValueError(f"alpha: {alpha!r} must be a number in the allowed range [0, 1)")
    if not 0.0 <= float(alpha) < 1.0:
        raise ValueError(f"alpha: {alpha!r} is outside the allowed range [0, 1)")
    return float(alpha)


def _check_ratios(ratios: Any) -> dict[str, float] | None:
    if ratios is None:
        return None
    if isinstance(ratios, ResponseRatios):
        ratios = ratios.ratios
    if not isinstance(ratios, Mapping) or not ratios:
        raise ValueError(f"ratios: expected a mapping of EDS line to response ratio r_A, got {ratios!r}")
    checked = {}
    for line, value in ratios.items():
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ratios: r_A of {line!r} is {value!r}; expected a positive number") from exc
        if not (np.isfinite(number) and number > 0):
            raise ValueError(f"ratios: r_A of {line!r} is {value!r}; expected a positive finite number")
        checked[str(line)] = number
    return checked


class HEBTSolver(IterativeSolver):
    """HAADF-EDS bimodal tomography (Zhong et al. 2017; paper eq. 17) solved by SIRT.

    The stacked system of eq. 17 has one block row per EDS line A,
    ``(1−α) W X_A = (1−α) r_A I_A``, and one HAADF block row,
    ``α W Σ_A X_A = α I_H``.  SIRT on it (without building the block matrix)
    uses the row sums ``(1−α) s_i`` of an EDS block row and ``α k s_i`` of a
    HAADF row (``s_i = Σ_j w_ij``, k lines) and the column sums
    ``(1−α) c_j + α c_j = c_j`` (``c_j = Σ_i w_ij``), so the update of map A is

        X_A ← max(0, X_A + λ C Wᵀ R [ (1−α)(r_A I_A − W X_A) + (α/k)(I_H − Σ_B W X_B) ])

    with ``R = diag(1/s_i)`` and ``C = diag(1/c_j)`` (zero where a sum is zero).
    At α = 0 it is SIRT on each ``r_A I_A``.

    Cost of one iteration: the k maps of all slices are forward projected in one
    sparse product (the HAADF prediction is their sum: no extra projection), and
    back projected in one sparse product of k maps — k back projections, not
    k + 1: because Wᵀ is linear, the HAADF residual term is added to each map's
    weighted EDS residual in the sinogram domain (one broadcast addition) before
    the back projection, instead of being back projected separately.

    Parameters
    ----------
    alpha : float
        Weight α of the HAADF term, in [0, 1).
    ratios : dict of str to float or ResponseRatios, optional
        Response ratios r_A (eq. 15–16) per line; default: estimated from the
        data with :func:`edstomo.preprocessing.response_ratios`.
    iterations, relaxation, initial, projector, nonnegativity, dtype, progress, device
        See :class:`edstomo.solver_base.IterativeSolver`.
    channels : list of str, optional
        EDS lines to reconstruct (the HAADF signal must be explained by them);
        default every line.

    Notes
    -----
    The maps ``X^b_A = D_H N_A z_A C_A ρ`` (times the pixel length) are in the
    units of ``r_A I_A``, i.e. on the HAADF scale: electrons per pixel.
    """

    name = "hebt-sirt"
    description = "HAADF-EDS bimodal tomography (eq. 17) by matrix-free SIRT on the stacked system"

    def __init__(
        self,
        alpha: float = 0.8,
        ratios: Mapping[str, float] | ResponseRatios | None = None,
        iterations: int = 100,
        relaxation: float = 1.0,
        initial: Any = None,
        projector: str = "strip",
        nonnegativity: bool = True,
        channels: Sequence[str] | None = None,
        dtype: str = "float32",
        progress: bool | Progress | None = False,
        device: str = "cpu",
    ) -> None:
        super().__init__(iterations, relaxation, initial, projector, nonnegativity, channels, dtype, progress, device)
        self.alpha = _check_alpha(alpha)
        self.ratios = _check_ratios(ratios)
        self._fit: dict[str, Any] = {}

    def _default_channels(self, data: TiltSeries) -> list[str]:
        if not data.lines:
            raise ValueError(f"data: HEBT needs EDS lines; the tilt series has channels {data.channels}")
        return data.lines

    def _check_channels(self, data: TiltSeries, channels: list[str]) -> None:
        if not data.has_haadf:
            raise ValueError(f"data: HEBT needs a {HAADF!r} channel; the tilt series has channels {data.channels}")
        if HAADF in channels:
            raise ValueError(f"channels: {channels} must be EDS lines only; {HAADF!r} is the joint data term")
        if self.ratios is not None:
            missing = [c for c in channels if c not in self.ratios]
            if missing:
                raise ValueError(f"ratios: no response ratio for line(s) {missing}; given for {list(self.ratios)}")
            unused = [line for line in self.ratios if line not in channels]
            if unused:
                raise ValueError(
                    f"ratios: line(s) {unused} are not reconstructed (channels {channels}); a ratio "
                    "of a line that is not used would be ignored"
                )

    def _resolve_ratios(self, data: TiltSeries, channels: list[str]) -> np.ndarray:
        if self.ratios is not None:
            self._fit = {"ratios_used": {c: self.ratios[c] for c in channels}}
            return np.array([self.ratios[c] for c in channels])
        fit = response_ratios(data, channels)
        if not np.all(fit.as_array(channels) > 0):
            zero = [c for c in channels if fit[c] <= 0]
            raise ValueError(
                f"data: the non-negative fit of the HAADF signal gives r_A = 0 for {zero} (R² = {fit.r_squared:.3f}); "
                "give ratios explicitly or leave those lines out"
            )
        self._fit = {"ratios_used": fit.ratios, "ratios_estimated": True, "r_squared": fit.r_squared}
        return fit.as_array(channels)

    def _setup(self, data: TiltSeries, channels: list[str], projector: ParallelBeamProjector, xp: Any) -> Residual:
        ratios = self._resolve_ratios(data, channels)
        dtype = getattr(xp, self.dtype)
        eds = stacked_sinograms(data, channels, xp, self.dtype)
        eds *= xp.reshape(xp.asarray(ratios, dtype=dtype), (1, 1, -1, 1))  # r_A I_A
        haadf = stacked_sinograms(data, [HAADF], xp, self.dtype)  # (tilts, positions, 1, slices)
        inverse_rows = xp.reshape(safe_reciprocal(xp.asarray(projector.row_sums()), xp), (*projector.range_shape, 1, 1))
        alpha, k = self.alpha, len(channels)
        eds_weight = -(1.0 - alpha) * inverse_rows  # turns W X_A − r_A I_A into (1−α) R (r_A I_A − W X_A)
        haadf_weight = -(alpha / k) * inverse_rows  # turns Σ W X − I_H into (α/k) R (I_H − Σ W X)

        def residual(projection: Any) -> tuple[Any, float]:
            u = projection  # W X_A for every line and slice (overwritten with the residual)
            h = xp.sum(u, axis=2, keepdims=True)  # HAADF prediction Σ_A W X_A
            h -= haadf
            u -= eds
            norm = float(
                xp.sqrt(((1.0 - alpha) * xp.linalg.vector_norm(u)) ** 2 + (alpha * xp.linalg.vector_norm(h)) ** 2)
            )
            u *= eds_weight
            h *= haadf_weight
            u += h
            return u, norm

        return residual

    def _record(self) -> dict[str, Any]:
        return dict(self._fit)

    def _describe(self, channels: list[str]) -> tuple[str, str]:
        return "X^b_A = D_H N_A z_A C_A rho (eq. 17) per pixel length, HAADF scale", "electrons/pixel"
