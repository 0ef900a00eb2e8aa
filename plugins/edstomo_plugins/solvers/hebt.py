"""HEBT-SIRT: HAADF-EDS bimodal tomography (eq. 17) by SIRT on the stacked system."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from edstomo.algorithms import ORDERINGS, SART, Algorithm
from edstomo.data import HAADF, TiltSeries
from edstomo.engine import Auto, Equivalent, IterativeOptions, Problem, ReconstructionSolver
from edstomo.errors import InputError
from edstomo.operators import BlockDiagonal, LinearOperator, MixChannels, ParallelBeamProjector
from edstomo.preprocessing import ResponseRatios, response_ratios
from pydantic import BeforeValidator, Field, PositiveFloat

from .sirt import SIRTSolver, subset_plan


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


#: The α tried by ``alpha="auto"``.
ALPHA_CANDIDATES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95)


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

    ``subsets`` > 1 solves the same system by OS-SART (:class:`edstomo.algorithms.SART`): one
    iteration visits ``subsets`` groups of tilts (golden-ratio order by default) and updates the
    maps after each, with each group's own row and column sums; the default 1 is SIRT.  Like the
    ``sart`` solver's, it reaches SIRT's quality in far fewer passes over the data.

    ``alpha="auto"`` and ``iterations="auto"`` are chosen from the data by the
    held-out EDS deviance (:mod:`edstomo.selection`): α from
    :data:`ALPHA_CANDIDATES`, n along each run; the ratios are fitted to each
    fit part separately.  The EDS data the maps predict are ``W X_A / r_A``.
    """

    name = "hebt-sirt"
    description = "HAADF-EDS bimodal tomography (eq. 17) by matrix-free SIRT on the stacked system"
    default = True
    requires = frozenset({"lines", "haadf"})
    produces = "z_A"
    fits_from_data = ("ratios",)
    auto_options: ClassVar[Mapping[str, tuple[float, ...]]] = {"iterations": (), "alpha": ALPHA_CANDIDATES}

    class Options(IterativeOptions):
        alpha: Annotated[float, Field(ge=0, lt=1)] | Auto = Field(
            0.8, description="weight α of the HAADF term, in [0, 1), or 'auto' (chosen from the data)"
        )
        ratios: Annotated[dict[str, PositiveFloat] | None, BeforeValidator(_ratio_mapping)] = Field(
            None, description="response ratios r_A per line (default: fitted to the data, eq. 15)"
        )
        relaxation: float = Field(1.0, gt=0, lt=2, description="relaxation λ")
        subsets: int = Field(1, ge=1, description="ordered subsets of the tilt angles per iteration (1: SIRT)")
        ordering: Literal[ORDERINGS] = Field("golden", description="how the tilts are dealt into subsets")
        seed: int = Field(0, ge=0, description="seed of the 'random' ordering")

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

    def prepare(self, data: TiltSeries, *, known: Sequence[Any] = ()) -> HEBTSolver:
        solver = super().prepare(data, known=known)  # automatic options first: they fit ratios to each fit part
        if solver.options.ratios is not None:
            return solver
        return solver.with_options(ratios=solver._fitted(data, solver.channels_for(data)))

    def predict(self, problem: Problem, x: Any) -> Any:
        ratios = self._fit["ratios_used"]
        scale = problem.xp.asarray(
            [1.0 / ratios[c] for c in problem.channels], dtype=getattr(problem.xp, problem.dtype)
        )
        return problem.project(x) * problem.xp.reshape(scale, (1, 1, -1, 1))

    def simulate(self, problem: Problem, x: Any) -> dict[str, Any]:
        """The lines' data ``W X_A / r_A`` and the HAADF ``Σ_A r_A I_A = Σ_A W X_A`` (eq. 15) of maps ``x``."""
        data = super().simulate(problem, x)
        data[HAADF] = problem.xp.sum(problem.project(x), axis=2)
        return data

    def batch(self, series: Sequence[TiltSeries]) -> tuple[HEBTSolver, TiltSeries, np.ndarray]:
        """Series as batch columns, each with its own fitted ratios: the EDS lines of series b are scaled by
        ``r_A(b) / r_A(0)`` and solved with ``r_A(0)``, which gives each series its own data term ``r_A(b) I_A``."""
        if self.options.ratios is not None:
            return super().batch(series)
        channels = self.channels_for(series[0])
        fits = [self._fitted(s, channels) for s in series]
        scales = np.array([[fit[c] / fits[0][c] for fit in fits] for c in channels])
        scaled = []
        for s, column in zip(series, scales.T):
            data = np.array(s.data, dtype=np.float64)
            for c, factor in zip(channels, column):
                data[s.channels.index(c)] *= factor
            scaled.append(s.replace(data=data))
        solver, stacked, _ = self.with_options(ratios=fits[0]).batch(scaled)
        solver.batch_fits = [{"ratios": fit} for fit in fits]
        return solver, stacked, scales

    def thinned(self, fraction: float) -> HEBTSolver:
        """Given ratios apply to the whole counts; the fit part's EDS counts are ``fraction`` of them."""
        if self.options.ratios is None:
            return self
        return self.with_options(ratios={c: r / fraction for c, r in self.options.ratios.items()})

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

    def equivalent(self) -> Equivalent | None:
        """At α = 0 with given ratios: ``sirt`` with the same options, whose maps times r_A are these.

        Eq. 17's HAADF row then has weight 0, so the update is SIRT's on ``r_A I_A``; SIRT is
        linear in its data and the clamp at 0 commutes with a positive factor.
        """
        options, ratios = self.options, self.options.ratios
        if options.alpha != 0 or ratios is None:
            return None
        shared = [name for name in SIRTSolver.Options.model_fields if name in type(options).model_fields]
        sirt = SIRTSolver(**{name: getattr(options, name) for name in shared})
        return Equivalent(
            sirt,
            dict(ratios),
            "alpha = 0: eq. 17 is SIRT of r_A I_A (the HAADF row has weight 0)",
            {"ratios_used": dict(ratios)},
        )

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
        _, groups = subset_plan(problem.projector.n_angles, self.options)
        return SART(
            hebt_operator(problem.projector, len(channels), alpha),
            xp.concat([eds, haadf], axis=2),
            problem.initial,
            relaxation=self.options.relaxation,
            nonnegative=problem.nonnegative,
            subsets=groups,
            max_iterations=self.options.iterations,
        )

    def record(self) -> dict[str, Any]:
        return dict(self._fit)
