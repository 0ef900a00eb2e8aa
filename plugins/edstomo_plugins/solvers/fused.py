"""Fused HAADF–EDS reconstruction: Poisson terms of every line + a HAADF term through eq. 15, + TV, by PDHG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from edstomo import backend
from edstomo.algorithms import PDHG, Algorithm, DualTerm
from edstomo.algorithms.pdhg import add_adjoint
from edstomo.algorithms.proximal import kl_dual_prox, least_squares_dual_prox
from edstomo.data import HAADF, TiltSeries
from edstomo.engine import Problem
from edstomo.errors import InputError
from edstomo.operators import BlockDiagonal, MixChannels, ParallelBeamProjector
from edstomo.preprocessing import ResponseRatios, gaussian_filter, response_ratios
from pydantic import BeforeValidator, Field, PositiveFloat

from .poisson import SAFETY, PoissonOptions, PoissonSolverBase

__all__ = ["RATIO_FILTER_SIGMA", "FusedDataTerm", "FusedSolver"]

#: σ (pixels) of the Gaussian filter applied to the sinograms before the response ratios are fitted
#: (the paper's filter; it reduces the attenuation of a least-squares fit on noisy regressors).
RATIO_FILTER_SIGMA = 0.8


def _ratio_mapping(value: Any) -> Any:
    return value.ratios if isinstance(value, ResponseRatios) else value


class FusedDataTerm(DualTerm):
    """The data terms of ``fused``: one KL term per line and the HAADF least-squares term.

    The dual variable has k + 1 sinogram channels: the k lines' (KL terms) and
    the HAADF's (``(w/2)‖W h(x) − I_H‖²``, ``h(x) = Σ_A r_A m_A (x_A / m_A)^γ``).
    For γ = 1, ``h(x) = Σ_A r_A x_A`` is linear and the term is PDHG on
    ``K = ([I_k; rᵀ] ⊗ I) ∘ (I_k ⊗ W)``: the maps are projected once and mixed in
    the sinogram domain, and the adjoint mixes the duals there before one back
    projection (as HEBT's operator, eq. 17).  For γ ≠ 1 the map ``h(x̄)`` is
    projected as a (k+1)-th channel and the HAADF row is linearised at the
    extrapolated point x̄ (the nonlinear PDHG of Valkonen 2014), which converges
    only locally.

    Parameters
    ----------
    projector : ParallelBeamProjector
        W.
    counts : array, shape (tilts, positions, k, slices)
        EDS counts.
    haadf : array, shape (tilts, positions, 1, slices)
        The HAADF sinogram.
    ratios, references : array, shape (1, 1, k, 1)
        r_A and m_A.
    weight : float or array
        w, broadcasting against the HAADF sinogram.
    sigma : array, shape (1, 1, k + 1, slices or 1)
        Dual steps of the k KL rows and the HAADF row.
    background : float
        β of the KL terms.
    gamma : float
        γ > 0.
    """

    def __init__(
        self,
        projector: ParallelBeamProjector,
        counts: Any,
        haadf: Any,
        ratios: Any,
        references: Any,
        weight: Any,
        sigma: Any,
        background: float,
        gamma: float,
    ) -> None:
        lines = counts.shape[2]
        mixing = np.vstack([np.eye(lines), backend.to_numpy(ratios).reshape(1, -1)])
        super().__init__(MixChannels(mixing, projector.range_shape) @ BlockDiagonal(projector, lines), sigma)
        self.projector, self.counts, self.haadf = projector, counts, haadf
        self.ratios, self.references, self.weight = ratios, references, weight
        self.background, self.gamma, self.lines = background, float(gamma), lines
        self._slope: Any = ratios

    def start(self, x: Any) -> Any:
        xp = backend.namespace(x)
        return xp.zeros((*self.projector.range_shape, self.lines + 1, *x.shape[3:]), dtype=x.dtype)

    def ascend(self, y: Any, xbar: Any) -> Any:
        xp, k = backend.namespace(xbar), self.lines
        if self.gamma == 1.0:
            projected = self.projector.forward(xbar)
            model = xp.sum(projected * self.ratios, axis=2, keepdims=True)
        else:
            relative = xp.maximum(xbar, 0) / self.references
            image = xp.sum(self.ratios * self.references * relative**self.gamma, axis=2, keepdims=True)
            self._slope = self.ratios * self.gamma * relative ** (self.gamma - 1.0)
            both = self.projector.forward(xp.concat([xbar, image], axis=2))
            projected, model = both[:, :, :k], both[:, :, k:]
        y[:, :, :k] += self.sigma[:, :, :k] * projected
        y[:, :, k:] += self.sigma[:, :, k:] * model
        return self.prox(y)

    def prox(self, z: Any) -> Any:
        k, sigma = self.lines, self.sigma
        kl_dual_prox(z[:, :, :k], sigma[:, :, :k], self.counts, self.background, out=z[:, :, :k])
        least_squares_dual_prox(z[:, :, k:], sigma[:, :, k:], self.haadf, self.weight, out=z[:, :, k:])
        return z

    def adjoint(self, y: Any) -> Any:
        k = self.lines
        if self.gamma == 1.0:
            return self.projector.adjoint(y[:, :, :k] + self.ratios * y[:, :, k:])
        back = self.projector.adjoint(y)
        return back[:, :, :k] + self._slope * back[:, :, k:]

    def add_adjoint(self, y: Any, out: Any) -> None:
        if self.gamma != 1.0:
            out += self.adjoint(y)
            return
        k = self.lines  # mixed in the sinogram domain, then one back projection added in place
        add_adjoint(self.projector, y[:, :, :k] + self.ratios * y[:, :, k:], out)


class FusedSolver(PoissonSolverBase):
    """Fused HAADF–EDS reconstruction: Poisson likelihood of every line + HAADF term (eq. 15) + TV, by PDHG.

    Minimises over the EDS-scale maps ``X_A ≥ 0``

        Σ_A KL(b_A, W X_A + β) + (w/2) ‖W Σ_A r_A m_A (X_A/m_A)^γ − I_H‖² + λ TV_w(X)

    — the Poisson terms of ``poisson-tv``, plus the HAADF sinogram ``I_H`` through
    the paper's linear model (eq. 15, ``I_H ≈ Σ_A r_A I_A``; γ = 1, the default)
    or a Schwartz-style power law (γ ≠ 1, m_A = b̄_A / positions: a reference map
    value at which the two models agree).  The HAADF weight follows a default
    rule: the HAADF noise variance is taken as the EDS variance on the HAADF
    scale at a typical ray, ``Σ_A r_A² b̄_A``, divided by ``haadf_weight`` (ω, the
    HAADF's precision relative to the summed EDS lines), so
    ``w = ω / Σ_A r_A² b̄_A``: the HAADF term keeps the weight ω relative to the EDS
    terms at every dose (conservative at low EDS dose, where the HAADF's relative
    precision in fact grows).

    Without ``ratios`` the response ratios are fitted to the data (eq. 15,
    non-negative least squares on the sinograms filtered with σ = 0.8 px, as
    the paper did); :meth:`prepare` fixes them (and the count levels) once for
    a series solved in chunks.

    Notes
    -----
    The maps are on the EDS scale, ``X_A = n f_A C_A ρ`` per pixel length, as
    SIRT's (``produces = "f_A"``), so the ``eds`` quantifier (eq. 12) applies
    unchanged: the weight fractions depend on the EDS factors f_A only, and a
    small error of the fitted r_A moves only how the HAADF shapes the maps, not
    the calibration of the fractions (with HAADF-scale maps and eq. 18 it would
    enter the fractions directly).
    """

    name = "fused"
    description = "Fused HAADF-EDS: Poisson terms of the lines + HAADF term (eq. 15) + TV, by PDHG; EDS-scale maps"
    requires = frozenset({"lines", "haadf", "counts"})
    produces = "f_A"
    fits_from_data = ("levels", "ratios")
    #: λ₀ = 2.8 at every dose: the best λ on the calibration phantom did not change with the dose.
    lambda_scale = 2.8
    lambda_exponent = 0.0
    #: Provenance of ratios fitted to the data (set by the fit, copied with the solver by ``prepare``).
    _estimated: ClassVar[dict[str, Any]] = {}

    class Options(PoissonOptions):
        ratios: Annotated[dict[str, PositiveFloat] | None, BeforeValidator(_ratio_mapping)] = Field(
            None, description="response ratios r_A per line (default: fitted to the filtered data, eq. 15)"
        )
        haadf_weight: float = Field(
            100.0, gt=0, allow_inf_nan=False, description="ω: HAADF precision relative to the summed EDS lines"
        )
        gamma: float = Field(1.0, gt=0, allow_inf_nan=False, description="power γ of the HAADF model (1: eq. 15)")

    def check(self, data: TiltSeries, channels: list[str]) -> None:
        super().check(data, channels)
        ratios = self.options.ratios
        if ratios is not None:
            missing = [c for c in channels if c not in ratios]
            if missing:
                raise InputError(f"ratios: given for {list(ratios)}, but not for the reconstructed lines {missing}")
        haadf = np.asarray(data.channel(HAADF))
        if not np.all(np.isfinite(haadf)):
            raise InputError(f"data: the {HAADF} channel holds NaN or infinite values")

    def prepare(self, data: TiltSeries, *, known: Sequence[Any] = ()) -> FusedSolver:
        """The ratios and count levels fitted on the whole series, then the automatic options chosen."""
        solver = self
        if self.options.ratios is None:
            solver = self.with_options(ratios=self._fitted(data, self.channels_for(data)))  # type: ignore[assignment]
        return PoissonSolverBase.prepare(solver, data, known=known)  # type: ignore[return-value]

    def thinned(self, fraction: float) -> FusedSolver:
        """Given ratios (HAADF per EDS count) and count levels are those of the whole counts; a fit part holds
        ``fraction`` of the EDS counts, so its ratios are ``r_A / fraction`` (the HAADF is not thinned)."""
        solver = super().thinned(fraction)
        if solver.options.ratios is None:
            return solver  # type: ignore[return-value]
        return solver.with_options(ratios={c: r / fraction for c, r in solver.options.ratios.items()})  # type: ignore[return-value]

    def _fitted(self, data: TiltSeries, channels: list[str]) -> dict[str, float]:
        fit = response_ratios(gaussian_filter(data.select([HAADF, *channels]), RATIO_FILTER_SIGMA), channels)
        zero = [c for c in channels if fit[c] <= 0]
        if zero:
            raise InputError(
                f"data: the non-negative fit of the HAADF signal gives r_A = 0 for {zero} (R² = {fit.r_squared:.3f}); "
                "give ratios explicitly or leave those lines out"
            )
        self._estimated = {"ratios_estimated": True, "r_squared": fit.r_squared}  # kept by the prepared copies
        return {c: fit[c] for c in channels}

    def build(self, problem: Problem) -> Algorithm:
        xp, channels, projector = problem.xp, problem.channels, problem.projector
        dtype = getattr(xp, problem.dtype)
        ratios = self.options.ratios if self.options.ratios is not None else self._fitted(problem.series, channels)
        self._record = dict(self._estimated)
        r = np.array([float(ratios[c]) for c in channels])
        levels = self._levels(problem)
        b = np.array([levels[c] for c in channels])
        weights, lam = self._weights(problem, levels)
        haadf_weight = self.options.haadf_weight / float(np.sum(r * r * b))
        references = b / projector.n_det
        self._record.update(ratios_used=dict(zip(channels, r.tolist())), haadf_weight_used=haadf_weight)

        terms = 3 if lam > 0 else 2
        norm = projector.norm()
        tau = self._balance(problem) / (norm * math.sqrt(terms))
        sigma_lines = SAFETY / (terms * tau * norm**2)
        ratios_column = xp.reshape(xp.asarray(r, dtype=dtype), (1, 1, -1, 1))
        reach = xp.sum(ratios_column * ratios_column * tau, axis=2, keepdims=True)  # Σ_A r_A² τ_A
        if self.options.gamma != 1.0:
            reach = reach * self.options.gamma**2  # the slope at the reference map values
        sigma_haadf = SAFETY / (terms * reach * norm**2)
        sigma = xp.concat([sigma_lines, xp.broadcast_to(sigma_haadf, (1, 1, 1, sigma_lines.shape[3]))], axis=2)
        data_term = FusedDataTerm(
            projector,
            problem.data,
            problem.sinograms([HAADF]),
            ratios_column,
            xp.reshape(xp.asarray(references, dtype=dtype), (1, 1, -1, 1)),
            haadf_weight,
            xp.astype(sigma, dtype),
            self.options.background,
            self.options.gamma,
        )
        dual: list[DualTerm] = [data_term]
        if lam > 0:
            dual.append(self._tv_term(problem, weights, lam, tau, terms))
        return PDHG(
            dual,
            problem.initial,
            xp.astype(tau, dtype),
            nonnegative=problem.nonnegative,
            max_iterations=self.options.iterations,
        )
