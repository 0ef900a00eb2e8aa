"""Poisson-likelihood reconstruction with total variation (``poisson-tv``), and what ``fused`` shares with it.

``poisson-tv`` minimises, for the EDS line maps ``X_A ≥ 0`` (EDS scale, counts
per pixel, as SIRT's),

    Σ_A KL(b_A, W X_A + β) + λ TV_w(X)

where ``KL(b, m) = Σ_i m_i − b_i + b_i log(b_i/m_i)`` is the negative Poisson
log-likelihood of the counts ``b_A`` (up to a constant), ``β`` a background
count per ray, and ``TV_w`` the isotropic total variation of the weighted
maps ``w_A X_A`` (2-D per slice, or 3-D), channel-coupled by default.  It is
solved by PDHG (:class:`edstomo.algorithms.PDHG`) with the closed-form proximal
maps of :mod:`edstomo.algorithms.proximal`.

Default rules (all from the data, none from a ground truth):

* **count level** ``b̄_A = Σ b² / Σ b`` over the rays of line A (the count of a
  typical ray through the specimen; option ``levels``, fitted on the whole
  series by :meth:`prepare`);
* **channel weights** ``w_A = √(T / b̄_A)`` (T tilts): the Poisson data term's
  curvature at a pixel is about ``T / b̄_A``, so ``w_A X_A`` has about unit noise
  and every line is regularised on the same scale;
* **TV weight** ``λ = regularization × λ₀`` with ``λ₀ = 5.4 b̄^(−0.2)`` (``fused``:
  ``λ₀ = 2.8``), ``b̄`` the geometric mean of the ``b̄_A``: fitted to the best λ on
  a calibration phantom that no study uses, at EDS doses ÷1 … ÷300
  (``benchmarks/calibrate_poisson_tv.py``, docs/poisson-tv.md);
* **steps** from the operator norms (power method) and a primal–dual balance
  ``τ ∝ balance × s`` per batch column, ``s = Σ b / Σ W1`` the mean map value
  over the field of view that reproduces the column's counts.

``regularization="auto"`` chooses the multiplier of the TV rule from the data
(:mod:`edstomo.selection`: Poisson thinning, held-out deviance) among
:data:`REGULARIZATION_CANDIDATES`; a fit part holding a fraction p of the
counts is solved with p × the count levels, so the rule λ₀ follows its counts,
and the multiplier chosen there is used unchanged on the whole data
(docs/selection.md).  The iteration count is
not chosen from the data: PDHG converges to the minimiser, and an early-stopped
iterate would regularise through the step sizes, not through λ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from edstomo.algorithms import PDHG, Algorithm, ProxTerm, TotalVariationTerm, dual_steps
from edstomo.algorithms.proximal import kl_dual_prox
from edstomo.data import TiltSeries
from edstomo.engine import MAX_ITERATIONS, Auto, Iterations, IterativeOptions, Problem, ReconstructionSolver
from edstomo.errors import InputError
from edstomo.operators import Gradient
from pydantic import Field, PositiveFloat

__all__ = [
    "LAMBDA_EXPONENT",
    "LAMBDA_SCALE",
    "REGULARIZATION_CANDIDATES",
    "PoissonOptions",
    "PoissonTVSolver",
    "check_counts",
    "count_levels",
    "default_lambda",
]

#: λ₀ = LAMBDA_SCALE · b̄^LAMBDA_EXPONENT (b̄ in counts per ray) for ``poisson-tv``, fitted once to the best λ
#: of ``benchmarks/calibrate_poisson_tv.py`` on a phantom that no study uses (see docs/poisson-tv.md).
LAMBDA_SCALE = 5.4
#: The exponent of b̄ in that rule (the fitted −0.197, rounded).
LAMBDA_EXPONENT = -0.2
#: The multipliers of the TV rule tried by ``regularization="auto"``: factors of 2 around the calibrated rule,
#: from a quarter to four times λ₀ (the calibration's best λ was within 20 % of the rules at every dose, and the
#: quality is flat within a factor 2 of the best: docs/poisson-tv.md; the measured choice: docs/selection.md).
REGULARIZATION_CANDIDATES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Safety factor ρ < 1 of the PDHG step condition.
SAFETY = 0.99
#: Smallest balance scale s (counts per pixel) of a column, so that an empty column gets finite steps.
MIN_SCALE = 1e-8


class PoissonOptions(IterativeOptions):
    """Options of the Poisson-likelihood solvers (``poisson-tv``, ``fused``)."""

    iterations: Iterations = Field(
        300, description=f"PDHG iterations (above {MAX_ITERATIONS}: --allow-large); not chosen from the data"
    )
    regularization: Annotated[float, Field(ge=0, allow_inf_nan=False)] | Auto = Field(
        1.0,
        description="TV weight λ as a multiple of the default rule λ₀ (0: no TV), or 'auto' (chosen from the data)",
    )
    tv: Literal["2d", "3d"] = Field("2d", description="total variation per slice ('2d') or across slices ('3d')")
    coupling: Literal["joint", "separate"] = Field(
        "joint", description="one TV norm over all element maps ('joint') or one per map ('separate')"
    )
    counts: Literal["raw", "scaled"] = Field(
        "raw", description="'raw': data must be counts (integers >= 0); 'scaled': values proportional to counts"
    )
    background: float = Field(0.0, ge=0, allow_inf_nan=False, description="background β added to every ray (counts)")
    levels: dict[str, PositiveFloat] | None = Field(
        None, description="count level b̄_A per line (counts per ray; default: Σb²/Σb of the data)"
    )
    balance: float = Field(3.0, gt=0, allow_inf_nan=False, description="primal-dual balance κ of the PDHG steps")


def check_counts(data: TiltSeries, channels: list[str], counts: str, label: str) -> None:
    """Raise InputError unless the ``channels`` of ``data`` are counts (``"raw"``) or non-negative (``"scaled"``)."""
    for channel in channels:
        values = np.asarray(data.channel(channel))
        if not np.all(np.isfinite(values)):
            raise InputError(f"data: line {channel} holds NaN or infinite values; {label} needs counts")
        if values.size and values.min() < 0:
            where = np.unravel_index(int(np.argmin(values)), values.shape)
            raise InputError(
                f"data: line {channel} holds negative values ({values.min():g} at (tilt, position, slice) {where}); "
                f"the Poisson likelihood of {label} needs counts >= 0"
            )
        if counts == "raw":
            fractional = values != np.round(values)
            if np.any(fractional):
                where = np.unravel_index(int(np.argmax(fractional)), values.shape)
                raise InputError(
                    f"data: line {channel} holds non-integer values ({values[where]:g} at (tilt, position, slice) "
                    f"{where}); the Poisson likelihood of {label} needs raw counts. Give counts='scaled' if the "
                    "values are proportional to counts (normalised, background-subtracted or rebinned maps)"
                )


def count_levels(data: TiltSeries, channels: list[str]) -> dict[str, float]:
    """``b̄_A = Σ b² / Σ b`` over every ray of each line: the count of a typical ray through the specimen.

    Raises
    ------
    InputError
        If a line has no counts at all.
    """
    levels = {}
    for channel in channels:
        values = np.asarray(data.channel(channel), dtype=np.float64)
        total = float(values.sum())
        if not total > 0:
            raise InputError(f"data: line {channel} has no counts; the Poisson solvers cannot weight it")
        levels[channel] = float(np.sum(values * values) / total)
    return levels


def default_lambda(levels: list[float], scale: float = LAMBDA_SCALE, exponent: float = LAMBDA_EXPONENT) -> float:
    """λ₀ = scale · b̄^exponent (default 5.4 b̄^(−0.2)), ``b̄`` the geometric mean of the lines' count levels."""
    mean = math.exp(sum(math.log(v) for v in levels) / len(levels))
    return scale * mean**exponent


class PoissonSolverBase(ReconstructionSolver):
    """What ``poisson-tv`` and ``fused`` share: the count checks, the default rules, the TV term, the steps."""

    requires = frozenset({"lines", "counts"})
    produces = "f_A"
    fits_from_data: tuple[str, ...] = ("levels",)
    #: ``regularization="auto"``: the multiplier of the TV rule, from the held-out deviance (PDHG converges,
    #: so the iteration count is not chosen: ``iterations="auto"`` is refused with the options that can be).
    auto_options: ClassVar[Mapping[str, tuple[Any, ...]]] = {"regularization": REGULARIZATION_CANDIDATES}
    Options = PoissonOptions
    #: The default TV weight rule λ₀ = lambda_scale · b̄^lambda_exponent of this solver.
    lambda_scale: float = LAMBDA_SCALE
    lambda_exponent: float = LAMBDA_EXPONENT

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._record: dict[str, Any] = {}

    def work_arrays(self) -> tuple[float, float]:
        """Work arrays for the memory check: 4 sinogram-sized, 2 volume-sized + the TV dual.

        Sinograms: the dual, a projection and its scaled copy, the mixed dual
        (``fused``).  Volumes: x̄, Σ Kᵀy and the TV dual's components (2 in 2-D,
        3 in 3-D; none without TV).
        """
        components = 0 if self.options.regularization == 0 else (2 if self.options.tv == "2d" else 3)
        return 4.0, 2.0 + components

    def couples_slices(self) -> bool:
        """Whether a slice's maps depend on other slices: with ``tv='3d'`` (then no slice chunks)."""
        return self.options.tv == "3d"

    def check(self, data: TiltSeries, channels: list[str]) -> None:
        super().check(data, channels)
        check_counts(data, channels, self.options.counts, self.label())
        levels = self.options.levels
        if levels is not None:
            missing = [c for c in channels if c not in levels]
            if missing:
                raise InputError(f"levels: given for {list(levels)}, but not for the reconstructed lines {missing}")

    def prepare(self, data: TiltSeries, *, known: Sequence[Any] = ()) -> PoissonSolverBase:
        """The count levels fitted on the whole series, then the automatic options chosen (the fit parts get
        ``fraction`` × the levels, :meth:`thinned`, so that they are solved as batch columns of one solve)."""
        solver = self
        if self.options.levels is None:
            solver = self.with_options(levels=count_levels(data, self.channels_for(data)))  # type: ignore[assignment]
        return ReconstructionSolver.prepare(solver, data, known=known)  # type: ignore[return-value]

    def thinned(self, fraction: float) -> PoissonSolverBase:
        """Given count levels are those of the whole counts; a fit part holds ``fraction`` of them."""
        if self.options.levels is None:
            return self
        return self.with_options(levels={c: v * fraction for c, v in self.options.levels.items()})  # type: ignore[return-value]

    def record(self) -> dict[str, Any]:
        return dict(self._record)

    # ----- pieces for build ----------------------------------------------------------------------------------
    def _levels(self, problem: Problem) -> dict[str, float]:
        given = self.options.levels
        if given is not None:
            return {c: float(given[c]) for c in problem.channels}
        return count_levels(problem.series, problem.channels)

    def _weights(self, problem: Problem, levels: dict[str, float]) -> tuple[Any, float]:
        """Channel weights w_A (shape (1, 1, channels, 1)) and λ."""
        xp = problem.xp
        tilts = problem.projector.n_angles
        weights = [math.sqrt(tilts / levels[c]) for c in problem.channels]
        lam = self.options.regularization * default_lambda(
            [levels[c] for c in problem.channels], self.lambda_scale, self.lambda_exponent
        )
        self._record.update(levels_used=levels, lambda_used=lam, channel_weights=dict(zip(problem.channels, weights)))
        return xp.reshape(xp.asarray(weights, dtype=getattr(xp, problem.dtype)), (1, 1, -1, 1)), lam

    def _balance(self, problem: Problem) -> Any:
        """τ-scale per column: balance × Σb / Σ W1 (over each column), shape (1, 1, channels, slices)."""
        xp = problem.xp
        rays = float(np.sum(problem.projector.row_sums()))
        scale = xp.sum(problem.data, axis=(0, 1), keepdims=True) / rays
        scale = xp.maximum(scale, MIN_SCALE)
        if self.options.tv == "3d":  # coupled slices: one balance per channel
            scale = xp.max(scale, axis=3, keepdims=True)
        return self.options.balance * scale

    def _tv_term(self, problem: Problem, weights: Any, lam: float, tau: Any, terms: int) -> TotalVariationTerm:
        nz, nx = problem.slice_shape
        channels, slices = len(problem.channels), problem.data.shape[3]
        joint = self.options.coupling == "joint"
        if self.options.tv == "2d":
            gradient = _gradient((nz, nx), (0, 1))
            coupled = (3,) if joint else ()
        else:
            gradient = _gradient((nz, nx, channels, slices), (0, 1, 3))
            coupled = (2,) if joint else ()
        xp = problem.xp
        # σ must be constant inside each ball: the bound uses the largest τ w² over the channels (and slices in 3-D)
        reach = tau * weights * weights
        reach = xp.max(reach, axis=2, keepdims=True)
        if self.options.tv == "3d":
            reach = xp.max(reach, axis=3, keepdims=True)
        sigma = SAFETY / (terms * reach * gradient.norm() ** 2)
        sigma = _expand_components(sigma, self.options.tv, xp)
        return TotalVariationTerm(gradient, weights, lam, sigma, coupled=coupled)


@lru_cache(maxsize=8)
def _gradient(shape: tuple[int, ...], axes: tuple[int, ...]) -> Gradient:
    """A finite-difference gradient, cached with its norm (the power method runs once per grid)."""
    return Gradient(shape, axes=axes)


def _expand_components(step: Any, tv: str, xp: Any) -> Any:
    """A step of shape (1, 1, c, s) as one for ∇x: (1, 1, 1, c, s) in 2-D, (1, 1, c, s, 1) in 3-D."""
    return xp.reshape(step, (1, 1, 1, *step.shape[2:])) if tv == "2d" else step[..., None]


class PoissonTVSolver(PoissonSolverBase):
    """Poisson likelihood of the raw EDS counts + isotropic total variation, by PDHG (maps on the EDS scale).

    Minimises ``Σ_A KL(b_A, W X_A + β) + λ TV_w(X)`` over ``X ≥ 0`` (see
    :mod:`edstomo_plugins.solvers.poisson` for the terms and the default rules).
    No Gaussian prefilter is needed: the likelihood models the counts' noise.
    ``regularization=0`` gives the maximum-likelihood maps (what MLEM converges to).
    The iteration converges (unlike SIRT it has no semi-convergence), so more
    iterations only bring the maps closer to the minimiser.

    Notes
    -----
    The maps are on the EDS scale, ``X_A = n f_A C_A ρ`` per pixel length, as
    SIRT's: the ``eds`` quantifier (eq. 12) turns them into weight fractions.
    With ``tv='3d'`` the slices are coupled and the series cannot be solved in
    slice chunks (:meth:`couples_slices`).
    """

    name = "poisson-tv"
    description = "Poisson likelihood (KL) of the raw counts + total variation, by PDHG; EDS-scale maps (eq. 12)"

    def build(self, problem: Problem) -> Algorithm:
        xp = problem.xp
        weights, lam = self._weights(problem, self._levels(problem))
        tau_scale = self._balance(problem)
        projector = problem.projector
        terms = 2 if lam > 0 else 1
        tau = tau_scale / (projector.norm() * math.sqrt(terms))
        (sigma,) = dual_steps(tau, [projector.norm()], SAFETY, terms=terms)
        data, background = problem.data, self.options.background

        def prox(z: Any, step: Any) -> Any:
            return kl_dual_prox(z, step, data, background, out=z)

        dual = [ProxTerm(projector, prox, xp.astype(sigma, getattr(xp, problem.dtype)))]
        if lam > 0:
            dual.append(self._tv_term(problem, weights, lam, tau, terms))
        return PDHG(
            dual,
            problem.initial,
            xp.astype(tau, getattr(xp, problem.dtype)),
            nonnegative=problem.nonnegative,
            max_iterations=self.options.iterations,
        )
