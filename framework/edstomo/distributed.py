"""Solve a large tilt series in slice chunks on a Dask cluster, HDF5 chunk by chunk.

The slices of a single-tilt-axis series are independent problems, so a solver
can run on any range of slices.  :func:`solve_file` splits the series stored in
an edstomo HDF5 file into chunks of ``chunk_slices`` slices and solves each
chunk as one task on a ``dask.distributed`` cluster (a ``LocalCluster`` by
default, or any running scheduler given by its address):

1. each task opens the input file, reads only its slice range
   (``data[:, :, :, start:stop]``), solves it and writes its maps to its own
   chunk file (atomically, beside the output);
2. the client copies the chunk files, one at a time, into the output ``Volume``
   file, written to a temporary name and renamed when complete (edstomo's rule
   for every file), and removes the chunk files.

No process ever holds more than one chunk of the volume, so the volume can be
larger than any one machine's memory.  The input file and the output folder
must be visible to every worker (a shared file system for a remote cluster).

The compiled kernels (:mod:`edstomo.operators.kernels`) give the same bits whatever the
batch size and thread count, so the result equals the in-process solve of the
whole series exactly.  Options a solver estimates from the data (its
``fits_from_data``) are estimated once on the whole series before the chunks
are solved (:meth:`~edstomo.interfaces.Solver.prepare`).

Progress is reported per finished chunk, as ``progress(done, total)``
(``progress=True`` shows a tqdm bar when tqdm is installed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import io, outputs, provenance
from .cluster import local_cluster
from .data import TiltSeries, check_agrees, load, save
from .errors import InputError
from .interfaces import Solver
from .io import atomic_path, open_file
from .units import ureg

__all__ = [
    "DEFAULT_CHUNK_SLICES",
    "add_distributed_arguments",
    "read_chunk",
    "series_shape",
    "slice_chunks",
    "solve_file",
]

DEFAULT_CHUNK_SLICES = 16
"""Slices per task when none is given."""

Progress = Callable[[int, int], None]


def slice_chunks(n_slices: int, chunk_slices: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` slice ranges of at most ``chunk_slices`` slices covering ``n_slices``.

    Raises
    ------
    ValueError
        If ``chunk_slices`` is not a positive integer or ``n_slices`` is negative.
    """
    if isinstance(chunk_slices, (bool, np.bool_)) or not isinstance(chunk_slices, (int, np.integer)):
        raise ValueError(f"chunk_slices: {chunk_slices!r} must be a positive integer (slices per task)")
    if chunk_slices < 1:
        raise ValueError(f"chunk_slices: {chunk_slices!r} must be a positive integer (slices per task)")
    if n_slices < 0:
        raise ValueError(f"n_slices: {n_slices!r} must be >= 0")
    return [(start, min(start + chunk_slices, n_slices)) for start in range(0, n_slices, chunk_slices)]


def series_shape(path: str | Path) -> tuple[int, int, int, int]:
    """Shape ``(channels, tilts, positions, slices)`` of the tilt series in an edstomo file (no data read)."""
    with open_file(path, "TiltSeries") as file:
        return tuple(int(n) for n in file["data"].shape)  # type: ignore[return-value]


def read_chunk(path: str | Path, start: int, stop: int) -> TiltSeries:
    """The slices ``start:stop`` of the tilt series in an edstomo file, reading only those.

    Channels, angles, pixel size, experiment and provenance are those of the file.
    """
    from .experiment import Experiment

    with open_file(path, "TiltSeries") as file:
        n_slices = file["data"].shape[3]
        if not 0 <= start < stop <= n_slices:
            raise ValueError(f"slices: range {start}:{stop} is not inside the series' {n_slices} slices")
        series = TiltSeries(
            data=file["data"][:, :, :, start:stop],
            channels=[io.text_of(c) for c in file["channels"][()]],
            angles=ureg.Quantity(file["angles"][()], io.text_of(file["angles"].attrs["units"])),
            pixel_size=ureg.Quantity(io.text_of(file.attrs["pixel_size"])),
            experiment=Experiment.from_json(io.text_of(file["experiment"][()])) if "experiment" in file else None,
            provenance=json.loads(io.text_of(file["provenance"][()]))["steps"],
        )
    check_agrees(series, f"path: {str(path)!r}")
    return series


def _solve_chunk(solver: Solver, source: str, start: int, stop: int, folder: str, threads: int | None) -> dict:
    """One task: read slices ``start:stop``, solve, write the maps to a chunk file; return where."""
    if threads is not None:
        with contextlib.suppress(ImportError):
            import numba

            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    volume = solver.solve(read_chunk(source, start, stop))
    path = Path(folder) / f"chunk_{start:09d}_{stop:09d}.h5"
    save(volume, path)
    return {"start": start, "stop": stop, "path": str(path)}


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int, processes: bool) -> Iterator[tuple[Any, int | None]]:
    """A ``distributed.Client`` and the numba threads each task may use (None: leave as is)."""
    try:
        from distributed import Client
    except ImportError as error:
        raise ImportError("distributed solving needs dask.distributed: pip install 'edstomo[dask]'") from error
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client, None
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: {workers!r} must be a positive integer (local worker processes)")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with local_cluster(workers, processes) as client:
        yield client, threads


def _progress(progress: bool | Progress | None, total: int) -> tuple[Progress, Callable[[], None]]:
    if progress is None or progress is False:
        return (lambda done, total: None), (lambda: None)
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            warnings.warn("progress=True needs tqdm (pip install tqdm); no progress is shown", stacklevel=3)
            return (lambda done, total: None), (lambda: None)
        bar = tqdm(total=total, unit="chunk", leave=False)
        return (lambda done, total: bar.update(done - bar.n)), bar.close
    if callable(progress):
        return progress, (lambda: None)
    raise ValueError(f"progress: expected True, False or a callable (done, total), got {progress!r}")


def _assemble(chunks: list[dict], out: Path, record: dict) -> None:
    """Copy the chunk volumes, one at a time, into one Volume file written atomically."""
    with h5py.File(chunks[0]["path"], "r") as first:
        channels, nz, nx = first["data"].shape[:3]
        dtype = first["data"].dtype
    n_slices = chunks[-1]["stop"]
    first = load(chunks[0]["path"])  # one chunk: its header (channels, units, experiment, provenance)
    header = first.replace(data=np.zeros((channels, nz, nx, 0), dtype=dtype), provenance=[*first.provenance, record])
    del first
    with atomic_path(out) as temporary:
        save(header, temporary)
        with h5py.File(temporary, "r+") as file:
            axes = file["data"].attrs["axes"]
            del file["data"]
            data = file.create_dataset("data", shape=(channels, nz, nx, n_slices), dtype=dtype, chunks=(1, nz, nx, 1))
            data.attrs["axes"] = axes
            for chunk in chunks:
                with h5py.File(chunk["path"], "r") as part:
                    data[:, :, :, chunk["start"] : chunk["stop"]] = part["data"][()]


def solve_file(
    solver: Solver,
    source: str | Path,
    out: str | Path,
    *,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    scheduler: str | None = None,
    workers: int = 1,
    processes: bool = True,
    progress: bool | Progress | None = None,
) -> Path:
    """Solve the tilt series in ``source`` chunk by chunk on a Dask cluster; write the Volume to ``out``.

    Parameters
    ----------
    solver : Solver
        A configured solver; it is sent to the workers.  Options it would
        estimate from the data (its ``fits_from_data``, e.g. response ratios)
        are estimated once on the whole series first (:meth:`Solver.prepare`;
        this reads the whole series into the client's memory), so that every
        chunk uses the same values.
    source : path
        An edstomo tilt-series HDF5 file (``TiltSeries.save``).
    out : path
        The Volume HDF5 file to write (replaced atomically if it exists).
    chunk_slices : int
        Slices per task (default 16); each task holds one chunk of data and maps.
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:8786"``); default: a
        ``LocalCluster`` started for this call and closed after it.
    workers : int
        Worker processes of the local cluster (default 1: the compiled kernels
        of one worker already use every core, split ``cores // workers`` ways).
    processes : bool
        Local workers as processes (default) or as threads of this process.
    progress : bool or callable, optional
        ``progress(done, total)`` after each finished chunk; True shows a tqdm bar.

    Returns
    -------
    Path
        ``out``.  Its provenance is the series', the solver's step (from the
        first chunk) and a ``distributed`` step (chunks, slices per chunk, cluster).

    Raises
    ------
    ValueError
        For bad options, an unreadable source, or a solver that couples slices.
    """
    if solver.couples_slices():
        raise ValueError(
            f"solver: {solver.label()} couples slices with these options (e.g. 3-D regularisation), "
            "so it cannot be solved in slice chunks; solve the series in one process"
        )
    source, out = Path(source).resolve(), Path(out).resolve()
    n_slices = series_shape(source)[3]
    ranges = slice_chunks(n_slices, chunk_slices)
    if solver.unfitted():
        solver = solver.prepare(TiltSeries.load(source))  # estimated once on the whole series, not per chunk
    if not ranges:
        raise ValueError(f"source: {str(source)!r} holds no slices")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out: folder {str(out.parent)!r} for {out.name!r} does not exist")
    _check_against(solver, source)
    report, close = _progress(progress, len(ranges))
    outputs.remove_stale(out)
    folder = str(outputs.temporary_folder(out))  # found and removed by a later run if this one is killed
    try:
        with _client(scheduler, workers, processes) as (client, threads):
            from distributed import as_completed

            futures = [
                client.submit(_solve_chunk, solver, str(source), start, stop, folder, threads, pure=False)
                for start, stop in ranges
            ]
            chunks = []
            for done, future in enumerate(as_completed(futures), start=1):
                chunks.append(future.result())
                report(done, len(ranges))
        chunks.sort(key=lambda chunk: chunk["start"])
        record = provenance.step(
            "distributed",
            "dask",
            chunk_slices=chunk_slices,
            chunks=len(ranges),
            scheduler=scheduler or f"LocalCluster(workers={workers}, processes={processes})",
        )
        _assemble(chunks, out, record)
    finally:
        close()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _check_against(solver: Solver, source: Path) -> None:
    """The solver's checks of its options against the data (channels, ratios), here before any task starts.

    A task that failed them would fail on a worker, whose log shows a traceback; one slice suffices.
    """
    from .engine import ReconstructionSolver

    if isinstance(solver, ReconstructionSolver):
        probe = read_chunk(source, 0, 1)
        channels = list(solver.options.channels) if solver.options.channels is not None else None
        channels = channels or solver.default_channels(probe)
        missing = [c for c in channels if c not in probe.channels]
        if missing:
            raise InputError(f"channels: {missing} not in the tilt series; its channels are {probe.channels}")
        solver.check(probe, channels)


def add_distributed_arguments(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """Add ``--scheduler ADDRESS``, ``--chunk-slices N`` and ``--workers N`` to a command-line parser.

    Read them back with ``args.scheduler`` (None: local cluster),
    ``args.chunk_slices`` and ``args.workers``, and pass them to :func:`solve_file`.
    With ``optional=True`` (a command that solves in its own process unless
    told otherwise) all three default to None, so that a command can tell
    whether any was given; a missing ``chunk_slices`` or ``workers`` then
    means :data:`DEFAULT_CHUNK_SLICES` and 1.
    """
    when = "; any of these options solves on Dask instead of in this process" if optional else ""
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"Dask scheduler to run on, e.g. tcp://host:8786 (default: a local cluster for this run){when}",
    )
    parser.add_argument(
        "--chunk-slices",
        type=int,
        default=None if optional else DEFAULT_CHUNK_SLICES,
        metavar="N",
        help=f"slices per task (default: {DEFAULT_CHUNK_SLICES})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None if optional else 1,
        metavar="N",
        help="worker processes of the local cluster (default: 1)",
    )
