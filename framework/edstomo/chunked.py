"""Large arrays in edstomo files, a range of slices at a time: chunked, compressed writing and slice reading.

The arrays of edstomo's containers carry the slices (along the tilt axis) on
their last axis, and every step after the projector treats slices independently.
Their HDF5 datasets are therefore chunked along that axis
(:func:`chunk_shape`: one channel or element, all of ``nz × nx`` or ``tilts ×
positions``, :data:`CHUNK_SLICES` slices), so that a range of slices is read
without decompressing the rest.

With gzip compression :func:`write_array` compresses the HDF5 chunks in a pool
of threads (zlib releases the GIL) and stores them with
``write_direct_chunk``: the file is an ordinary gzip-compressed HDF5 file,
read by any HDF5 reader, written as many times faster as there are cores.
The chunks are deflated with zlib's run-length strategy (``Z_RLE``: matches
only of repeated bytes), an ordinary deflate stream: on reconstructions it
compresses 2.2× faster than the default strategy and 4 % smaller, on weight
fractions 1.5× faster and 9 % smaller (measured on the openNCEM volumes; float
noise offers the default's long-distance matches almost nothing).

:mod:`edstomo.stored` reads the objects in such files a range of slices at a time.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h5py
import numpy as np

__all__ = [
    "CHUNK_SLICES",
    "GZIP_LEVEL",
    "chunk_shape",
    "create_array",
    "read_array",
    "write_array",
]

#: Slices per HDF5 chunk along the last axis.
CHUNK_SLICES = 8
#: gzip level of compressed arrays: level 1 compresses reconstructions within 5 % of level 4, 20–40 % faster.
GZIP_LEVEL = 1
#: Chunks compressed per batch and thread (bounds the compressed bytes held before they are written).
_BATCH = 8


def chunk_shape(shape: tuple[int, ...], slices: int = CHUNK_SLICES) -> tuple[int, ...]:
    """HDF5 chunk of an array whose last axis is the slices: 1 along the leading axes, whole along the next two.

    Arrays of fewer than three axes are chunked along their last axis only.
    """
    if not shape or 0 in shape:
        return tuple(max(1, n) for n in shape) or (1,)
    leading = max(len(shape) - 3, 0)
    whole = shape[leading:-1]
    return (1,) * leading + tuple(whole) + (min(slices, shape[-1]),)


def create_array(
    file: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any, compression: str | None
) -> h5py.Dataset:
    """An empty dataset chunked by :func:`chunk_shape` (gzip at :data:`GZIP_LEVEL`, or uncompressed)."""
    if compression not in (None, "gzip"):
        raise ValueError(f"compression: {compression!r} must be 'gzip' or None")
    options: dict[str, Any] = {"compression": "gzip", "compression_opts": GZIP_LEVEL} if compression else {}
    chunks = chunk_shape(tuple(shape)) if 0 not in shape else None
    return file.create_dataset(name, shape=tuple(shape), dtype=dtype, chunks=chunks, **options)


def write_array(dataset: h5py.Dataset, array: np.ndarray, start: int = 0, *, threads: int | None = None) -> None:
    """Write ``array`` into ``dataset[..., start:start + array.shape[-1]]``.

    Parameters
    ----------
    dataset : h5py.Dataset
        Made by :func:`create_array` (any other dataset is written the usual way).
    array : ndarray
        The values; their leading shape must be the dataset's.
    start : int
        First slice written.
    threads : int, optional
        Threads that compress (default: one per core).

    Notes
    -----
    With gzip, a range that begins on a chunk boundary is compressed chunk by
    chunk in threads and written directly; the last chunk of the dataset is
    padded with zeros as HDF5 stores it. Other ranges go through HDF5's own
    (single-threaded) filter.
    """
    array = np.asarray(array, dtype=dataset.dtype)
    stop = start + array.shape[-1]
    if array.shape[:-1] != dataset.shape[:-1] or not 0 <= start <= stop <= dataset.shape[-1]:
        raise ValueError(
            f"array: shape {array.shape} at slice {start} does not fit the dataset {dataset.name} "
            f"of shape {dataset.shape}"
        )
    chunks = dataset.chunks
    direct = _direct(dataset)
    step = chunks[-1] if chunks else 0
    if not direct or start % step or (stop % step and stop != dataset.shape[-1]) or array.size == 0:
        dataset[..., start:stop] = array
        return
    tasks = list(_chunk_tasks(dataset.shape, chunks, start, stop))
    workers = max(1, threads or os.cpu_count() or 1)

    def compress(task: tuple[tuple[int, ...], tuple[slice, ...]]) -> bytes:
        block = array[task[1]]
        if block.shape != chunks:  # the last chunk of the dataset: stored whole
            padded = np.zeros(chunks, dtype=array.dtype)
            padded[tuple(slice(0, n) for n in block.shape)] = block
            block = padded
        packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
        return packer.compress(np.ascontiguousarray(block).tobytes()) + packer.flush()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for first in range(0, len(tasks), _BATCH * workers):
            batch = tasks[first : first + _BATCH * workers]
            for (offset, _), data in zip(batch, pool.map(compress, batch)):
                dataset.id.write_direct_chunk(offset, data)


def read_array(dataset: h5py.Dataset, start: int, stop: int, *, threads: int | None = None) -> np.ndarray:
    """``dataset[..., start:stop]``; gzip chunks of :func:`create_array` are decompressed in threads.

    Other datasets (or ranges that do not begin on a chunk boundary) are read the usual way.
    """
    chunks = dataset.chunks
    direct = _direct(dataset) and 0 <= start < stop <= dataset.shape[-1] and start % chunks[-1] == 0
    if not direct or chunks != chunk_shape(dataset.shape, chunks[-1]):
        return dataset[..., start:stop]
    shape = (*dataset.shape[:-1], stop - start)
    out = np.empty(shape, dtype=dataset.dtype)
    first = start
    last = -(-stop // chunks[-1]) * chunks[-1]
    tasks = list(_chunk_tasks(dataset.shape, chunks, first, min(last, dataset.shape[-1])))

    def fetch(task: tuple[tuple[int, ...], tuple[Any, ...]]) -> None:
        offset, index = task
        block = np.frombuffer(zlib.decompress(raw[offset]), dtype=dataset.dtype).reshape(chunks)
        target = out[(*index[:-1], slice(index[-1].start, min(index[-1].stop, stop - start)))]
        target[...] = block[(..., slice(0, target.shape[-1]))]

    raw = {offset: dataset.id.read_direct_chunk(offset)[1] for offset, _ in tasks}
    with ThreadPoolExecutor(max_workers=max(1, threads or os.cpu_count() or 1)) as pool:
        list(pool.map(fetch, tasks))
    return out


def _direct(dataset: h5py.Dataset) -> bool:
    """Whether the dataset's chunks are gzip alone (so they can be compressed and decompressed by zlib)."""
    plain = not (dataset.shuffle or dataset.fletcher32) and dataset.scaleoffset is None
    return dataset.compression == "gzip" and dataset.chunks is not None and plain


def _chunk_tasks(
    shape: tuple[int, ...], chunks: tuple[int, ...], start: int, stop: int
) -> Iterator[tuple[tuple[int, ...], tuple[Any, ...]]]:
    """(chunk offset, index of its values) of every chunk of slices ``start:stop`` (chunks of :func:`chunk_shape`)."""
    leading = max(len(shape) - 3, 0)
    middle = (0,) * (len(shape) - leading - 1)
    for lead in np.ndindex(*shape[:leading]):
        rows = tuple(slice(i, i + 1) for i in lead)
        for s in range(start, stop, chunks[-1]):
            yield (*lead, *middle, s), (*rows, Ellipsis, slice(s - start, min(s + chunks[-1], stop) - start))
