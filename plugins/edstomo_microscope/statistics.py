"""What the weight-fraction maps say, computed a range of slices at a time: findings and the comparison of two methods.

:func:`findings` (where each element is) and :func:`compare` (how far two
methods agree) read the maps through :func:`edstomo.chunked.pieces`, so the
maps may be in memory (:class:`~edstomo.data.CompositionMaps`) or in files
(``maps_<method>.h5``), read ``chunk_slices`` slices at a time. The results do
not depend on the chunking beyond float64 rounding:

* sums, counts, maxima and the voxels where each element dominates are added
  up chunk by chunk;
* correlations use co-moments combined chunk by chunk (Chan, Golub and LeVeque's
  pairwise update), which is as exact as the two-pass formula;
* the top-decile ("rich") regions need each element's quantile over the
  particle: its values are kept from the first pass when they fit in a share of
  the available memory, and the exact order statistics are picked from them;
  otherwise they are found by a radix search on the values' bits, 16 bits per
  pass (:class:`Quantile` on :mod:`edstomo.ranks`: one more pass over the maps for
  float32 values, three for float64; nothing is gathered). The rich regions are
  measured in a last pass.

A series is constant when its largest and smallest values are equal; its
correlations are then undefined (NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edstomo.ranks import OrderStatistics
from edstomo.stored import InMemory, Stored, pieces

__all__ = ["DEFAULT_CHUNK_SLICES", "Moments", "Quantile", "compare", "findings", "summarise"]

#: Slices read at a time (a multiple of the files' HDF5 chunk of 8 slices).
DEFAULT_CHUNK_SLICES = 32


@dataclass
class Moments:
    """Count, means and co-moment matrix of several series, combined piece by piece (float64)."""

    size: int
    count: int = 0
    mean: np.ndarray = field(init=False)
    comoment: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.size)
        self.comoment = np.zeros((self.size, self.size))

    def add(self, values: np.ndarray) -> None:
        """Add observations ``values`` of shape (series, n)."""
        n = values.shape[1]
        if n == 0:
            return
        values = np.asarray(values, dtype=np.float64)
        mean = values.mean(axis=1)
        centred = values - mean[:, None]
        comoment = centred @ centred.T
        total = self.count + n
        delta = mean - self.mean
        self.comoment += comoment + np.outer(delta, delta) * (self.count * n / total)
        self.mean += delta * (n / total)
        self.count = total

    def correlation(self, i: int, j: int) -> float:
        """Pearson correlation of series i and j (NaN for fewer than 2 values or a zero variance)."""
        cxx, cyy = self.comoment[i, i], self.comoment[j, j]
        if self.count < 2 or not (cxx > 0 and cyy > 0):
            return float("nan")
        return float(np.clip(self.comoment[i, j] / np.sqrt(cxx * cyy), -1.0, 1.0))


def _ranges(n_slices: int, chunk_slices: int) -> list[tuple[int, int]]:
    from edstomo.distributed import slice_chunks

    return slice_chunks(n_slices, chunk_slices)


def _particle(source: Stored | InMemory, start: int, stop: int, values: np.ndarray) -> np.ndarray:
    """The particle mask of a piece: the stored mask, else where the fractions sum to > 0."""
    mask = source.mask(start, stop)
    if mask is not None:
        return np.asarray(mask, dtype=bool)
    total = np.zeros(values.shape[1:])
    for element in values:
        total += element
    return total > 0


class Quantile(OrderStatistics):
    """One quantile of values fed a piece at a time, in passes over the same values (:mod:`edstomo.ranks`).

    The same number as ``np.quantile(values, quantile)`` (its default, linear
    method) up to the rounding of the last interpolation step: the two order
    statistics around ``(n − 1) × quantile`` are found exactly, then interpolated.
    Use as :class:`~edstomo.ranks.OrderStatistics`; then ``value`` is the quantile,
    or None when no value is > 0 (no rich region: no further pass is made).
    """

    def __init__(self, quantile: float, keep: int = 0) -> None:
        super().__init__(keep)
        self.quantile = quantile
        self.fraction = 0.0  # of the way from the lower order statistic to the upper one

    def ranks(self) -> list[int]:
        if not self.largest > 0:
            return []
        position = (self.size - 1) * self.quantile
        below = int(np.floor(position))
        self.fraction = position - below
        return [below, min(below + 1, self.size - 1)]

    @property
    def value(self) -> float | None:
        if not self.found:
            return None
        (low, high), t = self.found, self.fraction
        step = high - low
        return low + step * t if t < 0.5 else high - step * (1 - t)  # numpy's linear interpolation


@dataclass
class _Rich:
    """The rich region of one element: voxels, sum of fractions, sum of (nz, nx, slice) indices."""

    voxels: int = 0
    total: float = 0.0
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def add(self, rich: np.ndarray, values: np.ndarray, start: int) -> None:
        count = int(np.count_nonzero(rich))
        if not count:
            return
        self.voxels += count
        self.total += float(values[rich].sum(dtype=np.float64))
        for axis in range(3):  # Σ of the voxels' indices along each axis, from the counts per index (exact)
            others = tuple(a for a in range(3) if a != axis)
            self.position[axis] += float(np.count_nonzero(rich, axis=others) @ np.arange(rich.shape[axis]))
        self.position[2] += start * count


class _Findings:
    """The accumulators of :func:`findings` for one method's maps, fed piece by piece in two passes."""

    def __init__(self, elements: list[str], quantile: float, keep: int = 0) -> None:
        k = len(elements)
        self.elements = elements
        self.moments = Moments(k)
        self.sums = np.zeros(k)
        self.largest = np.full(k, -np.inf)
        self.lowest = np.full(k, np.inf)
        self.dominant = np.zeros(k, dtype=np.int64)
        self.quantiles = [Quantile(quantile, keep) for _ in elements]
        self.cuts: list[float | None] = []
        self.rich = [_Rich() for _ in elements]

    def first(self, values: np.ndarray, mask: np.ndarray, start: int) -> None:
        """Pass 1: sums, extremes, co-moments, dominant elements and the quantiles' first counts of a piece."""
        chosen = values[:, mask]
        if chosen.shape[1]:
            self.moments.add(chosen)
            self.sums += chosen.sum(axis=1, dtype=np.float64)
            self.largest = np.maximum(self.largest, chosen.max(axis=1))
            self.lowest = np.minimum(self.lowest, chosen.min(axis=1))
            self.dominant += np.bincount(chosen.argmax(axis=0), minlength=len(self.elements))
            for quantile, row in zip(self.quantiles, chosen):
                quantile.add(row)

    def refine(self, values: np.ndarray, mask: np.ndarray, start: int) -> None:
        """A further pass of the quantiles over a piece."""
        chosen = values[:, mask]
        for quantile, row in zip(self.quantiles, chosen):
            quantile.add(row)

    def settle(self) -> str:
        """After a pass: ``"refine"`` (the quantiles need another pass), ``"second"`` (the rich regions'
        cuts are known) or ``"done"`` (no element has a rich region)."""
        for quantile in self.quantiles:
            quantile.settle()
        if any(quantile.pending for quantile in self.quantiles):
            return "refine"
        self.cuts = [quantile.value for quantile in self.quantiles]
        return "second" if any(cut is not None for cut in self.cuts) else "done"

    def second(self, values: np.ndarray, mask: np.ndarray, start: int) -> None:
        """Pass 2: the rich regions of a piece."""
        for i, cut in enumerate(self.cuts):
            if cut is not None:
                self.rich[i].add(mask & (values[i] >= cut), values[i], start)

    def result(self, pixel_nm: float) -> dict[str, Any]:
        count = self.moments.count
        result: dict[str, Any] = {"particle_voxels": int(count), "pixel_size_nm": pixel_nm, "elements": {}}
        total = max(count, 1)
        for i, element in enumerate(self.elements):
            entry: dict[str, Any] = {
                "mean_weight_fraction": float(self.sums[i] / count) if count else 0.0,
                "max_weight_fraction": float(self.largest[i]) if count else 0.0,
                "dominant_fraction_of_particle": float(self.dominant[i] / total),
            }
            rich = self.rich[i]
            if rich.voxels:
                entry["rich_region"] = {
                    "voxels": rich.voxels,
                    "mean_weight_fraction": rich.total / rich.voxels,
                    "centre_nz_nx_slice": [round(float(c), 1) for c in rich.position / rich.voxels],
                }
            result["elements"][element] = entry
        k, lowest, largest = len(self.elements), self.lowest, self.largest
        result["correlations"] = {
            f"{self.elements[i]}-{self.elements[j]}": self.moments.correlation(i, j)
            if lowest[i] < largest[i] and lowest[j] < largest[j]
            else float("nan")
            for i in range(k)
            for j in range(i + 1, k)
        }
        return result


def findings(maps: Any, quantile: float = 0.9, chunk_slices: int = DEFAULT_CHUNK_SLICES) -> dict[str, Any]:
    """Where each element is in one method's maps.

    Parameters
    ----------
    maps : CompositionMaps, path of a ``maps_*.h5`` file, or a :mod:`edstomo.chunked` reader
        The weight fractions (with their particle mask).
    quantile : float
        Fractions at or above this quantile of an element's fractions inside the
        particle make its rich region.
    chunk_slices : int
        Slices read at a time.

    Returns
    -------
    dict
        ``particle_voxels``, ``pixel_size_nm``, ``elements``: per element the
        mean and largest fraction in the particle, the share of the particle
        where it dominates, and its rich region (voxels, mean fraction, centre
        in (nz, nx, slice) indices); ``correlations``: the Pearson correlation
        of every pair of elements' fractions inside the particle.
    """
    return summarise({"maps": maps}, quantile, chunk_slices)[1]["maps"]


def summarise(
    maps: Mapping[str, Any], quantile: float = 0.9, chunk_slices: int = DEFAULT_CHUNK_SLICES
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """:func:`compare` of the first two methods' maps and :func:`findings` of each, reading every file twice.

    Each piece of each method's maps is read once per pass and fed to both
    summaries (the same values as calling them one by one, which reads the
    files four times as often).

    Returns
    -------
    comparison : dict
        As :func:`compare` (empty with fewer than two methods).
    findings : dict
        ``{method: findings}``.
    """
    sources = {name: pieces(item) for name, item in maps.items()}
    names = list(sources)
    quantiles = sum(len(source.names) for source in sources.values())
    if len(names) >= 2:
        quantiles += 2 * len(set(sources[names[0]].names) & set(sources[names[1]].names))
    keep = _keep_per_quantile(quantiles)
    found = {name: _Findings(list(source.names), quantile, keep) for name, source in sources.items()}
    pair = _Comparison(sources[names[0]], sources[names[1]], quantile, keep) if len(names) >= 2 else None
    ranges = _ranges(sources[names[0]].n_slices, chunk_slices) if names else []
    summaries: list[Any] = [*found.values(), *([pair] if pair is not None else [])]
    stage = "first"
    while ranges:
        for start, stop in ranges:
            read = {}
            for name, source in sources.items():
                values = source.read(start, stop)
                read[name] = values, _particle(source, start, stop, values)
                getattr(found[name], stage)(*read[name], start)
            if pair is not None:
                (x, mask_a), (y, mask_b) = read[names[0]], read[names[1]]
                getattr(pair, stage)(x, y, mask_a & mask_b)
        stage = _next_stage(stage, summaries)
        if stage == "done":
            break
    comparison = pair.result() if pair is not None else {}
    return comparison, {name: found[name].result(_pixel_nm(sources[name])) for name in names}


def _keep_per_quantile(quantiles: int) -> int:
    """Bytes each of ``quantiles`` quantiles may keep of its values (:class:`Quantile`'s ``keep``): together the
    share of the available memory a volume may take between passes (:data:`.slicewise.KEEP_SHARE`, at most
    :data:`.slicewise.KEEP_MAX`); 0 when the available memory is not known."""
    from edstomo.resources import available_memory

    from .slicewise import KEEP_MAX, KEEP_SHARE

    available = available_memory()
    if available is None or quantiles == 0:
        return 0
    return int(min(KEEP_MAX, KEEP_SHARE * available) // quantiles)


def _next_stage(stage: str, summaries: list[Any]) -> str:
    """The pass after ``stage``: "refine" while a quantile needs one, then "second" if a cut was found, then "done"."""
    if stage == "second":
        return "done"
    after = [summary.settle() for summary in summaries]
    return "refine" if "refine" in after else "second" if "second" in after else "done"


def _pixel_nm(source: Stored | InMemory) -> float:
    if isinstance(source, InMemory):
        return float(source.obj.pixel_size.m_as("nm"))
    import h5py
    from edstomo.units import ureg

    with h5py.File(source.path, "r") as file:
        return float(ureg.Quantity(file.attrs["pixel_size"]).m_as("nm"))


class _Comparison:
    """The accumulators of :func:`compare` for two methods' maps, fed piece by piece in two passes."""

    def __init__(self, first: Stored | InMemory, second: Stored | InMemory, quantile: float, keep: int = 0) -> None:
        if first.shape[1:] != second.shape[1:]:
            raise ValueError(
                f"b: maps of shape {second.shape[1:]} cannot be compared with maps of shape {first.shape[1:]}"
            )
        self.common = [e for e in first.names if e in second.names]
        self.rows = [(first.names.index(e), second.names.index(e)) for e in self.common]
        self.moments = [Moments(2) for _ in self.common]
        self.bounds = [[np.inf, -np.inf, np.inf, -np.inf] for _ in self.common]
        self.quantiles = [(Quantile(quantile, keep), Quantile(quantile, keep)) for _ in self.common]
        self.cuts: list[tuple[float | None, float | None]] = []
        self.counts = np.zeros((len(self.common), 3), dtype=np.int64)  # rich in a, rich in b, rich in both

    def first(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
        """Pass 1: co-moments, extremes and the values inside both masks of a piece."""
        for n, (i, j) in enumerate(self.rows):
            xs, ys = x[i][mask], y[j][mask]
            if xs.size:
                self.moments[n].add(np.stack([xs, ys]))
                bounds = self.bounds[n]
                self.bounds[n] = [
                    min(bounds[0], xs.min()),
                    max(bounds[1], xs.max()),
                    min(bounds[2], ys.min()),
                    max(bounds[3], ys.max()),
                ]
                self.quantiles[n][0].add(xs)
                self.quantiles[n][1].add(ys)

    def refine(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
        """A further pass of the quantiles over a piece."""
        for (i, j), (along_x, along_y) in zip(self.rows, self.quantiles):
            along_x.add(x[i][mask])
            along_y.add(y[j][mask])

    def settle(self) -> str:
        """After a pass: ``"refine"``, ``"second"`` or ``"done"``, as :meth:`_Findings.settle`."""
        every = [quantile for pair in self.quantiles for quantile in pair]
        for quantile in every:
            quantile.settle()
        if any(quantile.pending for quantile in every):
            return "refine"
        self.cuts = [(along_x.value, along_y.value) for along_x, along_y in self.quantiles]
        return "second" if any(cut is not None for pair in self.cuts for cut in pair) else "done"

    def second(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
        """Pass 2: the voxels rich in each method and in both, of a piece."""
        for n, (i, j) in enumerate(self.rows):
            cut_a, cut_b = self.cuts[n]
            rich_a = mask & (x[i] >= cut_a) if cut_a is not None else np.zeros_like(mask)
            rich_b = mask & (y[j] >= cut_b) if cut_b is not None else np.zeros_like(mask)
            self.counts[n] += [np.count_nonzero(rich_a), np.count_nonzero(rich_b), np.count_nonzero(rich_a & rich_b)]

    def result(self) -> dict[str, dict[str, float]]:
        result = {}
        for n, element in enumerate(self.common):
            m, (lo_a, hi_a, lo_b, hi_b) = self.moments[n], self.bounds[n]
            varies = m.count > 1 and lo_a < hi_a and lo_b < hi_b
            size = self.counts[n, 0] + self.counts[n, 1]
            result[element] = {
                "pearson": m.correlation(0, 1) if varies else float("nan"),
                "dice_rich": float(2 * self.counts[n, 2] / size) if size else float("nan"),
                "mean_a": float(m.mean[0]) if m.count else float("nan"),
                "mean_b": float(m.mean[1]) if m.count else float("nan"),
            }
        return result


def compare(
    a: Any, b: Any, quantile: float = 0.9, chunk_slices: int = DEFAULT_CHUNK_SLICES
) -> dict[str, dict[str, float]]:
    """Agreement of two quantifications, per element, inside both particle masks.

    Parameters
    ----------
    a, b : CompositionMaps, paths of ``maps_*.h5`` files, or :mod:`edstomo.chunked` readers
        Two methods' weight fractions of one grid.
    quantile : float
        See :func:`findings`.
    chunk_slices : int
        Slices read at a time.

    Returns
    -------
    dict
        ``{element: {"pearson": r, "dice_rich": d, "mean_a": ..., "mean_b": ...}}``:
        the Pearson correlation of the fractions, the Dice coefficient of the
        elements' rich regions and the mean fractions, all inside both masks;
        NaN when undefined (no voxel, or a constant map).
    """
    first, second = pieces(a), pieces(b)
    pair = _Comparison(first, second, quantile, _keep_per_quantile(2 * len(set(first.names) & set(second.names))))
    ranges, stage = _ranges(first.n_slices, chunk_slices), "first"
    while ranges and stage != "done":
        for start, stop in ranges:
            x, y = first.read(start, stop), second.read(start, stop)
            getattr(pair, stage)(x, y, _particle(first, start, stop, x) & _particle(second, start, stop, y))
        stage = _next_stage(stage, [pair])
    return pair.result()
