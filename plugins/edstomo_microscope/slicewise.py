"""The pipeline's large steps a range of slices at a time: reconstruction, cropping and quantification.

The slices of a single-tilt-axis series are independent problems, and after
the reconstruction every step is per voxel but the particle threshold, which
needs the whole summed map S (one value per voxel, not per channel). So:

* :func:`solve_in_slices` solves the padded series ``chunk_slices`` slices at a
  time and crops each piece to the field of view at once; the padded volume is
  never whole. The compiled kernels give the same bits whatever the number of
  slices solved together, so the volume equals a whole solve exactly.
* :func:`quantify_in_slices` makes S piece by piece, chooses the threshold on the
  whole of S (:meth:`decide` of the ratio quantifiers) and computes the
  fractions piece by piece: the same values as ``quantifier.quantify(volume)``.

Either writes its result into an edstomo HDF5 file as it goes (chunked and
compressed, :mod:`edstomo.chunked`) and returns a :class:`~edstomo.chunked.Stored`
reader, or, without a file, into one array in memory. :class:`Products` holds
the pipeline's volumes and maps, each in memory or in a file.

Memory: one piece of the padded series and its solver state, the cropped
result when it is kept in memory, and, while quantifying, S in float64
(``nz × nx × slices × 8`` bytes: a quarter of an 8-channel float32 volume) when
the volume is small enough to be kept in memory between the two passes or the
maps stay in memory; otherwise S goes to a temporary file beside the maps and
the threshold reads it a block of slices at a time (:mod:`edstomo.threshold`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from edstomo import chunked, provenance
from edstomo.data import CompositionMaps, TiltSeries, Volume, save
from edstomo.distributed import slice_chunks
from edstomo.interfaces import Quantifier, Solver
from edstomo.io import atomic_path
from edstomo.lines import element_of
from edstomo.stored import InMemory, Stored, pieces

__all__ = [
    "DEFAULT_CHUNK_SLICES",
    "DaskRunner",
    "Products",
    "Runner",
    "crop_volume",
    "dask_runner",
    "pad_positions",
    "quantify_in_slices",
    "reuse_in_slices",
    "solve_in_slices",
    "solve_on_dask",
    "stored_writer",
]

#: Slices solved or quantified at a time in this process (a multiple of the files' 8-slice HDF5 chunks).
DEFAULT_CHUNK_SLICES = 32

Progress = Callable[[int, int], None]


def pad_positions(series: TiltSeries, width: int) -> TiltSeries:
    """The series with ``width`` positions added on each side, repeating the edge values."""
    if width == 0:
        return series
    data = np.pad(series.data, ((0, 0), (0, 0), (width, width), (0, 0)), mode="edge")
    experiment = series.experiment
    if experiment is not None:
        scan = experiment.scan.model_copy(update={"positions": data.shape[2]})
        experiment = experiment.model_copy(update={"scan": scan})
    record = provenance.step("pad_positions", None, width=width, mode="edge")
    return series.with_step(record, data=data, experiment=experiment)


def _crop_record(width: int) -> dict[str, Any]:
    return provenance.step("crop_to_field", None, width=width, kept="nz and nx [width, width + positions)")


def crop_volume(volume: Volume, width: int, experiment: Any = None) -> Volume:
    """The central part of a volume reconstructed from sinograms padded by ``width`` on each side."""
    if width == 0:
        return volume
    n = volume.data.shape[2] - 2 * width
    data = np.ascontiguousarray(volume.data[:, width : width + n, width : width + n, :])
    return volume.replace(data=data, experiment=experiment, provenance=[*volume.provenance, _crop_record(width)])


class Products(MutableMapping[str, Any]):
    """Volumes or maps by method, each in memory or in a file (:class:`~edstomo.chunked.Stored`).

    Looking one up gives the object, loaded whole when it is in a file;
    :meth:`source` gives a slice reader without loading it.
    """

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        # another Products is copied entry by entry as it holds them (looking them up would load the files)
        self._items: dict[str, Any] = dict(items._items if isinstance(items, Products) else items or {})

    def __getitem__(self, name: str) -> Any:
        item = self._items[name]
        return item.load() if isinstance(item, Stored) else item

    def __setitem__(self, name: str, item: Any) -> None:
        self._items[name] = item

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def source(self, name: str) -> Stored | InMemory:
        """A slice reader of one entry (no copy, nothing loaded)."""
        return pieces(self._items[name])

    def path(self, name: str) -> Path | None:
        """The file of an entry kept in a file, else None."""
        item = self._items[name]
        return item.path if isinstance(item, Stored) else None

    def header(self, name: str) -> Any:
        """The entry without its slices (its experiment, provenance, names and attributes)."""
        return self.source(name).header()


@contextlib.contextmanager
def stored_writer(path: str | Path, header: Volume | CompositionMaps, n_slices: int) -> Iterator[Callable[..., None]]:
    """Write a Volume or CompositionMaps file piece by piece; yields ``write(start, values, mask=None)``.

    ``header`` is the object with 0 slices (its arrays, channels or elements,
    experiment and provenance); the file holds ``n_slices`` slices, chunked and
    gzip-compressed, is written under a temporary name and renamed when the
    block ends without error. Every slice must be written.
    """
    path = Path(path)
    values_name = "data" if isinstance(header, Volume) else "weight_fractions"
    array = header.data if isinstance(header, Volume) else header.weight_fractions
    written = np.zeros(n_slices, dtype=bool)
    with atomic_path(path) as temporary:
        save(header, temporary)
        with h5py.File(temporary, "r+") as file:
            names = [values_name] + (
                ["mask"] if isinstance(header, CompositionMaps) and header.mask is not None else []
            )
            datasets = {}
            for name in names:
                attrs = dict(file[name].attrs)
                shape, dtype = (*file[name].shape[:-1], n_slices), file[name].dtype
                del file[name]
                datasets[name] = chunked.create_array(file, name, shape, dtype, "gzip")
                datasets[name].attrs.update(attrs)

            def write(start: int, values: np.ndarray, mask: np.ndarray | None = None) -> None:
                stop = start + values.shape[-1]
                chunked.write_array(datasets[values_name], np.asarray(values, dtype=array.dtype), start)
                if "mask" in datasets:
                    if mask is None:
                        raise ValueError("mask: these maps have a particle mask; give each piece's mask")
                    chunked.write_array(datasets["mask"], mask, start)
                written[start:stop] = True

            yield write
            if not written.all():
                raise RuntimeError(f"{path}: slices {np.flatnonzero(~written)[:5].tolist()}... were never written")


def _empty_like(obj: Volume, channels: int, dtype: Any) -> np.ndarray:
    return np.zeros((channels, *obj.data.shape[1:3], 0), dtype=dtype)


def solve_in_slices(
    solver: Solver,
    padded: TiltSeries,
    width: int,
    experiment: Any,
    *,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    progress: Progress | None = None,
    path: str | Path | None = None,
) -> Volume | Stored:
    """``crop_volume(solver.solve(padded), width, experiment)``, solved ``chunk_slices`` slices at a time.

    Parameters
    ----------
    solver : Solver
        Options it estimates from the data (``fits_from_data``) are fixed first
        on the whole padded series (:meth:`~edstomo.interfaces.Solver.prepare`);
        a solver that couples slices (:meth:`~edstomo.interfaces.Solver.couples_slices`)
        solves all of them in one piece.
    padded : TiltSeries
        The series padded by ``width`` positions on each side.
    width : int
        Positions cropped on each side of nz and nx.
    experiment : Experiment
        The experiment of the cropped volume (the series' before padding).
    chunk_slices : int
        Slices solved together.
    progress : callable, optional
        ``progress(done, total)`` over all pieces' iterations.
    path : path, optional
        Write the volume there, piece by piece, and return a :class:`Stored`
        reader of it; default: return the Volume.
    """
    if solver.unfitted():
        solver = solver.prepare(padded)
    if solver.couples_slices():  # e.g. 3-D regularisation: the slices are one problem, solved in one piece
        chunk_slices = max(padded.n_slices, 1)
    ranges = slice_chunks(padded.n_slices, chunk_slices)
    positions = padded.n_positions - 2 * width
    keep = slice(width, width + positions)
    with contextlib.ExitStack() as stack:
        write: Callable[..., None] | None = None
        data: np.ndarray | None = None
        header: Volume | None = None
        for n, (start, stop) in enumerate(ranges):
            report = None if progress is None else _piece_progress(progress, n, len(ranges))
            piece = padded.replace(data=padded.data[..., start:stop])
            volume = solver.solve(piece, progress=report)
            values = volume.data[:, keep, keep, :]
            if header is None:
                header = volume.replace(
                    data=_empty_like(volume, volume.data.shape[0], volume.data.dtype)[:, keep, keep],
                    experiment=experiment if width else volume.experiment,
                    provenance=[*volume.provenance, _crop_record(width)] if width else volume.provenance,
                )
                if path is not None:
                    write = stack.enter_context(stored_writer(path, header, padded.n_slices))
                else:
                    data = np.empty((*header.data.shape[:3], padded.n_slices), dtype=volume.data.dtype)
            if write is not None:
                write(start, values)
            else:
                data[..., start:stop] = values  # type: ignore[index]
            del volume, values, piece
            gc.collect()  # a solve leaves its estimate in reference cycles (the algorithm's closures): free it now
    if path is not None:
        return Stored(path)
    return header.replace(data=data)  # type: ignore[union-attr]


#: Steps that may follow a solve in the provenance of the pipeline's volumes: the solve's distribution and the
#: crop to the field of view (both commute with a factor per channel).
_AFTER_SOLVE = ("distributed", "crop_to_field")


def reuse_in_slices(
    solver: Solver,
    padded: TiltSeries,
    earlier: Stored | InMemory,
    *,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    progress: Progress | None = None,
    path: str | Path | None = None,
) -> Volume | Stored | None:
    """:func:`solve_in_slices`'s result for ``solver`` made from ``earlier``, another solver's cropped
    volume of ``padded``, when the two solvers are equivalent (:meth:`~edstomo.engine.ReconstructionSolver.reuse_step`):
    ``earlier``'s values times a factor per channel, ``chunk_slices`` slices at a time; None otherwise.

    The result's provenance is ``padded``'s, ``solver``'s own reconstruct step (with ``equivalent``:
    the solver reused and why) and the crop; it is written to ``path`` when given.
    ``progress(done, total)`` after every piece.
    """
    reuse_step = getattr(solver, "reuse_step", None)
    header = earlier.header()
    steps = header.provenance
    solves = [i for i, step in enumerate(steps) if step.get("action") == "reconstruct"]
    if reuse_step is None or not solves or not isinstance(header, Volume):
        return None
    index = solves[-1]
    after = steps[index + 1 :]
    if provenance.canonical(steps[:index]) != provenance.canonical(padded.provenance) or any(
        step.get("action") not in _AFTER_SOLVE for step in after
    ):
        return None
    plan = reuse_step(padded, steps[index])
    if plan is None or header.channels != solver.channels_for(padded):  # type: ignore[attr-defined]
        return None
    scales, record = plan
    quantity, unit = solver.describe(header.channels)  # type: ignore[attr-defined]
    header = header.replace(
        quantity=quantity,
        unit=unit,
        factor=solver.produces,
        provenance=[*padded.provenance, record, *[step for step in after if step["action"] == "crop_to_field"]],
    )
    factors = scales.astype(earlier.dtype)[:, None, None, None]
    ranges = slice_chunks(earlier.n_slices, chunk_slices)
    data = np.empty(earlier.shape, dtype=earlier.dtype) if path is None else None

    def keep(start: int, values: np.ndarray) -> None:
        data[..., start : start + values.shape[-1]] = values  # type: ignore[index]

    with contextlib.ExitStack() as stack:
        write = keep if path is None else stack.enter_context(stored_writer(path, header, earlier.n_slices))
        for done, (start, stop) in enumerate(ranges, start=1):
            write(start, earlier.read(start, stop) * factors)
            if progress is not None:
                progress(done, len(ranges))
    return header.replace(data=data) if path is None else Stored(path)


def _piece_progress(progress: Progress, index: int, count: int) -> Progress:
    return lambda done, total: progress(index * total + done, count * total)


class Runner:
    """Runs piece tasks in this process, one after the other (the default)."""

    threads: int | None = None

    def map(self, task: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        """``task(*a)`` for every ``a`` of ``arguments``; results in any order (each says which piece it is)."""
        for items in arguments:
            yield task(*items)


class DaskRunner(Runner):
    """Runs piece tasks on a ``dask.distributed`` client; results are gathered as they finish.

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.
    threads : int, optional
        Numba threads each task may use (None: as the workers are set up).
    """

    def __init__(self, client: Any, threads: int | None = None) -> None:
        self.client = client
        self.threads = threads

    def map(self, task: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
        from distributed import as_completed

        futures = [self.client.submit(_with_threads, task, self.threads, *items, pure=False) for items in arguments]
        for future in as_completed(futures):
            yield future.result()
            future.release()


@contextlib.contextmanager
def dask_runner(scheduler: str | None, workers: int, processes: bool = True) -> Iterator[DaskRunner]:
    """A :class:`DaskRunner` on the scheduler at ``scheduler``, or on a local cluster of ``workers`` processes."""
    import os

    from distributed import Client

    if scheduler is not None:
        with Client(scheduler) as client:
            yield DaskRunner(client)
        return
    from edstomo.cluster import local_cluster

    with local_cluster(workers, processes) as client:
        yield DaskRunner(client, max(1, (os.cpu_count() or 1) // workers))


def _with_threads(task: Callable[..., Any], threads: int | None, *arguments: Any) -> Any:
    if threads is not None:
        with contextlib.suppress(ImportError):
            import numba

            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return task(*arguments)


def _solve_piece(solver: Solver, source: str, start: int, stop: int, width: int) -> tuple[int, np.ndarray]:
    """Slices ``start:stop`` of the padded series in ``source`` solved and cropped: (start, values)."""
    from edstomo.distributed import read_chunk

    volume = solver.solve(read_chunk(source, start, stop))
    keep = slice(width, volume.data.shape[1] - width)
    values = np.ascontiguousarray(volume.data[:, keep, keep, :])
    del volume
    gc.collect()  # the solve's estimate sits in reference cycles until collected
    return start, values


def solve_on_dask(
    solver: Solver,
    source: str | Path,
    width: int,
    experiment: Any,
    path: str | Path,
    runner: Runner,
    *,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    progress: Progress | None = None,
    where: str = "dask",
) -> Stored:
    """:func:`solve_in_slices` of the padded series in the file ``source``, one task per piece, into ``path``.

    Each task reads its slices, solves and crops them and returns the cropped
    piece, which is written into ``path`` as it arrives: no process holds more
    than a piece of the padded volume, and the client writes one piece at a time.
    The provenance gains a ``distributed`` step (pieces, slices per piece, ``where``: the cluster).
    """
    from edstomo.data import TiltSeries as Series
    from edstomo.distributed import read_chunk, series_shape

    if solver.couples_slices():
        raise ValueError(
            f"solver: {solver.label()} couples slices with these options (e.g. 3-D regularisation), "
            "so it cannot be solved in slice chunks on Dask; solve the series in one process"
        )
    n_slices = series_shape(source)[3]
    if solver.unfitted():
        solver = solver.prepare(Series.load(source))
    probe = solver.solve(read_chunk(source, 0, 1))  # options checked here before any task: one slice is enough
    keep = slice(width, probe.data.shape[1] - width)
    ranges = slice_chunks(n_slices, chunk_slices)
    record = provenance.step("distributed", "dask", chunk_slices=chunk_slices, chunks=len(ranges), scheduler=where)
    probe = probe.replace(provenance=[*probe.provenance, record])
    header = probe.replace(
        data=np.zeros((probe.data.shape[0], *probe.data[0, keep, keep].shape[:2], 0), dtype=probe.data.dtype),
        experiment=experiment if width else probe.experiment,
        provenance=[*probe.provenance, _crop_record(width)] if width else probe.provenance,
    )
    with stored_writer(path, header, n_slices) as write:
        tasks = [(solver, str(source), start, stop, width) for start, stop in ranges]
        for done, (start, values) in enumerate(runner.map(_solve_piece, tasks), start=1):
            write(start, values)
            del values
            if progress is not None:
                progress(done, len(ranges))
    return Stored(path)


def _summed_piece(quantifier: Any, source: Any, channels: list[str], start: int, stop: int) -> tuple[int, np.ndarray]:
    """(start, S of slices ``start:stop``) in float64."""
    return start, quantifier.channel_sum(quantifier.normalised(pieces(source).read(start, stop), channels))


def _fraction_piece(
    quantifier: Any, source: Any, channels: list[str], start: int, stop: int, threshold: float
) -> tuple[int, np.ndarray, np.ndarray]:
    """(start, weight fractions, particle mask) of slices ``start:stop`` for a chosen threshold."""
    normalised = quantifier.normalised(pieces(source).read(start, stop), channels)
    summed = quantifier.channel_sum(normalised)
    return start, quantifier.fractions(normalised, summed, threshold), summed > threshold


class _SummedFile:
    """The summed map S of a quantification in a temporary HDF5 file: written a piece of slices at a time
    (``summed[..., a:b] = piece``) and read back a range of slices at a time (an
    :class:`edstomo.threshold.SliceReader`). Stored slice after slice, float64, uncompressed and
    contiguous, so that a range of slices is one read. Removed when the block of :meth:`beside` ends."""

    def __init__(self, file: h5py.File, shape: tuple[int, ...]) -> None:
        self.dataset = file.create_dataset("summed", shape=(shape[-1], *shape[:-1]), dtype=np.float64)
        self.shape = tuple(shape)

    @classmethod
    @contextlib.contextmanager
    def beside(cls, folder: Path, shape: tuple[int, ...]) -> Iterator[_SummedFile]:
        import os
        import tempfile

        handle, name = tempfile.mkstemp(prefix=".summed-", suffix=".h5", dir=folder)
        os.close(handle)
        try:
            with h5py.File(name, "w") as file:
                yield cls(file, shape)
        finally:
            os.remove(name)

    def __setitem__(self, index: tuple[Any, slice], piece: np.ndarray) -> None:
        if len(index) != 2 or index[0] is not Ellipsis or not isinstance(index[1], slice):
            raise IndexError(f"index: {index!r}; S in a file is written a range of slices at a time, [..., a:b]")
        self.dataset[index[1]] = np.moveaxis(piece, -1, 0)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.moveaxis(self.dataset[start:stop], 0, -1)


#: A volume read from a file is kept in memory between the two passes of :func:`quantify_in_slices` (instead
#: of being read twice) when it takes at most this share of the available memory, and at most :data:`KEEP_MAX`.
KEEP_SHARE = 0.125
KEEP_MAX = 2**30


def _keep_in_memory(source: Stored | InMemory) -> bool:
    from edstomo.resources import available_memory

    size = int(np.prod(source.shape)) * np.dtype(source.dtype).itemsize
    available = available_memory()
    return isinstance(source, Stored) and available is not None and size <= min(KEEP_MAX, KEEP_SHARE * available)


def quantify_in_slices(
    quantifier: Quantifier,
    volume: Any,
    *,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    path: str | Path | None = None,
    runner: Runner | None = None,
) -> CompositionMaps | Stored:
    """``quantifier.quantify(volume)`` a range of slices at a time (same values).

    Parameters
    ----------
    quantifier : Quantifier
        One with ``check_channels``, ``normalised``, ``channel_sum``, ``decide``,
        ``fractions`` and ``record`` (the ratio quantifiers); any other quantifies
        the whole volume at once.
    volume : Volume, path of a volume file, or a :mod:`edstomo.chunked` reader
        The reconstructed maps.
    chunk_slices : int
        Slices read at a time.
    path : path, optional
        Write the maps there piece by piece and return a :class:`Stored` reader;
        default: return the CompositionMaps.
    runner : Runner, optional
        Where the pieces are computed: in this process (default) or on Dask
        (:class:`DaskRunner`; the volume must then be in a file). The summed
        map S (``nz × nx × slices`` float64) is gathered here: in memory when the
        volume is kept in memory or the maps are returned in memory, else in a
        temporary file beside ``path``, removed at the end.
    """
    source = pieces(volume)
    header = source.header()
    steps = ("check_channels", "normalised", "channel_sum", "decide", "fractions", "record")
    if not all(hasattr(quantifier, name) for name in steps):
        maps = quantifier.quantify(source.load())  # type: ignore[arg-type]
        if path is None:
            return maps
        save(maps, path, compression="gzip")
        return Stored(path)
    channels = list(source.names)
    quantifier.check_channels(channels)  # type: ignore[attr-defined]
    runner = runner or Runner()
    where = source
    if isinstance(runner, DaskRunner) and not isinstance(source, Stored):
        raise ValueError("volume: on Dask the volume must be in a file (a Stored reader or a path)")
    ranges = slice_chunks(source.n_slices, chunk_slices)
    kept: dict[int, np.ndarray] = {}
    with contextlib.ExitStack() as stack:
        if not isinstance(runner, DaskRunner) and _keep_in_memory(source):  # read the file once, not twice
            summed: np.ndarray | _SummedFile = np.empty(source.shape[1:], dtype=np.float64)
            for start, stop in ranges:
                kept[start] = quantifier.normalised(source.read(start, stop), channels)  # type: ignore[attr-defined]
                summed[..., start:stop] = quantifier.channel_sum(kept[start])
        elif path is None:
            summed = np.empty(source.shape[1:], dtype=np.float64)
        else:  # S in a temporary file beside the maps: the volume's size does not matter
            summed = stack.enter_context(_SummedFile.beside(Path(path).parent, source.shape[1:]))
        if not kept:  # S made a piece at a time (by the runner: on Dask when it is)
            for start, piece in runner.map(_summed_piece, [(quantifier, where, channels, a, b) for a, b in ranges]):
                summed[..., start : start + piece.shape[-1]] = piece
        decision = quantifier.decide(summed)  # type: ignore[attr-defined]
    threshold = float(decision["threshold"])
    dtype = source.dtype if source.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    maps_header = CompositionMaps(
        weight_fractions=np.zeros((len(channels), *source.shape[1:3], 0), dtype=dtype),
        elements=[element_of(line) for line in channels],
        pixel_size=header.pixel_size,
        mask=np.zeros((*source.shape[1:3], 0), dtype=bool),
        threshold=threshold,
        experiment=header.experiment,
        provenance=[*header.provenance, quantifier.record(channels, decision)],  # type: ignore[attr-defined]
    )
    tasks = [(quantifier, where, channels, a, b, threshold) for a, b in ranges]
    if kept:
        results: Iterator[tuple[int, np.ndarray, np.ndarray]] = (
            (a, quantifier.fractions(kept.pop(a), summed[..., a:b], threshold), summed[..., a:b] > threshold)  # type: ignore[attr-defined]
            for a, b in ranges
        )
    else:
        results = runner.map(_fraction_piece, tasks)
    if path is not None:
        with stored_writer(path, maps_header, source.n_slices) as write:
            for start, values, mask in results:
                write(start, values, mask)
        return Stored(path)
    fractions = np.empty((len(channels), *source.shape[1:]), dtype=dtype)
    mask = np.empty(source.shape[1:], dtype=bool)
    for start, values, piece_mask in results:
        fractions[..., start : start + values.shape[-1]] = values
        mask[..., start : start + values.shape[-1]] = piece_mask
    return maps_header.replace(weight_fractions=fractions, mask=mask)
