"""HEBT-SIRT: HAADF-EDS bimodal tomography (eq. 17) by SIRT on the stacked system."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from edstomo.algorithms import SART, Algorithm
from edstomo.data import HAADF, TiltSeries
from edstomo.engine import IterativeOptions, Problem, ReconstructionSolver
from edstomo.errors import InputError
from edstomo.operators import BlockDiagonal, LinearOperator, MixChannels, ParallelBeamProjector
from edstomo.preprocessing import ResponseRatios, response_ratios
from pydantic import BeforeValidator, Field, PositiveFloat


def _ratio_mapping(value: Any) -> Any:
    """Response ratios as a plain mapping (a fitted :class:`ResponseRatios` is accepted as such)."""
    return value.ratios if isinstance(value, ResponseRatios) else value


def hebt_operator(projector: ParallelBeamProjector, lines: int, alpha: float) -> LinearOperator:
    """The stacked HEBT system of eq. 17 for ``lines`` maps, as ``MixChannels(M) @ BlockDiagonal(W, k)``.

    ``M = [(1−α) I_k; α 1ᵀ]`` (shape ``(k+1) × k``): one block row ``(1−α) W`` per
    line and the HAADF row ``α Σ_A W`` (the maps' projections mixed in the
    sinogram domain).  Its range is ``(tilts, positions, k + 1)``: the k EDS
    lines, then the HAADF.
    """
    mixing = np.vstack([(1.0 - alpha) * np.eye(lines), alpha * np.ones((1, lines))])
    return MixChannels(mixing, projector.range_shape) @ BlockDiagonal(projector, lines)


class HEBTSolver(ReconstructionSolver):
    """HAADF-EDS bimodal tomography (Zhong et al. 2017; paper eq. 17) solved by SIRT.

    The stacked system of eq. 17 has one block row per EDS line A,
    ``(1−α) W X_A = (1−α) r_A I_A``, and one HAADF block row,
    ``α W Σ_A X_A = α I_H`` (:func:`hebt_operator`).  SIRT on it uses the row sums
    ``(1−α) s_i`` of an EDS row and ``α k s_i`` of a HAADF row (``s_i = Σ_j w_ij``,
    k lines) and the column sums ``(1−α) c_j + α c_j = c_j``, all from the
    generic operator code, so the update of map A is

        X_A ← max(0, X_A + λ C Wᵀ R [ (1−α)(r_A I_A − W X_A) + (α/k)(I_H − Σ_B W X_B) ])

    with ``R = diag(1/s_i)`` and ``C = diag(1/c_j)``.  At α = 0 it is SIRT on each
    ``r_A I_A``.  The k maps are projected in one product, mixed with the HAADF
    row in the sinogram domain and back projected in one fused kernel pass.

    Notes
    -----
    The maps ``X^b_A = D_H N_A z_A C_A ρ`` (times the pixel length) are in the
    units of ``r_A I_A``, i.e. on the HAADF scale: electrons per pixel.
    Without ``ratios`` they are fitted to the data (:func:`edstomo.preprocessing.response_ratios`);
    :meth:`prepare` fixes them once for a series solved in chunks.
    """

    name = "hebt-sirt"
    description = "HAADF-EDS bimodal tomography (eq. 17) by matrix-free SIRT on the stacked system"
    default = True
    requires = frozenset({"lines", "haadf"})
    produces = "z_A"
    fits_from_data = ("ratios",)

    class Options(IterativeOptions):
        alpha: float = Field(0.8, ge=0, lt=1, description="weight α of the HAADF term, in [0, 1)")
        ratios: Annotated[dict[str, PositiveFloat] | None, BeforeValidator(_ratio_mapping)] = Field(
            None, description="response ratios r_A per line (default: fitted to the data, eq. 15)"
        )
        relaxation: float = Field(1.0, gt=0, lt=2, description="relaxation λ")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._fit: dict[str, Any] = {}

    def check(self, data: TiltSeries, channels: list[str]) -> None:
        super().check(data, channels)
        ratios = self.options.ratios
        if ratios is not None:
            missing = [c for c in channels if c not in ratios]
            unused = [line for line in ratios if line not in channels]
            if missing or unused:
                raise InputError(
                    f"ratios: given for {list(ratios)}, but the reconstructed lines are {channels} "
                    f"(missing {missing}, not used {unused})"
                )

    def prepare(self, data: TiltSeries) -> HEBTSolver:
        if self.options.ratios is not None:
            return self
        channels = list(self.options.channels) if self.options.channels is not None else self.default_channels(data)
        return self.with_options(ratios=self._fitted(data, channels))

    def _fitted(self, data: TiltSeries, channels: list[str]) -> dict[str, float]:
        fit = response_ratios(data, channels)
        zero = [c for c in channels if fit[c] <= 0]
        if zero:
            raise InputError(
                f"data: the non-negative fit of the HAADF signal gives r_A = 0 for {zero} (R² = {fit.r_squared:.3f}); "
                "give ratios explicitly or leave those lines out"
            )
        self._fit = {"ratios_estimated": True, "r_squared": fit.r_squared}
        return {c: fit[c] for c in channels}

    def build(self, problem: Problem) -> Algorithm:
        channels, xp = problem.channels, problem.xp
        ratios = self.options.ratios if self.options.ratios is not None else self._fitted(problem.series, channels)
        if self.options.ratios is not None:
            self._fit = {}
        self._fit["ratios_used"] = {c: float(ratios[c]) for c in channels}
        alpha = self.options.alpha
        scale = xp.asarray([(1.0 - alpha) * ratios[c] for c in channels], dtype=getattr(xp, problem.dtype))
        eds = problem.data * xp.reshape(scale, (1, 1, -1, 1))  # (1−α) r_A I_A
        haadf = alpha * problem.sinograms([HAADF])  # α I_H
        return SART(
            hebt_operator(problem.projector, len(channels), alpha),
            xp.concat([eds, haadf], axis=2),
            problem.initial,
            relaxation=self.options.relaxation,
            nonnegative=problem.nonnegative,
            max_iterations=self.options.iterations,
        )

    def record(self) -> dict[str, Any]:
        return dict(self._fit)
