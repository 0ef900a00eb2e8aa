"""Volumes and composition maps read a range of slices at a time, from a file or from memory.

:class:`Stored` opens a :class:`~edstomo.data.Volume` or
:class:`~edstomo.data.CompositionMaps` file and reads any range of slices
(:meth:`Stored.read`; compressed arrays of :mod:`edstomo.chunked` are
decompressed in threads); :class:`InMemory` gives the same interface for an
object in memory, and :func:`pieces` picks the right one, so that code written
for slice ranges runs on both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .chunked import read_array
from .data import CompositionMaps, Volume, load

__all__ = ["InMemory", "Stored", "pieces"]


class Stored:
    """A Volume or CompositionMaps in an edstomo HDF5 file, read a range of slices at a time.

    Parameters
    ----------
    path : str or Path
        The file (written by :func:`edstomo.data.save` or a chunked writer).

    Attributes
    ----------
    kind : str
        ``"Volume"`` or ``"CompositionMaps"``.
    names : list of str
        The channels (Volume) or elements (CompositionMaps).
    shape : tuple
        ``(names, nz, nx, slices)``.
    """

    def __init__(self, path: str | Path) -> None:
        from . import io

        self.path = Path(path)
        with io.open_file(self.path) as file, io.reading(self.path):
            self.kind = str(file.attrs["object"])
            if self.kind not in ("Volume", "CompositionMaps"):
                raise ValueError(f"path: {str(self.path)!r} holds a {self.kind}, not a Volume or CompositionMaps")
            self._values = "data" if self.kind == "Volume" else "weight_fractions"
            self.names = io.strings_of(file["channels" if self.kind == "Volume" else "elements"])
            self.shape = tuple(int(n) for n in file[self._values].shape)
            self.dtype = file[self._values].dtype
            self.has_mask = "mask" in file
            self.threshold = float(file.attrs["threshold"]) if "threshold" in file.attrs else None

    @property
    def n_slices(self) -> int:
        return self.shape[-1]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Values of slices ``start:stop``: ``(names, nz, nx, stop - start)``."""
        with h5py.File(self.path, "r") as file:
            return read_array(file[self._values], start, stop)

    def mask(self, start: int, stop: int) -> np.ndarray | None:
        """The particle mask of slices ``start:stop`` (CompositionMaps with a mask), else None."""
        if not self.has_mask:
            return None
        with h5py.File(self.path, "r") as file:
            return read_array(file["mask"], start, stop)

    def load(self) -> Volume | CompositionMaps:
        """The whole object (checked as :func:`edstomo.data.load` checks it)."""
        return load(self.path)  # type: ignore[return-value]

    def header(self) -> Volume | CompositionMaps:
        """The object without its slices (experiment, provenance, names, attributes; arrays of 0 slices)."""
        return load(self.path, slices=(0, 0))  # type: ignore[return-value]


class InMemory:
    """The :class:`Stored` interface for a Volume or CompositionMaps already in memory (no copies)."""

    def __init__(self, obj: Volume | CompositionMaps) -> None:
        self.obj = obj
        self.kind = type(obj).__name__
        self._values = obj.data if isinstance(obj, Volume) else obj.weight_fractions
        self.names = list(obj.channels if isinstance(obj, Volume) else obj.elements)
        self.shape = tuple(self._values.shape)
        self.dtype = self._values.dtype
        self._mask = None if isinstance(obj, Volume) else obj.mask
        self.has_mask = self._mask is not None
        self.threshold = getattr(obj, "threshold", None)

    @property
    def n_slices(self) -> int:
        return self.shape[-1]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._values[..., start:stop]

    def mask(self, start: int, stop: int) -> np.ndarray | None:
        return None if self._mask is None else self._mask[..., start:stop]

    def load(self) -> Volume | CompositionMaps:
        return self.obj

    def header(self) -> Volume | CompositionMaps:
        return self.obj


def pieces(source: Any) -> Stored | InMemory:
    """A :class:`Stored` for a path, an :class:`InMemory` for a Volume or CompositionMaps, or ``source`` itself."""
    if isinstance(source, (Stored, InMemory)):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Stored(source)
    return InMemory(source)
