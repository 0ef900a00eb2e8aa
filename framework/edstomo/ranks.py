"""Exact order statistics of values seen a piece at a time, in passes, without keeping them all.

A median of the summed map S (the ESF threshold's starting values) or a
quantile of an element's fractions inside a particle (the rich regions of the
microscope summaries) is an order statistic of more values than should be held
at once. :class:`OrderStatistics` finds the values of given ranks exactly by a
radix search on the values' bits: each value gets an unsigned key of the same
order (:func:`sort_keys`); the first pass counts the values and the top 16 bits
of their keys, and every further pass counts the next 16 bits of the keys that
share the bits found so far of each wanted rank. float32 values take 2 passes,
float64 values 4; memory is one histogram of 65 536 counts per rank. While the
values fit in a budget (``keep``) they are kept from the first pass and the
ranks picked from them at once (the same values, no further pass).
"""

from __future__ import annotations

import numpy as np

__all__ = ["OrderStatistics", "key_value", "sort_keys"]

#: Key bits a pass resolves.
RADIX = 16


def sort_keys(values: np.ndarray) -> np.ndarray:
    """Unsigned integers in the order of the float values (IEEE bits: sign bit set for >= 0, all flipped for < 0).

    float32 values give uint32 keys; any other type is taken as float64 (uint64 keys).
    """
    floats = np.ascontiguousarray(values, dtype=values.dtype if values.dtype == np.float32 else np.float64)
    bits = floats.view(np.uint32 if floats.dtype == np.float32 else np.uint64)
    top = bits.dtype.type(1) << bits.dtype.type(8 * bits.itemsize - 1)
    return np.where(bits & top, ~bits, bits | top)


def key_value(key: int, width: int) -> float:
    """The float whose :func:`sort_keys` key of ``width`` bits (32 or 64) is ``key``."""
    top = 1 << (width - 1)
    bits = key ^ top if key & top else ~key & ((1 << width) - 1)
    kind = np.uint32 if width == 32 else np.uint64
    return float(np.array(bits, dtype=kind).view(np.float32 if width == 32 else np.float64))


class OrderStatistics:
    """The values of some ranks among values fed a piece at a time, in passes over the same values.

    Use: :meth:`add` every piece, then :meth:`settle`; while :attr:`pending`, add
    every piece again (the same values, in any order) and settle. Then
    :attr:`found` holds the value of each rank :meth:`ranks` asked for (as float),
    or stays empty when it asked for none (e.g. no values).

    Parameters
    ----------
    keep : int
        Bytes of values the first pass may keep; when all of them fit, the ranks are
        picked from them (``np.partition``) and no further pass is needed. 0: never.

    Attributes
    ----------
    size : int
        Number of values (after the first pass).
    largest : float
        Their largest value (after the first pass).
    """

    def __init__(self, keep: int = 0) -> None:
        self.keep = keep
        self.kept: list[np.ndarray] | None = [] if keep > 0 else None
        self.size, self.largest = 0, -np.inf
        self.width = 0  # bits of the keys (32 or 64), set by the first values
        self.known = 0  # leading key bits known of the wanted ranks
        self.top = np.zeros(1 << RADIX, dtype=np.int64)
        self.prefixes: list[int] = []
        self.wanted: list[int] = []  # each rank among the values that share its known bits
        self.counts: list[np.ndarray] = []
        self.pending = True
        self.found: list[float] = []

    def ranks(self) -> list[int]:
        """The ranks wanted (0-based), decided after the first pass from :attr:`size` and :attr:`largest`."""
        raise NotImplementedError

    def add(self, values: np.ndarray) -> None:
        """Count a piece's values in this pass."""
        if not self.pending or values.size == 0:
            return
        keys = sort_keys(values.ravel())
        width = 8 * keys.itemsize
        if self.width and width != self.width:
            raise ValueError(f"values: {values.dtype} after values of {self.width} bits; feed one type")
        self.width = width
        if not self.known:
            self.size += keys.size
            self.largest = max(self.largest, float(values.max()))
            if self.kept is not None:
                fits = values.itemsize * self.size <= self.keep
                self.kept = [*self.kept, values.ravel().copy()] if fits else None
            self.top += np.bincount((keys >> (width - RADIX)).astype(np.intp), minlength=1 << RADIX)
            return
        shift = width - self.known
        for counts, prefix in zip(self.counts, self.prefixes):
            inside = keys[(keys >> shift) == prefix]
            digits = (inside >> (shift - RADIX)) & ((1 << RADIX) - 1)
            counts += np.bincount(digits.astype(np.intp), minlength=1 << RADIX)

    def settle(self) -> None:
        """End a pass: narrow the wanted ranks by the bits counted; fills :attr:`found` once they are known."""
        if not self.pending:
            return
        if not self.known:
            self.wanted = list(self.ranks()) if self.size else []
            if not self.wanted:
                self._done([])
                return
            if self.kept is not None:  # all values kept: pick the ranks from them
                values = np.partition(np.concatenate(self.kept).astype(np.float64), self.wanted)
                self._done([float(values[rank]) for rank in self.wanted])
                return
            self.prefixes = [0] * len(self.wanted)
            self.counts = [self.top] * len(self.wanted)
        for k, (counts, rank) in enumerate(zip(self.counts, self.wanted)):
            ends = np.cumsum(counts)
            digit = int(np.searchsorted(ends, rank, side="right"))
            self.wanted[k] = rank - int(ends[digit] - counts[digit])
            self.prefixes[k] = (self.prefixes[k] << RADIX) | digit
        self.known += RADIX
        if self.known < self.width:
            self.counts = [np.zeros(1 << RADIX, dtype=np.int64) for _ in self.prefixes]
            return
        self._done([key_value(prefix, self.width) for prefix in self.prefixes])

    def _done(self, found: list[float]) -> None:
        self.found, self.pending, self.counts, self.kept = found, False, [], None
