"""A size guard: estimate the memory a run needs before allocating it, and refuse absurd runs.

A mistyped experiment (``positions: 20000``, a million tilts) or iteration
count (``--iterations 100000000``) should fail in a second with the numbers,
not after the machine starts swapping. The estimators below give the bytes
of the arrays a step allocates (each documented); :func:`check_memory`
compares their sum with the memory available now and raises
:class:`ResourceError` when it does not fit. :func:`check_iterations` refuses
more than :data:`MAX_ITERATIONS` iterations.

Both can be overridden, when the run is meant: ``allow=True``, the
environment variable ``EDSTOMO_ALLOW_LARGE=1``, or ``--allow-large`` on the
command line (which sets that variable, so Dask workers started by the run
see it too).

Available memory is psutil's ``virtual_memory().available`` when psutil is
installed, else ``MemAvailable`` of ``/proc/meminfo``; where neither exists
the memory check is skipped (the iteration check is not).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import EdstomoError

__all__ = [
    "ALLOW_ENV",
    "MAX_ITERATIONS",
    "ResourceError",
    "allowed",
    "array_bytes",
    "available_memory",
    "check_iterations",
    "check_memory",
    "check_simulation",
    "check_solve_file",
    "format_bytes",
    "projector_bytes",
    "simulation_bytes",
    "solve_bytes",
]

#: Environment variable that lifts both guards when set to 1/true/yes.
ALLOW_ENV = "EDSTOMO_ALLOW_LARGE"

#: Most iterations accepted without ``allow``.
MAX_ITERATIONS = 100_000

#: Stored entries of the projection matrix per (tilt, pixel) pair: measured 2.12–2.15 for the
#: strip model and 1.63–1.67 for Joseph's (31–90 tilts, 64²–200² pixels); rounded up.
ENTRIES_PER_TILT_PIXEL = 2.5

#: Peak over final size while the matrix is built (per-tilt entry lists, counts, the sort).
PROJECTOR_BUILD_FACTOR = 1.5


class ResourceError(EdstomoError):
    """A run would need more memory than is available, or an absurd number of iterations."""


def allowed(allow: bool | None = None) -> bool:
    """Whether the guards are lifted: ``allow`` if given, else the :data:`ALLOW_ENV` variable."""
    if allow is not None:
        return bool(allow)
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (None when it cannot be told)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def format_bytes(count: float) -> str:
    """``1536`` → ``'1.5 KiB'``; binary prefixes, three significant digits."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} PiB"  # pragma: no cover - loop always returns


def array_bytes(*shape: int, itemsize: int = 8) -> int:
    """Bytes of one array of ``shape`` with ``itemsize`` bytes per element (8: float64)."""
    return math.prod(int(n) for n in shape) * int(itemsize)


def projector_bytes(n_angles: int, nz: int, nx: int, *, itemsize: int = 4) -> int:
    """Peak bytes of building a parallel-beam projection matrix (one stored sparse transpose).

    nnz ≈ :data:`ENTRIES_PER_TILT_PIXEL` × tilts × nz × nx (a ray crosses a
    pixel row in about two pixels); each entry holds a value (``itemsize``
    bytes) and a column index (int32 below 2³¹ entries, else int64), plus one
    row pointer per pixel; :data:`PROJECTOR_BUILD_FACTOR` covers the temporaries
    of the build.
    """
    nnz = ENTRIES_PER_TILT_PIXEL * int(n_angles) * int(nz) * int(nx)
    index = 4 if nnz < 2**31 else 8
    return int(PROJECTOR_BUILD_FACTOR * (nnz * (itemsize + index) + (int(nz) * int(nx) + 1) * index))


def solve_bytes(
    channels: int,
    n_angles: int,
    positions: int,
    slices: int,
    *,
    itemsize: int = 4,
    extra_arrays: float = 3.0,
    extra_volumes: float = 0.0,
) -> dict[str, int]:
    """Bytes a SIRT-family solve of a tilt series needs, by part.

    Parameters
    ----------
    channels, n_angles, positions, slices
        The reconstructed channels and the series' tilts, positions and slices
        (the volume is positions × positions × slices per channel).
    itemsize
        Bytes per element of the solver's arithmetic type (4: float32).
    extra_arrays
        Sinogram-sized work arrays of the solver besides the data (forward
        projection, residual and weights: 3 for SIRT; a solver with more terms
        passes more).
    extra_volumes
        Volume-sized work arrays besides the estimate and one copy (0 for SIRT;
        e.g. the dual variables of total variation).

    Returns
    -------
    dict
        ``{"data": …, "volume": …, "projector": …, "solver work arrays": …}`` in bytes, and
        ``"solver work volumes"`` when ``extra_volumes`` > 0.
    """
    sinogram = array_bytes(channels, n_angles, positions, slices, itemsize=itemsize)
    volume = array_bytes(channels, positions, positions, slices, itemsize=itemsize)
    parts = {
        "data": array_bytes(channels, n_angles, positions, slices),
        "volume": 2 * volume,
        "projector": projector_bytes(n_angles, positions, positions, itemsize=itemsize),
        "solver work arrays": int(extra_arrays * sinogram),
    }
    if extra_volumes > 0:
        parts["solver work volumes"] = int(extra_volumes * volume)
    return parts


def simulation_bytes(elements: int, channels: int, n_angles: int, positions: int, slices: int) -> dict[str, int]:
    """Bytes a phantom plus forward simulation of an experiment needs, by part (float64 throughout).

    The phantom holds a weight fraction per element, the density and, while it
    is built, grid-sized temporaries (coordinates, distances, coverages of the
    regions, region maps): the core-shell phantom of two elements peaked at 10.2
    grids (tracemalloc, 1500² grid), so the estimate is elements + 9 grids;
    the forward model holds the partial densities, the sinograms of every
    channel, and the projection matrix.
    """
    grid = array_bytes(positions, positions, slices)
    return {
        "phantom": (elements + 9) * grid,
        "partial densities": elements * grid,
        "sinograms": 2 * array_bytes(channels, n_angles, positions, slices),
        "projector": projector_bytes(n_angles, positions, positions, itemsize=8),
    }


def check_memory(required: int | Mapping[str, int], what: str, *, allow: bool | None = None) -> None:
    """Refuse a run that would not fit in the memory available now.

    Parameters
    ----------
    required
        Bytes needed, or bytes by part (shown in the message).
    what
        What would be run, e.g. ``"simulate: experiment 'x' (31 tilts, 20000 positions, 1 slice)"``.
    allow
        True lifts the check; None reads :data:`ALLOW_ENV`.

    Raises
    ------
    ResourceError
        With the estimate, its parts, the memory available and how to override.
    """
    parts = dict(required) if isinstance(required, Mapping) else {"total": int(required)}
    total = sum(int(v) for v in parts.values())
    if allowed(allow):
        return
    available = available_memory()
    if available is None or total <= available:
        return
    detail = ", ".join(f"{name} {format_bytes(size)}" for name, size in parts.items() if size)
    raise ResourceError(
        f"{what}: needs about {format_bytes(total)} of memory ({detail}) but {format_bytes(available)} is "
        f"available; reduce the problem, or give --allow-large (or set {ALLOW_ENV}=1) to run it anyway"
    )


def check_iterations(iterations: int, name: str = "iterations", *, allow: bool | None = None) -> None:
    """Refuse more than :data:`MAX_ITERATIONS` iterations unless allowed (see :func:`allowed`).

    Raises
    ------
    ResourceError
        Naming the option and the limit.
    """
    if iterations > MAX_ITERATIONS and not allowed(allow):
        raise ResourceError(
            f"{name}: {iterations} iterations is more than {MAX_ITERATIONS}; SIRT-family solvers converge long "
            f"before — give --allow-large (or set {ALLOW_ENV}=1) if you mean it"
        )


def check_simulation(experiment: Any, *, allow: bool | None = None) -> None:
    """Refuse to simulate an experiment whose phantom, sinograms and projector would not fit in memory."""
    scan = experiment.scan
    channels = len(experiment.lines) + (experiment.haadf is not None)
    n_angles = int(experiment.angles.magnitude.size)
    check_memory(
        simulation_bytes(len(experiment.lines), channels, n_angles, scan.positions, scan.slices),
        f"simulate: experiment {experiment.name!r} ({n_angles} tilts, {scan.positions} positions, "
        f"{scan.slices} slices)",
        allow=allow,
    )


def check_solve_file(path: str | Path, chunk_slices: int, workers: int = 1, *, allow: bool | None = None) -> None:
    """Refuse a chunked solve of the series in ``path`` that would not fit (``workers`` chunks at once here).

    Every channel of the file is counted (an upper bound of those a solver reconstructs).
    """
    from .io import open_file

    with open_file(path, "TiltSeries") as file:
        channels, n_angles, positions, slices = (int(n) for n in file["data"].shape)
    per_task = min(max(int(chunk_slices), 1), slices)
    parts = solve_bytes(channels, n_angles, positions, per_task)
    check_memory(
        {name: max(int(workers), 1) * size for name, size in parts.items()},
        f"solve: {path} ({channels} channels, {n_angles} tilts, {positions} positions; {workers} task(s) of "
        f"{per_task} slices at once)",
        allow=allow,
    )
