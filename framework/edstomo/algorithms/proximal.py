"""Proximal maps for primal–dual algorithms: Poisson likelihood (KL), least squares, total variation, x ≥ 0.

For a convex function F and a step σ > 0 the proximal map is
``prox_{σF}(z) = argmin_v ½‖v − z‖² + σ F(v)``; primal–dual methods
(:class:`~edstomo.algorithms.PDHG`) need the proximal map of the convex
conjugate F*, which Moreau's identity gives from that of F:
``prox_{σF*}(z) = z − σ prox_{F/σ}(z/σ)``.  Every map here acts element by
element (or, for total variation, pixel by pixel), so batch columns stay
independent; steps and weights may be arrays that broadcast against the
argument (one value per channel, slice or element).

Functions
---------
``kl_divergence(data, model)``
    The Poisson negative log-likelihood of counts ``b`` under mean ``m`` up to
    a constant, ``Σ m − b + b log(b/m)`` (the Kullback–Leibler divergence).
``kl_prox`` / ``kl_dual_prox``
    Proximal maps of ``F(v) = KL(b, v + β)`` and of its conjugate (closed form).
``least_squares_dual_prox``
    Proximal map of the conjugate of ``F(v) = (w/2)‖v − d‖²``.
``project_balls``
    The projection onto pointwise ℓ2 balls (the conjugate of the isotropic
    total-variation norm, i.e. its dual proximal map).
``total_variation``
    The isotropic total variation ``Σ_pixels ‖(∇x)_pixel‖₂`` of an array, with
    optional per-channel weights and channel coupling.
``nonnegative``
    The projection onto ``x ≥ 0`` (the proximal map of its indicator).

References
----------
Chambolle & Pock, *J. Math. Imaging Vis.* 40 (2011) 120–145; Sidky, Jørgensen & Pan,
*Phys. Med. Biol.* 57 (2012) 3065–3091 (the KL conjugate's proximal map).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from . import pdhg_kernels

__all__ = [
    "kl_divergence",
    "kl_dual_prox",
    "kl_prox",
    "least_squares_dual_prox",
    "nonnegative",
    "project_balls",
    "total_variation",
]


def kl_divergence(data: Any, model: Any, background: Any = 0.0) -> float:
    """``Σ (m + β) − b + b log(b / (m + β))`` (``0 log 0 = 0``): the Poisson negative log-likelihood + a constant.

    Parameters
    ----------
    data : array
        Counts ``b`` (≥ 0).
    model : array
        Mean counts ``m`` (same shape; ``m + β > 0`` wherever ``b > 0``).
    background : float or array
        Background ``β`` added to the model (≥ 0).

    Returns
    -------
    float
        The divergence (≥ 0; 0 exactly when ``m + β = b``); ``inf`` when ``b > 0`` where ``m + β = 0``.
    """
    xp = backend.namespace(data, model)
    mean = model + background
    positive = data > 0
    safe_mean = xp.where(positive, mean, xp.ones_like(mean))
    safe_data = xp.where(positive, data, xp.ones_like(data))
    if bool(xp.any(positive & (mean <= 0))):
        return float("inf")
    return float(xp.sum(mean - data) + xp.sum(xp.where(positive, data * xp.log(safe_data / safe_mean), 0.0)))


def kl_prox(z: Any, step: Any, data: Any, background: Any = 0.0) -> Any:
    """``prox_{σF}(z)`` for ``F(v) = Σ (v + β) − b log(v + β)`` (the KL data term in the model ``v``).

    The minimiser of ``½(v − z)² + σ (v + β − b log(v + β))`` is the positive root
    ``v + β = ½ (z + β − σ + √((z + β − σ)² + 4σb))``.

    Parameters
    ----------
    z : array
        The argument.
    step : float or array
        σ > 0 (broadcasts against ``z``).
    data, background
        Counts ``b`` ≥ 0 and background ``β`` ≥ 0.
    """
    xp = backend.namespace(z)
    shifted = z + background - step
    return 0.5 * (shifted + xp.sqrt(shifted * shifted + 4.0 * step * data)) - background


def kl_dual_prox(z: Any, step: Any, data: Any, background: Any = 0.0, out: Any = None) -> Any:
    """``prox_{σF*}(z)`` for the KL data term ``F(v) = Σ (v + β) − b log(v + β)``.

    ``F*(y) = −βy − b log(1 − y)`` (+ a constant) for ``y < 1``; its proximal map is
    ``y = ½ (1 + u − √((u − 1)² + 4σb))`` with ``u = z + σβ`` (Sidky et al. 2012),
    which equals ``z − σ prox_{F/σ}(z/σ)`` (Moreau).  Where ``b = 0`` it is
    ``min(u, 1)``.

    Parameters
    ----------
    z : array
        The argument (``y + σ K x̄`` in PDHG).
    step : float or array
        σ > 0.
    data, background
        Counts ``b`` ≥ 0 and background ``β`` ≥ 0.
    out : array, optional
        Where to write the result (may be ``z`` itself).

    Returns
    -------
    array
        The new dual variable (``< 1`` wherever ``b > 0``).
    """
    if out is not None and pdhg_kernels.kl_dual_prox(z, step, data, background, out):
        return out  # one compiled pass (NumPy with numba), no temporaries
    xp = backend.namespace(z)
    u = z + step * background if not _is_zero(background) else z
    root = xp.sqrt((u - 1.0) ** 2 + (4.0 * step) * data)
    result = 0.5 * (1.0 + u - root)
    if out is None:
        return result
    out[...] = result
    return out


def least_squares_dual_prox(z: Any, step: Any, target: Any, weight: Any, out: Any = None) -> Any:
    """``prox_{σF*}(z)`` for ``F(v) = (w/2)‖v − d‖²``: ``(z − σ d) / (1 + σ/w)``.

    Parameters
    ----------
    z : array
        The argument.
    step : float or array
        σ > 0.
    target : array
        ``d``.
    weight : float or array
        ``w`` > 0 (the inverse noise variance of a Gaussian likelihood).
    out : array, optional
        Where to write the result.
    """
    result = (z - step * target) / (1.0 + step / weight)
    if out is None:
        return result
    out[...] = result
    return out


def project_balls(p: Any, radius: Any, axes: Sequence[int], out: Any = None) -> Any:
    """Project ``p`` onto ℓ2 balls taken over ``axes``: ``p / max(1, ‖p‖/r)`` at every other index.

    This is the proximal map of the conjugate of ``r‖·‖₂`` (an indicator), for any
    step: the dual update of isotropic total variation.  ``radius`` may vary
    over the other axes (e.g. a weight per channel or slice) but must be
    constant along ``axes``.

    Parameters
    ----------
    p : array
        Dual variable, e.g. gradients ``(nz, nx, 2, channels, slices)``.
    radius : float or array
        r ≥ 0 (broadcasts against ``p`` with length 1 along ``axes``).
    axes : sequence of int
        The axes whose values form one vector (the gradient components, and
        the channel axis for channel-coupled total variation).
    out : array, optional
        Where to write the result (may be ``p``).
    """
    xp = backend.namespace(p)
    axes = tuple(int(a) for a in axes)
    norm = xp.sqrt(xp.sum(p * p, axis=axes, keepdims=True))
    scale = xp.maximum(norm, radius)
    positive = scale > 0
    factor = xp.where(positive, radius / xp.where(positive, scale, xp.ones_like(scale)), xp.zeros_like(scale))
    factor = xp.where(norm <= radius, xp.ones_like(factor), factor)
    if out is None:
        return p * factor
    out *= factor
    return out


def total_variation(
    gradient: Any, x: Any, weights: Any = 1.0, component_axis: int | None = None, coupled: Sequence[int] = ()
) -> Any:
    """Isotropic total variation ``Σ ‖w ∇x‖₂`` per batch column (or per group of coupled axes).

    Parameters
    ----------
    gradient : Gradient
        The finite-difference operator (:class:`edstomo.operators.Gradient`).
    x : array
        Its input, ``domain_shape + batch``.
    weights : float or array
        Weights multiplying the gradient (broadcast against ``∇x`` with the
        component axis; e.g. one per channel).
    component_axis : int, optional
        Axis of the gradient components in ``∇x`` (default: right after the
        gradient's core axes).
    coupled : sequence of int
        Further axes of ``∇x`` included in each pixel's norm (e.g. the channel
        axis for channel-coupled, "vectorial", total variation).

    Returns
    -------
    array
        The total variation summed over the gradient's core axes; shape: the
        remaining batch axes (coupled axes removed).
    """
    xp = backend.namespace(x)
    g = gradient.forward(x) * weights
    axis = len(gradient.domain_shape) if component_axis is None else component_axis
    norms = xp.sqrt(xp.sum(g * g, axis=(axis, *coupled)))
    core = tuple(range(len(gradient.domain_shape)))
    return xp.sum(norms, axis=core)


def nonnegative(x: Any) -> Any:
    """Project onto ``x ≥ 0`` in place and return ``x``."""
    xp = backend.namespace(x)
    xp.maximum(x, 0, out=x)
    return x


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == 0
