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
  particle; its values (one float per element and particle voxel) are gathered
  in the first pass and the rich regions measured in a second pass.

A series is constant when its largest and smallest values are equal; its
correlations are then undefined (NaN).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edstomo.stored import InMemory, Stored, pieces

__all__ = ["DEFAULT_CHUNK_SLICES", "Moments", "compare", "findings"]

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


def _quantile(parts: list[np.ndarray], quantile: float) -> float | None:
    """The quantile of the gathered values, or None when there are none or none is > 0 (no rich region)."""
    if not parts:
        return None
    values = np.concatenate(parts).astype(np.float64)
    if values.size == 0 or not values.max() > 0:
        return None
    return float(np.quantile(values, quantile))


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
        where = np.nonzero(rich)
        self.position += [float(w.sum(dtype=np.float64)) for w in where]
        self.position[2] += start * count


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
    source = pieces(maps)
    elements = list(source.names)
    k = len(elements)
    moments = Moments(k)
    sums = np.zeros(k)
    largest = np.full(k, -np.inf)
    lowest = np.full(k, np.inf)
    dominant = np.zeros(k, dtype=np.int64)
    inside: list[list[np.ndarray]] = [[] for _ in elements]
    ranges = _ranges(source.n_slices, chunk_slices)
    for start, stop in ranges:
        values = source.read(start, stop)
        mask = _particle(source, start, stop, values)
        chosen = values[:, mask]
        if chosen.shape[1]:
            moments.add(chosen)
            sums += chosen.sum(axis=1, dtype=np.float64)
            largest = np.maximum(largest, chosen.max(axis=1))
            lowest = np.minimum(lowest, chosen.min(axis=1))
            dominant += np.bincount(values.argmax(axis=0)[mask], minlength=k)
            for i in range(k):
                inside[i].append(chosen[i].copy())
    count = moments.count
    cuts = [_quantile(parts, quantile) for parts in inside]
    del inside
    rich = [_Rich() for _ in elements]
    if any(cut is not None for cut in cuts):
        for start, stop in ranges:
            values = source.read(start, stop)
            mask = _particle(source, start, stop, values)
            for i, cut in enumerate(cuts):
                if cut is not None:
                    rich[i].add(mask & (values[i] >= cut), values[i], start)
    result: dict[str, Any] = {
        "particle_voxels": int(count),
        "pixel_size_nm": _pixel_nm(source),
        "elements": {},
    }
    total = max(count, 1)
    for i, element in enumerate(elements):
        entry: dict[str, Any] = {
            "mean_weight_fraction": float(sums[i] / count) if count else 0.0,
            "max_weight_fraction": float(largest[i]) if count else 0.0,
            "dominant_fraction_of_particle": float(dominant[i] / total),
        }
        if rich[i].voxels:
            entry["rich_region"] = {
                "voxels": rich[i].voxels,
                "mean_weight_fraction": rich[i].total / rich[i].voxels,
                "centre_nz_nx_slice": [round(float(c), 1) for c in rich[i].position / rich[i].voxels],
            }
        result["elements"][element] = entry
    result["correlations"] = {
        f"{elements[i]}-{elements[j]}": moments.correlation(i, j)
        if lowest[i] < largest[i] and lowest[j] < largest[j]
        else float("nan")
        for i in range(k)
        for j in range(i + 1, k)
    }
    return result


def _pixel_nm(source: Stored | InMemory) -> float:
    if isinstance(source, InMemory):
        return float(source.obj.pixel_size.m_as("nm"))
    import h5py
    from edstomo.units import ureg

    with h5py.File(source.path, "r") as file:
        return float(ureg.Quantity(file.attrs["pixel_size"]).m_as("nm"))


def _pairs(a: Stored | InMemory, b: Stored | InMemory, chunk_slices: int) -> Iterator[tuple[int, Any, Any, Any]]:
    for start, stop in _ranges(a.n_slices, chunk_slices):
        x, y = a.read(start, stop), b.read(start, stop)
        yield start, x, y, _particle(a, start, stop, x) & _particle(b, start, stop, y)


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
    if first.shape[1:] != second.shape[1:]:
        raise ValueError(f"b: maps of shape {second.shape[1:]} cannot be compared with maps of shape {first.shape[1:]}")
    common = [e for e in first.names if e in second.names]
    rows = [(first.names.index(e), second.names.index(e)) for e in common]
    moments = [Moments(2) for _ in common]
    bounds = [[np.inf, -np.inf, np.inf, -np.inf] for _ in common]
    inside: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in common]
    for _, x, y, mask in _pairs(first, second, chunk_slices):
        for n, (i, j) in enumerate(rows):
            xs, ys = x[i][mask], y[j][mask]
            if xs.size:
                moments[n].add(np.stack([xs, ys]))
                bounds[n] = [
                    min(bounds[n][0], xs.min()),
                    max(bounds[n][1], xs.max()),
                    min(bounds[n][2], ys.min()),
                    max(bounds[n][3], ys.max()),
                ]
                inside[n][0].append(xs)
                inside[n][1].append(ys)
    cuts = [(_quantile(xs, quantile), _quantile(ys, quantile)) for xs, ys in inside]
    del inside
    counts = np.zeros((len(common), 3), dtype=np.int64)  # rich in a, rich in b, rich in both
    if any(cut is not None for pair in cuts for cut in pair):
        for _, x, y, mask in _pairs(first, second, chunk_slices):
            for n, (i, j) in enumerate(rows):
                cut_a, cut_b = cuts[n]
                rich_a = mask & (x[i] >= cut_a) if cut_a is not None else np.zeros_like(mask)
                rich_b = mask & (y[j] >= cut_b) if cut_b is not None else np.zeros_like(mask)
                counts[n] += [np.count_nonzero(rich_a), np.count_nonzero(rich_b), np.count_nonzero(rich_a & rich_b)]
    result = {}
    for n, element in enumerate(common):
        m, (lo_a, hi_a, lo_b, hi_b) = moments[n], bounds[n]
        varies = m.count > 1 and lo_a < hi_a and lo_b < hi_b
        size = counts[n, 0] + counts[n, 1]
        result[element] = {
            "pearson": m.correlation(0, 1) if varies else float("nan"),
            "dice_rich": float(2 * counts[n, 2] / size) if size else float("nan"),
            "mean_a": float(m.mean[0]) if m.count else float("nan"),
            "mean_b": float(m.mean[1]) if m.count else float("nan"),
        }
    return result
