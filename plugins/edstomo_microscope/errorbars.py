"""Error bars of the pipeline's weight fractions (parametric bootstrap) and the figures of its automatic choices.

:func:`add_uncertainty` runs :func:`edstomo.uncertainty.bootstrap` for every
volume of the pipeline: the counts of the reconstructed lines are redrawn as
Poisson draws of the data each solver predicts, each replica is smoothed as the
loader smoothed the line maps (``smooth``, in the projection plane), filtered
as the pipeline filtered the sinograms (``sinogram_sigma``), padded, solved as
a batch column of one solve (with the solver's automatic choices, made once;
response ratios refitted to each replica in ``ratios="fit"`` mode, kept in
``"physics"`` mode), cropped and quantified with its own threshold.  The maps
get their per-voxel ``uncertainty``; the particle means get 95 % intervals.
After an absorption correction the method's (corrected) maps are bootstrapped
from the corrected series: the measured counts ``Poisson(t μ̂)`` are redrawn,
smoothed and divided by the last correction's ray transmissions ``t``, held
fixed (the correction is not iterated per replica); the ``<method>-uncorrected``
maps get no error bars.

Approximations (recorded in the notes): the line maps are background-subtracted
and normalised counts, redrawn as if Poisson; the alignment and the
background fits are not redone per replica.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from edstomo import figures
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo.preprocessing import gaussian_filter
from edstomo.registry import plugins
from edstomo.uncertainty import bootstrap, format_fraction
from scipy import ndimage

__all__ = ["add_uncertainty", "choice_figures", "particle_means", "smoothing_dispersion", "uncertainty_figures"]


def add_uncertainty(
    state: Any,
    pad_positions: Callable[[TiltSeries, int], TiltSeries],
    crop_volume: Callable[..., Volume],
    thresholds: Mapping[str, float | str],
) -> dict[str, Any]:
    """Bootstrap every volume of a pipeline state; replaces ``state.maps`` by maps with ``uncertainty``.

    ``pad_positions`` and ``crop_volume`` are the pipeline's padding of the sinograms and cropping of
    the volumes, ``thresholds`` its threshold of each method ("esf" or a number).  Returns
    ``{method: {"particle": {element: {mean, sd, bias, error, low, high}}, "record": ...}}``.
    """
    options = state.options
    series: TiltSeries = state.series
    width = round(options.pad * series.n_positions)

    def smoothed(replica: TiltSeries) -> TiltSeries:  # what the data went through before the state's series
        if options.smooth > 0:
            replica = gaussian_filter(replica, options.smooth, axes="projection")
        if options.sinogram_sigma > 0:
            replica = gaussian_filter(replica, options.sinogram_sigma)
        return replica

    result = {}
    corrections = state.corrections
    for method, solver in state.solvers.items():
        if options.ratios == "fit" and "ratios" in solver.fits_from_data:
            solver = solver.with_options(ratios=None)  # refitted to every replica
        volume = state.volumes[method]
        quantifier = plugins.quantifier_for(volume.factor)(state.factors, threshold=thresholds[method], fallback="otsu")
        corrected = corrections.get(method)
        estimate = bootstrap(
            solver,
            series if corrected is None else corrected.series,
            quantifier,
            replicas=options.uncertainty,
            seed=options.seed,
            preprocess=lambda s: pad_positions(s, width),
            replicate=smoothed,
            postprocess=lambda v: crop_volume(v, width, series.experiment),
            transmission=None if corrected is None else corrected.transmission,
        )
        state.maps[method] = estimate.maps
        means = estimate.region_means({"particle": estimate.maps.particle_mask})
        result[method] = {
            "particle": {element: entry.to_dict() for element, entry in means.get("particle", {}).items()},
            "record": estimate.record,
        }
        if estimate.failed:
            state.notes.append(f"uncertainty: {estimate.failed} replicas of {method} could not be quantified")
    state.notes.append(
        "uncertainty: line maps redrawn as Poisson counts of the predicted data; alignment and background fits "
        "not redone per replica" + ("; response ratios kept (physics mode)" if options.ratios == "physics" else "")
    )
    if corrections:
        state.notes.append(
            f"uncertainty: error bars of the absorption-corrected maps of {', '.join(corrections)} (measured counts "
            "redrawn, the last correction's transmissions held fixed); the '-uncorrected' maps have none"
        )
    return result


def smoothing_dispersion(smooth: float, sinogram_sigma: float = 0.0) -> float:
    """Variance / mean of Poisson counts after the pipeline's smoothing: ``Σ k²`` of its kernel.

    ``smooth``: σ (pixels) of the Gaussian on each line map (the projection plane);
    ``sinogram_sigma``: σ of the Gaussian over tilts × positions.  1 without smoothing.
    """
    if smooth <= 0 and sinogram_sigma <= 0:
        return 1.0
    size = 2 * int(4 * max(smooth, sinogram_sigma, 1.0)) + 1
    delta = np.zeros((size, size, size))  # (tilts, positions, slices)
    delta[size // 2, size // 2, size // 2] = 1.0
    kernel = ndimage.gaussian_filter(delta, (0.0, smooth, smooth)) if smooth > 0 else delta
    if sinogram_sigma > 0:
        kernel = ndimage.gaussian_filter(kernel, (sinogram_sigma, sinogram_sigma, 0.0))
    return float(np.sum(kernel**2))


def particle_means(summary: Mapping[str, Any], method: str) -> str:
    """``"Fe 14.2 ± 0.8 wt%, Ni …"`` of one method from a pipeline summary (without ± when it has no uncertainty)."""
    with_errors = summary.get("uncertainty", {}).get(method, {}).get("particle")
    if with_errors:
        return ", ".join(format_fraction(e, v["mean"], v["error"]) for e, v in with_errors.items())
    elements = summary["findings"][method]["elements"]
    return ", ".join(format_fraction(e, v["mean_weight_fraction"]) for e, v in elements.items())


def uncertainty_figures(folder: str | Path, maps: Mapping[str, CompositionMaps]) -> list[Path]:
    """``uncertainty_<method>.png``: orthoslices of every element's σ (weight fraction), for maps that have one."""
    from .pictures import _finish, _orthoslices, plane_indices

    written = []
    for method, result in maps.items():
        if result.uncertainty is None:
            continue
        rows, limits = {}, {}
        for index, element in enumerate(result.elements):
            sigma = result.uncertainty[index]
            inside = sigma[result.particle_mask] if result.particle_mask.any() else sigma.ravel()
            low, high, text = figures.state_limits(inside, percentile=99)
            rows[element] = (sigma, f"{element} σ (weight fraction)")
            limits[element] = (low, max(high, 1e-4), text)
        fig = _orthoslices(
            rows, float(result.pixel_size.m_as("nm")), plane_indices(result), limits, f"Uncertainty σ, {method}"
        )
        written.append(_finish(fig, Path(folder) / f"uncertainty_{method}.png", ("png",), figures.DPI))
    return written


def choice_figures(folder: str | Path, solvers: Mapping[str, Any]) -> list[Path]:
    """``selection_<solver>.png`` for every solver whose options were chosen from the data."""
    from edstomo.selection_figure import selection_figure

    return [
        selection_figure(solver.auto_choice, Path(folder) / f"selection_{name}.png", f"{name}: automatic choice")
        for name, solver in solvers.items()
        if getattr(solver, "auto_choice", None) is not None
    ]
