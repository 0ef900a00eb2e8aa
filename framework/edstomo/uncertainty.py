"""Error bars of weight fractions by a parametric bootstrap.

The data are redrawn from the fitted forward model and everything that
depends on them is done again for every replica:

1. the estimate: the solver's maps of the (preprocessed) data, quantified,
   and the mean data ``μ̂`` they predict
   (:meth:`~edstomo.engine.ReconstructionSolver.predict`) with the maps set to
   0 outside the particle (its mask grown by one voxel): the fitted model has
   no material where the quantifier found none, so the replicas' background
   is not the clipped noise of the estimate's;
2. ``replicas`` new series: the reconstructed channels (the EDS lines) drawn as
   ``Poisson(μ̂)``, the other channels (the HAADF) as measured; for data
   corrected for absorption (divided by ray transmissions ``t``), the measured
   counts ``Poisson(t μ̂)`` divided by ``t``, with ``t`` held fixed;
3. each replica goes through the same preprocessing (e.g. the sinogram filter),
   the data-dependent fits of the solver (e.g. the response ratios r_A, fitted
   to each replica), the reconstruction and the quantification (its own ESF
   threshold).  The replicas are solved as batch columns of one solve
   (:meth:`~edstomo.engine.ReconstructionSolver.batch`; columns are independent),
   so 32 replicas cost far less than 32 solves;
4. the per-voxel standard deviation of the replicas' weight fractions is the
   noise σ; the bootstrap bias is ``mean(replicas) − estimate``.

Resampling cannot see what the data cannot: the parts of the sample a limited
tilt range and a finite iteration count leave out (missing-wedge artefacts).
At high dose these dominate (on the paper's phantom at its dose the noise-free
reconstruction errs by 2.2 wt% on average inside the regions, the noise by
1.1 wt%).  A *phase model* estimates them: the particle is split into phases by
k-means of the estimate's weight fractions (k = min(elements, 4)), the maps are
replaced by their mean in each phase (sharp interfaces, as a real particle
has), their data are simulated
(:meth:`~edstomo.engine.ReconstructionSolver.simulate`), reconstructed
noise-free as one more batch column with the replicas and quantified; its
error against the model is :attr:`Bootstrap.model_bias`.  The uncertainty
reported with the maps is ``sqrt(σ² + bias² + model_bias²)`` per voxel (the
three as independent sources: noise, smoothing of what the data resolve, and
what they do not resolve); intervals of region means are
``estimate ± 1.96 sqrt(sd² + bias² + model_bias²)`` of the region means (see
``docs/uncertainty.md`` for the calibration).  A region mean is a composition:
each replica's (and the phase model's) is taken over the region's voxels
inside that replica's own particle — a voxel it leaves out of its particle
has no composition, not one of 0.  The per-voxel σ keeps those zeros: there
the voxel's membership itself is uncertain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2

from . import backend, provenance, resources
from .algorithms.callbacks import Callback, IterationState
from .data import CompositionMaps, TiltSeries, Volume
from .errors import InputError

__all__ = ["Bootstrap", "RegionMean", "bootstrap", "format_fraction", "region_means"]

#: Standard normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054
#: Most phases of the phase model (k-means of the estimate's weight fractions).
MAX_PHASES = 4
#: Most bytes (estimated) of one solve of replicas as batch columns; more replicas are solved in
#: groups.  A constant, not the memory free now, so that the same seed gives the same numbers on
#: any machine.
BATCH_BYTES = 1024**3


class _FinalEstimate(Callback):
    """Keeps the final estimate and the solver's prediction function, to predict the data of the fitted model."""

    def on_end(self, state: IterationState) -> None:
        self.algorithm = state.algorithm
        self.x = state.algorithm.x.copy()

    def predicted(self, support: np.ndarray | None) -> np.ndarray:
        """The mean data of the final maps, set to 0 outside ``support`` ``(nz, nx, slices)`` when given."""
        x = self.x
        if support is not None:
            xp = backend.namespace(x)
            x = x * xp.asarray(support[:, :, None, :], dtype=x.dtype)
        return np.asarray(backend.to_numpy(self.algorithm.predict(x)), dtype=np.float64)

    def phase_model(self, labels: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Maps constant in each phase (the mean of the final maps over it; 0 where ``labels`` < 0), in the
        solver layout, and the mean data of every channel they predict (:meth:`ReconstructionSolver.simulate`)."""
        x = np.asarray(backend.to_numpy(self.x), dtype=np.float64)
        model = np.zeros_like(x)
        for phase in range(int(labels.max()) + 1):
            inside = labels == phase
            if inside.any():
                means = x.transpose(0, 1, 3, 2)[inside].mean(axis=0)  # one value per channel
                for k, value in enumerate(means):
                    model[:, :, k, :][inside] = value
        xp = backend.namespace(self.x)
        simulated = self.algorithm.simulate(xp.asarray(model, dtype=self.x.dtype))
        return model, {c: np.asarray(backend.to_numpy(v), dtype=np.float64) for c, v in simulated.items()}


def _phases(maps: CompositionMaps, shape: tuple[int, int], seed: int) -> np.ndarray | None:
    """Phase labels of the particle (k-means of the weight fractions, k = min(elements, MAX_PHASES)),
    -1 outside its mask, on the solver grid ``shape`` (a cropped grid is padded by its edges)."""
    if maps.mask is None or maps.mask.sum() < 2 * len(maps.elements):
        return None
    compositions = maps.weight_fractions[:, maps.mask].T
    count = min(len(maps.elements), MAX_PHASES)
    _, found = kmeans2(compositions, count, seed=np.random.default_rng(seed), minit="++")
    labels = np.full(maps.shape, -1)
    labels[maps.mask] = found
    return _on_grid(labels, shape)


def _on_grid(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map of the (cropped) quantified grid placed on the solver grid ``shape``, padded by its edges."""
    extra = shape[0] - values.shape[0]
    if extra < 0 or extra % 2 or shape[1] - values.shape[1] != extra:
        raise InputError(f"postprocess: maps of {values.shape[:2]} cannot be placed on the solver grid {shape}")
    return np.pad(values, ((extra // 2,) * 2, (extra // 2,) * 2, (0, 0)), mode="edge")


def _support(maps: CompositionMaps, shape: tuple[int, int]) -> np.ndarray | None:
    """The particle mask grown by one voxel, on the solver's grid ``shape`` (a cropped grid is padded by its edges)."""
    if maps.mask is None:
        return None
    return _on_grid(ndimage.binary_dilation(maps.mask, structure=np.ones((3, 3, 1), bool)), shape)


@dataclass(frozen=True)
class RegionMean:
    """The mean weight fraction of one element in one region, with its bootstrap spread.

    Attributes
    ----------
    mean : float
        Of the estimate (a fraction, 0 … 1).
    sd : float
        Standard deviation of the replicas' region means (each over the region's
        voxels inside that replica's particle: a voxel a replica leaves out has no
        composition, not a composition of 0).
    bias : float
        Mean of the replicas' region means minus ``mean``.
    model_bias : float
        The phase model's mean error over the region's voxels inside its
        reconstruction's particle (0 without a phase model).
    low, high : float
        The 95 % interval ``mean ± 1.96 sqrt(sd² + bias² + model_bias²)``.
    voxels : int
        Voxels of the region.
    """

    mean: float
    sd: float
    bias: float
    model_bias: float
    low: float
    high: float
    voxels: int

    @property
    def error(self) -> float:
        """``sqrt(sd² + bias² + model_bias²)``: the standard error used for the interval."""
        return float(np.sqrt(self.sd**2 + self.bias**2 + self.model_bias**2))

    def to_dict(self) -> dict[str, float]:
        return {
            "mean": self.mean,
            "sd": self.sd,
            "bias": self.bias,
            "model_bias": self.model_bias,
            "error": self.error,
            "low": self.low,
            "high": self.high,
            "voxels": self.voxels,
        }


@dataclass
class Bootstrap:
    """The estimate and its replicas.

    Attributes
    ----------
    maps : CompositionMaps
        The estimate, with ``uncertainty`` = :attr:`uncertainty`.
    replicas : ndarray, shape ``(replicas, elements, nz, nx, slices)``
        The replicas' weight fractions (float32; the statistics are taken in float64).
    fitted : list of dict
        The options fitted to each replica (e.g. ``{"ratios": {...}}``); empty dicts when none.
    thresholds : list of float
        Each replica's particle threshold.
    seconds : float
        Wall time of the replicas (solve and quantify).
    failed : int
        Replicas that could not be quantified (left out).
    model_bias : ndarray or None
        The phase model's error per voxel (reconstructed minus model weight fractions).
    model_mask : ndarray or None
        The particle of the reconstructed phase model.
    record : dict
        What the provenance step ``bootstrap`` records.
    """

    maps: CompositionMaps
    replicas: np.ndarray
    fitted: list[dict[str, Any]]
    thresholds: list[float]
    seconds: float
    failed: int = 0
    model_bias: np.ndarray | None = None
    model_mask: np.ndarray | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def sd(self) -> np.ndarray:
        """Per-voxel standard deviation of the replicas (elements, nz, nx, slices)."""
        sd = np.empty(self.replicas.shape[1:])
        for index in range(self.replicas.shape[1]):  # per element: numpy's std holds a float64 copy of its input
            sd[index] = self.replicas[:, index].std(axis=0, ddof=1, dtype=np.float64)
        return sd

    @property
    def bias(self) -> np.ndarray:
        """Per-voxel bias estimate ``mean(replicas) − estimate``."""
        return self.replicas.mean(axis=0, dtype=np.float64) - self.maps.weight_fractions

    @property
    def uncertainty(self) -> np.ndarray:
        """Per-voxel error ``sqrt(sd² + bias² + model_bias²)`` (what ``maps.uncertainty`` holds)."""
        model = 0.0 if self.model_bias is None else self.model_bias
        return np.sqrt(self.sd**2 + self.bias**2 + model**2)

    def region_means(self, regions: Mapping[str, np.ndarray]) -> dict[str, dict[str, RegionMean]]:
        """Mean weight fractions of every element in each region, with intervals (see :func:`region_means`)."""
        return region_means(self.maps, self.replicas, regions, self.model_bias, self.model_mask)

    def ratio_scatter(self) -> dict[str, dict[str, float]]:
        """Mean and relative standard deviation of each fitted ratio over the replicas (empty when none)."""
        ratios = [f["ratios"] for f in self.fitted if f.get("ratios")]
        if len(ratios) < 2:
            return {}
        lines = list(ratios[0])
        values = np.array([[r[line] for line in lines] for r in ratios])
        mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1)
        return {line: {"mean": float(m), "relative_sd": float(s / m)} for line, m, s in zip(lines, mean, sd)}


def region_means(
    maps: CompositionMaps,
    replicas: np.ndarray,
    regions: Mapping[str, np.ndarray],
    model_bias: np.ndarray | None = None,
    model_mask: np.ndarray | None = None,
) -> dict[str, dict[str, RegionMean]]:
    """Mean weight fraction of every element in each region of the estimate and of the replicas.

    Parameters
    ----------
    maps : CompositionMaps
        The estimate.
    replicas : ndarray, shape ``(replicas, elements, nz, nx, slices)``
        The bootstrap replicas of its weight fractions.
    regions : mapping of str to boolean array ``(nz, nx, slices)``
        The regions (e.g. phases, or the particle mask).
    model_bias : ndarray, optional
        The phase model's error per voxel (:attr:`Bootstrap.model_bias`), averaged over each region.
    model_mask : boolean ndarray ``(nz, nx, slices)``, optional
        The particle of the reconstructed phase model (:attr:`Bootstrap.model_mask`): its error is
        averaged over the region's voxels inside it.

    Returns
    -------
    dict
        ``{region: {element: RegionMean}}``; an empty region is left out.
    """
    result: dict[str, dict[str, RegionMean]] = {}
    particles = [replica.sum(axis=0) > 0 for replica in replicas]  # each replica's particle, once
    for name, region in regions.items():
        region = np.asarray(region, dtype=bool)
        if region.shape != maps.shape:
            raise InputError(f"regions: {name!r} has shape {region.shape}; the maps have {maps.shape}")
        if not region.any():
            continue
        inside = [region & particle for particle in particles]
        counted = [r for r, where in enumerate(inside) if where.any()]
        modelled_region = region if model_mask is None else region & model_mask
        entry = {}
        for index, element in enumerate(maps.elements):
            mean = float(maps.weight_fractions[index][region].mean())
            values = np.array([replicas[r, index][inside[r]].mean(dtype=np.float64) for r in counted])
            sd, bias = _spread(values, mean)
            modelled = 0.0
            if model_bias is not None and modelled_region.any():
                modelled = float(model_bias[index][modelled_region].mean())
            half = Z95 * float(np.sqrt(sd**2 + bias**2 + modelled**2))
            entry[element] = RegionMean(mean, sd, bias, modelled, mean - half, mean + half, int(region.sum()))
        result[name] = entry
    return result


def _spread(values: np.ndarray, mean: float) -> tuple[float, float]:
    """Standard deviation of ``values`` and their mean minus ``mean`` (NaN with fewer than two values)."""
    if values.size < 2:
        return float("nan"), float("nan")
    return float(values.std(ddof=1)), float(values.mean() - mean)


def format_fraction(element: str, mean: float, error: float | None = None) -> str:
    """``"Fe 14.2 ± 0.8 wt%"`` from fractions (0 … 1); without ``error``: ``"Fe 14.2 wt%"``."""
    if error is None:
        return f"{element} {100 * mean:.1f} wt%"
    return f"{element} {100 * mean:.1f} ± {100 * error:.1f} wt%"


def _check_replicas(replicas: Any) -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or replicas < 2:
        raise InputError(f"replicas: {replicas!r} must be an integer >= 2 (a spread needs two replicas)")
    return int(replicas)


def _central(predicted: np.ndarray, positions: int) -> np.ndarray:
    """The central ``positions`` of a prediction made on symmetrically padded sinograms (axis 1)."""
    extra = predicted.shape[1] - positions
    if extra < 0 or extra % 2:
        raise InputError(
            f"preprocess: it changed the positions from {positions} to {predicted.shape[1]}; "
            "only a symmetric padding can be undone"
        )
    return predicted[:, extra // 2 : extra // 2 + positions]


def bootstrap(
    solver: Any,
    series: TiltSeries,
    quantifier: Any,
    *,
    replicas: int = 32,
    seed: int = 0,
    preprocess: Callable[[TiltSeries], TiltSeries] | None = None,
    postprocess: Callable[[Volume], Volume] | None = None,
    replicate: Callable[[TiltSeries], TiltSeries] | None = None,
    transmission: Mapping[str, np.ndarray] | None = None,
) -> Bootstrap:
    """Weight fractions of ``series`` and their per-voxel uncertainty (see the module docstring).

    Parameters
    ----------
    solver : ReconstructionSolver
        The solver, with every automatic option chosen (``prepare`` on the whole
        data) but options fitted to the data (e.g. response ratios) left unset,
        so that they are fitted to every replica.
    series : TiltSeries
        The data (counts of the reconstructed channels).
    quantifier : Quantifier
        Turns the maps into weight fractions (its ESF threshold is found for every replica).
    replicas : int
        Number of bootstrap replicas (>= 2).
    seed : int
        Seed of the Poisson draws: the same seed gives the same uncertainty.
    preprocess : callable, optional
        Applied to the data and to every replica before solving (e.g. the
        sinogram filter, or a symmetric padding of the positions).
    postprocess : callable, optional
        Applied to every volume before quantifying (e.g. cropping the padding off).
    replicate : callable, optional
        Applied to every replica before ``preprocess``: the steps that ``series``
        went through before it was given (e.g. a smoothing of the line maps), so
        that the replicas' noise is that of the data.
    transmission : mapping of str to ndarray, optional
        ``{channel: (tilts, positions, slices)}`` in (0, 1]: ``series`` holds
        counts already divided by these ray transmissions (an absorption
        correction, :class:`~edstomo.absorption.CorrectionResult`).  The counts
        measured were ``t μ̂``: they are drawn as ``Poisson(t μ̂)``, go through
        ``replicate`` and are divided by ``t``, so that the replicas' noise is
        that of the measured counts.  The transmissions are held fixed (not
        re-estimated per replica).

    Returns
    -------
    Bootstrap
    """
    count = _check_replicas(replicas)
    if not isinstance(series, TiltSeries):
        raise InputError(f"series: expected a TiltSeries, got {type(series).__name__}")
    if solver.requested_auto():
        raise InputError(
            f"solver: {solver.label()} still has options {solver.requested_auto()} set to 'auto'; "
            "choose them once on the whole data first (solver.prepare(series))"
        )
    before = preprocess or (lambda s: s)
    after = postprocess or (lambda v: v)
    channels = solver.channels_for(series)
    transmitted = _checked_transmission(transmission, series, channels)
    final = _FinalEstimate()
    prepared = before(series)
    volume = solver.solve(prepared, callbacks=[final])
    maps = quantifier.quantify(after(volume))
    predicted = final.predicted(_support(maps, volume.shape[1:3]))
    mean = np.clip(np.moveaxis(_central(predicted, series.n_positions), 2, 0), 0.0, None)

    start = time.perf_counter()
    rng = np.random.default_rng(seed)

    def draw() -> TiltSeries:  # one replica; drawn in order, so the same seed gives the same replicas in any group
        data = np.array(series.data, dtype=np.float64)
        for channel in [c for c in series.channels if c in channels]:  # in the series' order, whatever the order asked
            expected = mean[channels.index(channel)] * transmitted.get(channel, 1.0)
            data[series.channels.index(channel)] = rng.poisson(expected)
        replica = series.replace(data=data)
        replica = replicate(replica) if replicate is not None else replica
        return before(_divided(replica, transmitted))

    labels = _phases(maps, volume.shape[1:3], seed)
    model, model_series = None, None
    if labels is not None:  # the phase model, noise-free, as one more column
        model, simulated = final.phase_model(labels)
        data = np.array(series.data, dtype=np.float64)
        for channel, values in simulated.items():
            data[series.channels.index(channel)] = np.clip(_central(values, series.n_positions), 0.0, None)
        replica = series.replace(data=data)
        model_series = before(replicate(replica) if replicate is not None else replica)
    columns = count + (model_series is not None)
    kept = count * maps.weight_fractions.size * np.dtype(np.float32).itemsize  # fractions to 1e-7: half the memory
    per_solve = group_size(solver, prepared, len(channels), columns, kept)
    del prepared
    stack = np.empty((count, *maps.weight_fractions.shape), dtype=np.float32)
    fitted, thresholds, failed, quantified_count, model_volume = [], [], 0, 0, None
    for first in range(0, columns, per_solve):
        indices = range(first, min(first + per_solve, columns))
        volumes, fits = _solve_replicas(solver, [draw() if i < count else model_series for i in indices])
        for index, replica, fit in zip(indices, volumes, fits):
            if index == count:
                model_volume = replica
                continue
            fitted.append(fit)
            try:
                quantified = quantifier.quantify(after(replica))
            except ValueError:  # no ESF plateau in this replica
                failed += 1
                continue
            stack[quantified_count] = quantified.weight_fractions
            thresholds.append(float(quantified.threshold))
            quantified_count += 1
        del volumes
    if quantified_count < 2:
        raise InputError(f"replicas: {failed} of {count} replicas could not be quantified; no spread to report")
    stack = stack[:quantified_count]
    model_bias = model_mask = None
    if model_volume is not None:
        modelled = _model_bias(model_volume, volume.replace(data=np.moveaxis(model, 2, 0)), quantifier, after)
        model_bias, model_mask = modelled if modelled is not None else (None, None)
    seconds = time.perf_counter() - start
    result = Bootstrap(
        maps, stack, list(fitted), thresholds, seconds, failed, model_bias=model_bias, model_mask=model_mask
    )
    result.record = {
        "method": "parametric bootstrap (Poisson redraws of the predicted counts) and a phase model",
        "phases": None if labels is None else int(labels.max()) + 1,
        "phase_model_quantified": model_bias is not None,
        "replicas": count,
        "quantified": quantified_count,
        "columns_per_solve": per_solve,
        "seed": seed,
        "channels_redrawn": channels,
        "transmission": "fixed; measured counts redrawn" if transmitted else "none",
        "reported": "sqrt(sd^2 + bias^2 + model_bias^2) per voxel",
        "ratio_scatter": result.ratio_scatter(),
        "seconds": round(seconds, 3),
    }
    record = provenance.step("bootstrap", None, **result.record)
    result.maps = maps.replace(uncertainty=result.uncertainty, provenance=[*maps.provenance, record])
    return result


def _checked_transmission(
    transmission: Mapping[str, np.ndarray] | None, series: TiltSeries, channels: list[str]
) -> dict[str, np.ndarray]:
    """The ray transmissions of redrawn channels as float64, each of a channel's shape and in (0, 1]."""
    if transmission is None:
        return {}
    checked = {}
    for channel, values in transmission.items():
        if channel not in channels or channel not in series.channels:
            raise InputError(f"transmission: {channel!r} is not a redrawn channel of the series (those are {channels})")
        values = np.asarray(values, dtype=np.float64)
        shape = series.data[series.channels.index(channel)].shape
        if values.shape != shape:
            raise InputError(
                f"transmission: {channel!r} has shape {values.shape}; expected (tilts, positions, slices) {shape}"
            )
        if not (np.all(np.isfinite(values)) and values.min() > 0 and values.max() <= 1 + 1e-9):
            raise InputError(
                f"transmission: {channel!r} has values in [{values.min():.3g}, {values.max():.3g}]; "
                "transmissions are fractions in (0, 1]"
            )
        checked[channel] = values
    return checked


def _divided(series: TiltSeries, transmitted: Mapping[str, np.ndarray]) -> TiltSeries:
    """``series`` with each channel of ``transmitted`` divided by its transmissions (itself when there are none)."""
    if not transmitted:
        return series
    data = np.array(series.data, dtype=np.float64)
    for channel, values in transmitted.items():
        data[series.channels.index(channel)] /= values
    return series.replace(data=data)


def group_size(solver: Any, data: TiltSeries, channels: int, columns: int, kept: int) -> int:
    """Batch columns (replicas) per solve: as many of ``columns`` as fit in :data:`BATCH_BYTES`, at least 1.

    ``data`` is one column as the solver sees it (preprocessed: its tilts,
    positions and slices set the cost), ``kept`` the bytes of the replicas'
    weight fractions kept to the end.  The memory available now must hold one
    solve of that many columns and ``kept`` (:func:`edstomo.resources.check_memory`).
    """
    itemsize = np.dtype(solver.options.dtype).itemsize
    sinograms, volumes = solver.work_arrays()
    parts = resources.solve_bytes(
        channels, data.n_tilts, data.n_positions, data.n_slices,
        itemsize=itemsize, extra_arrays=sinograms, extra_volumes=volumes,
    )  # fmt: skip
    shared = parts.pop("projector")
    copy = resources.array_bytes(channels, data.n_positions, data.n_positions, data.n_slices, itemsize=itemsize)
    column = sum(parts.values()) + copy  # the solve's arrays and the column's volume cut from the batch
    count = int(max(1, min(columns, BATCH_BYTES // column)))
    resources.check_memory(
        {"replicas' weight fractions": kept, f"a solve of {count} columns": count * column + shared},
        f"uncertainty: {columns} batch columns of {solver.label()} ({channels} channels, {data.n_tilts} tilts, "
        f"{data.n_positions} positions, {data.n_slices} slices)",
    )
    return count


def _model_bias(
    reconstructed: Volume, model: Volume, quantifier: Any, after: Callable[[Volume], Volume]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Weight fractions of the reconstructed phase model minus those of the model itself, and the
    reconstruction's particle mask (None when the reconstruction cannot be quantified)."""
    exact = after(model)
    summed = quantifier.summed(exact)
    threshold = 1e-9 * float(summed.max()) if summed.max() > 0 else 0.0
    truth = quantifier.with_options(threshold=threshold).quantify(exact).weight_fractions
    try:
        quantified = quantifier.quantify(after(reconstructed))
    except ValueError:  # no ESF plateau
        return None
    return quantified.weight_fractions - truth, quantified.particle_mask


def _solve_replicas(solver: Any, drawn: list[TiltSeries]) -> tuple[list[Volume], list[dict[str, Any]]]:
    """The replicas' volumes (one batch solve when the solver allows it, else one by one) and their fits."""
    try:
        batched, stacked, _ = solver.batch(drawn)
    except InputError:
        prepared = [solver.prepare(replica) for replica in drawn]
        volumes = [p.solve(replica) for p, replica in zip(prepared, drawn)]
        return volumes, [{name: getattr(p.options, name) for name in solver.unfitted()} for p in prepared]
    whole = batched.solve(stacked)
    slices = drawn[0].n_slices
    volumes = [
        whole.replace(data=np.ascontiguousarray(whole.data[..., b * slices : (b + 1) * slices]))
        for b in range(len(drawn))
    ]
    fits = getattr(batched, "batch_fits", None) or [{} for _ in drawn]
    return volumes, fits
