"""FBP: filtered back projection for a single tilt axis (ramp filter with the usual windows)."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from edstomo.algorithms import Algorithm, Direct, expand_core
from edstomo.engine import Problem, ReconstructionSolver, SolverOptions
from pydantic import Field

#: Windows applied to the ramp filter, as functions of the angular frequency ω ∈ [−π, π] (radians per bin).
WINDOWS = {
    "ram-lak": lambda w: np.ones_like(w),
    "shepp-logan": lambda w: np.sinc(w / (2 * np.pi)),
    "cosine": lambda w: np.cos(w / 2),
    "hamming": lambda w: 0.54 + 0.46 * np.cos(w),
    "hann": lambda w: 0.5 + 0.5 * np.cos(w),
}


def ramp_filter(n_det: int, window: str, cutoff: float, spacing: float = 1.0) -> np.ndarray:
    """The ramp filter in frequency space, for ``rfft`` of length ``P`` (zero-padded sinogram rows).

    The exact discrete ramp (Kak & Slaney 1988, eq. 3.61: ``h(0) = 1/4τ²``,
    ``h(nτ) = −1/(nπτ)²`` for odd n, 0 for even n) is transformed, multiplied by
    the window and set to 0 above ``cutoff`` × the Nyquist frequency.  Returns
    ``τ · H`` so that filtering is ``irfft(rfft(p) · H)``.
    """
    size = 1 << max(6, math.ceil(math.log2(2 * n_det)))
    n = np.concatenate([np.arange(0, size // 2 + 1), np.arange(-(size // 2) + 1, 0)])
    h = np.zeros(size)
    h[0] = 1.0 / (4 * spacing**2)
    odd = n % 2 == 1
    h[odd] = -1.0 / (np.pi * n[odd] * spacing) ** 2
    response = spacing * np.real(np.fft.rfft(h))
    omega = 2 * np.pi * np.fft.rfftfreq(size)
    response *= WINDOWS[window](omega)
    response[omega > cutoff * np.pi] = 0.0
    return response


def angle_weights(angles: np.ndarray) -> np.ndarray:
    """Δθ of each tilt (radians) for the angular integral of the back projection.

    Interior tilts get half the distance between their neighbours; the first
    and last get the distance to their one neighbour; a series covering 180°
    wraps around (angles are taken modulo π).
    """
    order = np.argsort(angles)
    theta = angles[order]
    if theta.size == 1:
        return np.array([np.pi])
    gaps = np.diff(theta)
    wrap = theta[0] + np.pi - theta[-1]
    full = wrap <= 1.5 * np.median(gaps) + 1e-9
    before = np.concatenate([[wrap if full else gaps[0]], gaps])
    after = np.concatenate([gaps, [wrap if full else gaps[-1]]])
    weights = np.empty_like(theta)
    weights[order] = 0.5 * (before + after)
    return weights


class FBPSolver(ReconstructionSolver):
    """Filtered back projection of each channel, all slices at once.

    Each sinogram row is convolved with a windowed ramp filter (by FFT, zero
    padded) and back projected with the projector's adjoint, weighted by each
    tilt's angular step: ``X = Σ_θ Δθ Wᵀ_θ (h ∗ b_θ)`` (Kak & Slaney 1988, §3.3).
    Exact for complete, noise-free data in the limit of fine sampling; with a
    limited tilt range (a missing wedge) and noise it shows streaks and
    negative values, which iterative solvers avoid.  Clips at 0 when
    ``nonnegativity`` is on (default).

    Notes
    -----
    The maps are on the EDS scale, ``X_A = n f_A C_A ρ`` per pixel length, as SIRT's.
    """

    name = "fbp"
    description = "Filtered back projection (ram-lak, shepp-logan, cosine, hamming, hann), one step"

    class Options(SolverOptions):
        filter: Literal[tuple(WINDOWS)] = Field("ram-lak", description="window of the ramp filter")
        cutoff: float = Field(1.0, gt=0, le=1, description="highest frequency kept, as a fraction of Nyquist")

    def build(self, problem: Problem) -> Algorithm:
        xp, projector = problem.xp, problem.projector
        response = xp.asarray(ramp_filter(projector.n_det, self.options.filter, self.options.cutoff))
        weights = xp.asarray(angle_weights(projector.angles), dtype=getattr(xp, problem.dtype))
        size = 2 * (response.shape[0] - 1)

        def compute() -> Any:
            spectrum = xp.fft.rfft(problem.data, n=size, axis=1)
            spectrum *= expand_core(response, spectrum.ndim - 1, xp)[None]
            filtered = xp.fft.irfft(spectrum, n=size, axis=1)[:, : projector.n_det]
            filtered = xp.astype(filtered, getattr(xp, problem.dtype)) * expand_core(weights, filtered.ndim, xp)
            return projector.adjoint(filtered)

        return Direct(compute, problem.initial)

    def finish(self, algorithm: Algorithm, problem: Problem) -> None:
        if problem.nonnegative:
            problem.xp.maximum(algorithm.x, 0, out=algorithm.x)
