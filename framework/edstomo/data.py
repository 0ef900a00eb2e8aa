"""Data containers: tilt series, reconstructed volumes, composition maps.

Array layouts (batch axes trailing, the layout of :mod:`edstomo.operators.projector`):

* :class:`TiltSeries` ``data``: ``(channels, tilts, positions, slices)``;
* :class:`Volume` ``data``: ``(channels, nz, nx, slices)``;
* :class:`CompositionMaps` ``weight_fractions``: ``(elements, nz, nx, slices)``,
  ``density``: ``(nz, nx, slices)`` in g/cm³.

``positions`` runs perpendicular to the tilt axis, ``slices`` along it. A 2-D
problem has one slice. Each object carries its provenance: a list of steps
(see :mod:`edstomo.provenance`) and, where known, the experiment definition.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pint

from . import chunked, io
from .errors import InputError
from .experiment import MAX_TILT_DEG
from .lines import element_of
from .provenance import versions
from .units import as_quantity, format_quantity, shown, ureg

if TYPE_CHECKING:
    from .experiment import Experiment

#: Name of the HAADF channel in a :class:`TiltSeries`.
HAADF = "HAADF"

#: Name of :attr:`CompositionMaps.uncertainty` in messages and in HDF5 files.
_SIGMA = "weight_fraction_uncertainty"


def _check_finite(name: str, array: np.ndarray, *, nonnegative: bool) -> None:
    """NaN, infinite (and, with ``nonnegative``, negative) values are errors naming the first index.

    Found through the minimum and maximum (NaN carries through both, ±inf is one of them): no temporaries.
    """
    if not array.size:
        return
    low, high = array.min(), array.max()
    if array.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        bad = ~np.isfinite(array)
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name}: contains {int(bad.sum())} NaN or infinite values (first at index {index})")
    if nonnegative and low < 0:
        index = tuple(int(i) for i in np.unravel_index(int(np.argmin(array)), array.shape))
        raise InputError(f"{name}: contains negative values (minimum {low:g} at index {index}); counts must be >= 0")


def _as_array(data: Any) -> np.ndarray:
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise InputError(f"data: not an array ({error})") from None


def _floating(values: Any) -> np.ndarray:
    """``values`` as a floating-point array: float32 and float64 kept as they are (no copy), anything else float64."""
    array = np.asarray(values)
    if array.dtype in (np.float32, np.float64):
        return array
    return np.asarray(array, dtype=np.float64)


def _check_pixel_size(value: Any) -> pint.Quantity:
    """A positive, finite length (the pixel or voxel size)."""
    pixel = as_quantity(value, "nm", "pixel_size")
    magnitude = np.asarray(pixel.magnitude)
    if magnitude.ndim != 0 or not np.isfinite(pixel.m_as("nm")) or not pixel.m_as("nm") > 0:
        raise InputError(f"pixel_size: {shown(value)} must be positive and finite (one length, in nm)")
    return pixel


def _check_channels(name: str, channels: list[str], count: int) -> list[str]:
    if isinstance(channels, str) or not isinstance(channels, (list, tuple)):
        raise InputError(f"{name}: {channels!r} must be a list of names")
    channels = [str(c) for c in channels]
    if len(channels) != count:
        raise InputError(f"{name}: {len(channels)} channel names {channels} for {count} channels in the data")
    if len(set(channels)) != len(channels):
        raise InputError(f"{name}: channel names {channels} are not unique")
    return channels


@dataclass(eq=False)
class TiltSeries:
    """A tilt series of HAADF and/or EDS line-intensity sinograms.

    Parameters
    ----------
    data : ndarray, shape (channels, tilts, positions, slices)
        Counts (EDS) or detected electrons (HAADF); finite and non-negative.
    channels : list of str
        ``"HAADF"`` and/or HyperSpy-style line names (``"Ag_La"``).
    angles : Quantity, shape (tilts,)
        Tilt angles (any angle unit).
    pixel_size : Quantity
        Beam-position step (a length).
    experiment : Experiment, optional
        The acquisition definition, stored with the data.
    provenance : list of dict
        Steps that made the series.
    """

    data: np.ndarray
    channels: list[str]
    angles: pint.Quantity
    pixel_size: pint.Quantity
    experiment: Experiment | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data = _as_array(self.data)
        if self.data.ndim != 4:
            raise InputError(
                f"data: shape {self.data.shape} has {self.data.ndim} axes; expected 4: "
                "(channels, tilts, positions, slices)"
            )
        if self.data.dtype.kind not in "fiu":
            raise InputError(f"data: dtype {self.data.dtype} is not numeric")
        self.channels = _check_channels("channels", self.channels, self.data.shape[0])
        for channel in self.channels:
            if channel != HAADF:
                element_of(channel)
        self.angles = as_quantity(self.angles, "deg", "angles").to("deg")
        if np.ndim(self.angles.magnitude) != 1 or len(self.angles.magnitude) != self.data.shape[1]:
            raise InputError(
                f"angles: {np.size(self.angles.magnitude)} tilt angles for {self.data.shape[1]} tilts in the data"
            )
        degrees = np.asarray(self.angles.magnitude, dtype=float)
        if not np.all(np.isfinite(degrees)) or np.any(np.abs(degrees) > MAX_TILT_DEG):
            raise InputError(
                f"angles: {shown(self.angles)} must be finite and within ±{MAX_TILT_DEG:g} deg "
                "(a tilt beyond a full turn is a unit mistake)"
            )
        self.pixel_size = _check_pixel_size(self.pixel_size)
        _check_finite("data", self.data, nonnegative=True)

    # ----- shape -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def n_tilts(self) -> int:
        return self.data.shape[1]

    @property
    def n_positions(self) -> int:
        return self.data.shape[2]

    @property
    def n_slices(self) -> int:
        return self.data.shape[3]

    @property
    def lines(self) -> list[str]:
        """The EDS line channels (every channel but HAADF), in order."""
        return [c for c in self.channels if c != HAADF]

    @property
    def has_haadf(self) -> bool:
        return HAADF in self.channels

    def channel(self, name: str) -> np.ndarray:
        """The sinogram of one channel, shape (tilts, positions, slices)."""
        if name not in self.channels:
            raise KeyError(f"channel: {name!r} is not in this tilt series; channels are {self.channels}")
        return self.data[self.channels.index(name)]

    def select(self, channels: list[str]) -> TiltSeries:
        """A tilt series holding only the given channels, in the given order."""
        stacked = np.stack([self.channel(c) for c in channels])
        return self.replace(data=stacked, channels=list(channels))

    def replace(self, **changes: Any) -> TiltSeries:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_step(self, record: dict[str, Any], **changes: Any) -> TiltSeries:
        """A copy with fields replaced and one more provenance step."""
        return self.replace(provenance=[*self.provenance, record], **changes)

    # ----- files -------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write to HDF5 atomically (see :mod:`edstomo.io` for the layout)."""
        return save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> TiltSeries:
        result = load(path)
        if not isinstance(result, cls):
            raise InputError(f"{path}: holds a {type(result).__name__}, not a tilt series")
        return result


@dataclass(eq=False)
class Volume:
    """Reconstructed maps, one per channel: ``data`` of shape (channels, nz, nx, slices).

    ``quantity`` says what the values are (e.g. ``"X_A = n f_A C_A rho"``) and
    ``unit`` their unit (``"arbitrary"`` when on no absolute scale).
    ``factor`` names the per-line factor ``g_A`` of the maps of EDS lines,
    ``X_A = K g_A C_A ρ`` with one unknown constant ``K``: ``"f_A"`` (EDS scale,
    eq. 11) or ``"z_A"`` (HAADF scale, eq. 17); it tells which quantifier
    applies (:meth:`edstomo.registry.Registry.quantifier_for`).  None: the maps
    cannot be quantified (e.g. a HAADF reconstruction).
    """

    data: np.ndarray
    channels: list[str]
    pixel_size: pint.Quantity
    quantity: str = "reconstruction"
    unit: str = "arbitrary"
    experiment: Experiment | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)
    factor: str | None = None

    def __post_init__(self) -> None:
        self.data = _as_array(self.data)
        if self.data.ndim != 4:
            raise InputError(
                f"data: shape {self.data.shape} has {self.data.ndim} axes; expected 4: (channels, nz, nx, slices)"
            )
        if self.data.dtype.kind not in "fiu":
            raise InputError(f"data: dtype {self.data.dtype} is not numeric")
        self.channels = _check_channels("channels", self.channels, self.data.shape[0])
        self.pixel_size = _check_pixel_size(self.pixel_size)
        _check_finite("data", self.data, nonnegative=False)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def channel(self, name: str) -> np.ndarray:
        """One channel's map, shape (nz, nx, slices)."""
        if name not in self.channels:
            raise KeyError(f"channel: {name!r} is not in this volume; channels are {self.channels}")
        return self.data[self.channels.index(name)]

    def replace(self, **changes: Any) -> Volume:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        return save(self, path)


@dataclass(eq=False)
class CompositionMaps:
    """Weight fractions of each element per voxel, and optionally density and particle mask.

    Parameters
    ----------
    weight_fractions : ndarray, shape (elements, nz, nx, slices)
        Dimensionless, in [0, 1]; they sum to 1 inside the particle and to 0 outside.
        float32 and float64 are kept as given (reconstructions give float32);
        other types are converted to float64.
    elements : list of str
        Element symbols.
    pixel_size : Quantity
        Voxel edge length.
    density : ndarray, shape (nz, nx, slices), optional
        Mass density (g/cm³); known for phantoms, not for reconstructions.
    mask : ndarray of bool, shape (nz, nx, slices), optional
        The voxels that belong to the particle.
    threshold : float, optional
        The threshold that defined ``mask`` (on the factor-normalised sum).
    uncertainty : ndarray, shape (elements, nz, nx, slices), optional
        The standard uncertainty of each weight fraction (dimensionless, >= 0),
        e.g. from :func:`edstomo.uncertainty.bootstrap`.
    """

    weight_fractions: np.ndarray
    elements: list[str]
    pixel_size: pint.Quantity
    density: np.ndarray | None = None
    mask: np.ndarray | None = None
    threshold: float | None = None
    experiment: Experiment | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)
    uncertainty: np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            self.weight_fractions = _floating(self.weight_fractions)
        except (TypeError, ValueError):
            raise InputError("weight_fractions: not an array of numbers") from None
        if self.weight_fractions.ndim != 4:
            raise InputError(
                f"weight_fractions: shape {self.weight_fractions.shape} has {self.weight_fractions.ndim} axes; "
                "expected 4: (elements, nz, nx, slices)"
            )
        self.elements = _check_channels("elements", self.elements, self.weight_fractions.shape[0])
        self.pixel_size = _check_pixel_size(self.pixel_size)
        _check_finite("weight_fractions", self.weight_fractions, nonnegative=True)
        tolerance = 1e-9 if self.weight_fractions.dtype == np.float64 else 1e-6
        if self.weight_fractions.max(initial=0) > 1 + tolerance:
            raise InputError(f"weight_fractions: maximum {self.weight_fractions.max():g} exceeds 1")
        total = self.weight_fractions.sum(axis=0, dtype=np.float64)  # accumulated in buffers
        if total.max(initial=0) > 1 + 1e-6:
            raise InputError(f"weight_fractions: they sum to {total.max():g} > 1 in some voxel")
        del total
        spatial = self.weight_fractions.shape[1:]
        if self.density is not None:
            self.density = _floating(self.density)
            if self.density.shape != spatial:
                raise InputError(f"density: shape {self.density.shape} does not match the maps' shape {spatial}")
            _check_finite("density", self.density, nonnegative=True)
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.shape != spatial:
                raise InputError(f"mask: shape {self.mask.shape} does not match the maps' shape {spatial}")
        if self.uncertainty is not None:
            self.uncertainty = np.asarray(self.uncertainty, dtype=float)
            if self.uncertainty.shape != self.weight_fractions.shape:
                raise InputError(
                    f"{_SIGMA}: shape {self.uncertainty.shape} does not match the weight fractions' "
                    f"{self.weight_fractions.shape}"
                )
            _check_finite(_SIGMA, self.uncertainty, nonnegative=True)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (nz, nx, slices)."""
        return tuple(self.weight_fractions.shape[1:])  # type: ignore[return-value]

    @property
    def particle_mask(self) -> np.ndarray:
        """Voxels inside the particle: ``mask`` if set, else where the fractions sum to > 0."""
        if self.mask is not None:
            return self.mask
        return self.weight_fractions.sum(axis=0) > 0

    def fraction(self, element: str) -> np.ndarray:
        """Weight fraction map of one element (or of a line's element), shape (nz, nx, slices)."""
        symbol = element if element in self.elements else element_of(element)
        if symbol not in self.elements:
            raise KeyError(f"element: {element!r} is not in these maps; elements are {self.elements}")
        return self.weight_fractions[self.elements.index(symbol)]

    def partial_density(self) -> np.ndarray:
        """Mass of each element per volume, C_A·ρ (g/cm³), shape (elements, nz, nx, slices)."""
        if self.density is None:
            raise InputError("density: these composition maps carry no density")
        return self.weight_fractions * self.density[None]

    def replace(self, **changes: Any) -> CompositionMaps:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        return save(self, path)


# ----- agreement with the stored experiment -------------------------------------
# A file carries its Experiment next to its arrays. When the two disagree — another tilt list, other
# lines, another scan or pixel size — every later step (physics factors, doses, the projector's angles)
# would silently use the wrong one: :func:`differences` lists what disagrees, :func:`check_agrees`
# raises with that list; :func:`save` and :func:`load` apply it.

#: Relative tolerance on pixel sizes and absolute tolerance (deg) on tilt angles.
PIXEL_RTOL = 1e-6
ANGLE_ATOL_DEG = 1e-6


def _pixel(obj: TiltSeries | Volume | CompositionMaps, experiment: Experiment) -> list[str]:
    data, stored = obj.pixel_size.m_as("nm"), experiment.scan.pixel_size.m_as("nm")
    if not np.isclose(data, stored, rtol=PIXEL_RTOL, atol=0.0):
        return [f"pixel size {data:g} nm in the data, {stored:g} nm in the experiment"]
    return []


def _grid(name: str, count: int, stored: int, what: str) -> list[str]:
    return [] if count == stored else [f"{name} {count} in the data, {stored} {what} in the experiment"]


def differences(obj: TiltSeries | Volume | CompositionMaps, experiment: Experiment | None = None) -> list[str]:
    """What disagrees between ``obj`` and ``experiment`` (default: the one it carries); [] when they agree.

    Parameters
    ----------
    obj
        A tilt series (angles, line channels, positions and
        pixel size are compared), a volume (line channels, nz = nx =
        positions, pixel size) or composition maps (nz = nx = positions, pixel
        size). The number of slices is not compared: a file may hold any
        range of slices of a scan.
    experiment
        The experiment to compare with; None uses ``obj.experiment`` (nothing to compare when absent).
    """
    experiment = obj.experiment if experiment is None else experiment
    if experiment is None:
        return []
    found: list[str] = []
    scan = experiment.scan
    if isinstance(obj, TiltSeries):
        angles, stored = obj.angles.m_as("deg"), experiment.angles.m_as("deg")
        if angles.shape != stored.shape:
            found.append(f"{angles.size} tilt angles in the data, {stored.size} in the experiment")
        elif not np.allclose(angles, stored, rtol=0.0, atol=ANGLE_ATOL_DEG):
            index = int(np.argmax(np.abs(angles - stored)))
            found.append(f"tilt {index} is {angles[index]:g} deg in the data, {stored[index]:g} deg in the experiment")
        unknown = [c for c in obj.lines if c not in experiment.lines]
        if unknown:
            found.append(f"lines {unknown} in the data are not among the experiment's lines {experiment.lines}")
        found += _grid("positions", obj.n_positions, scan.positions, "positions")
    elif isinstance(obj, Volume):
        unknown = [c for c in obj.channels if c != HAADF and c not in experiment.lines]
        if unknown:
            found.append(f"channels {unknown} in the data are not among the experiment's lines {experiment.lines}")
        _, nz, nx, _ = obj.shape
        found += _grid("nz", nz, scan.positions, "positions")
        found += _grid("nx", nx, scan.positions, "positions")
    elif isinstance(obj, CompositionMaps):
        nz, nx, _ = obj.shape
        found += _grid("nz", nz, scan.positions, "positions")
        found += _grid("nx", nx, scan.positions, "positions")
    found += _pixel(obj, experiment)
    return found


def check_agrees(obj: TiltSeries | Volume | CompositionMaps, where: str) -> None:
    """Raise :class:`~edstomo.errors.InputError` naming ``where`` when ``obj`` disagrees with its experiment."""
    found = differences(obj)
    if found:
        raise InputError(f"{where}: the stored experiment does not describe the data: {'; '.join(found)}")


# ----- files ------------------------------------------------------------------
def save(obj: TiltSeries | Volume | CompositionMaps, path: str | Path, *, compression: str | None = None) -> Path:
    """Save a tilt series, volume or composition maps to HDF5, atomically.

    Parameters
    ----------
    obj
        What to save.
    path
        Destination ``.h5`` file; replaced if it exists.
    compression
        ``"gzip"``: the large arrays chunked along the slices and gzip-compressed in
        threads (:mod:`edstomo.chunked`); None: uncompressed, contiguous.
    """
    writers: dict[type, Callable[[h5py.File, Any, str | None], None]] = {
        TiltSeries: _write_tilt_series,
        Volume: _write_volume,
        CompositionMaps: _write_composition,
    }
    writer = writers.get(type(obj))
    if writer is None:
        raise TypeError(f"obj: cannot save a {type(obj).__name__}; expected TiltSeries, Volume or CompositionMaps")
    path = Path(path)
    check_agrees(obj, f"obj ({type(obj).__name__} to be saved to {str(path)!r})")
    with io.atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as file:
            file.attrs["format"] = io.FORMAT
            file.attrs["format_version"] = io.FORMAT_VERSION
            file.attrs["object"] = type(obj).__name__
            if obj.experiment is not None:
                file.create_dataset("experiment", data=obj.experiment.to_json(), dtype=io.STRING)
            record = {"steps": obj.provenance, "versions": versions()}
            file.create_dataset("provenance", data=json.dumps(record), dtype=io.STRING)
            file.attrs["pixel_size"] = format_quantity(obj.pixel_size)
            writer(file, obj, compression)
    return path


def _strings(file: h5py.File, name: str, values: list[str]) -> None:
    file.create_dataset(name, data=np.array(values, dtype=object), dtype=io.STRING)


def _write_array(file: h5py.File, name: str, array: np.ndarray, compression: str | None) -> None:
    """Uncompressed as one contiguous dataset; gzip-compressed chunked along the slices, in threads."""
    if compression is None:
        file.create_dataset(name, data=array)
        return
    chunked.write_array(chunked.create_array(file, name, array.shape, array.dtype, compression), array)


def _write_tilt_series(file: h5py.File, series: TiltSeries, compression: str | None) -> None:
    _write_array(file, "data", series.data, compression)
    file["data"].attrs["axes"] = "channels,tilts,positions,slices"
    _strings(file, "channels", series.channels)
    file.create_dataset("angles", data=series.angles.m_as("deg"))
    file["angles"].attrs["units"] = "deg"


def _write_volume(file: h5py.File, volume: Volume, compression: str | None) -> None:
    _write_array(file, "data", volume.data, compression)
    file["data"].attrs["axes"] = "channels,nz,nx,slices"
    _strings(file, "channels", volume.channels)
    file.attrs["quantity"] = volume.quantity
    file.attrs["unit"] = volume.unit
    if volume.factor is not None:
        file.attrs["factor"] = volume.factor


def _write_composition(file: h5py.File, maps: CompositionMaps, compression: str | None) -> None:
    _write_array(file, "weight_fractions", maps.weight_fractions, compression)
    file["weight_fractions"].attrs["axes"] = "elements,nz,nx,slices"
    _strings(file, "elements", maps.elements)
    if maps.density is not None:
        _write_array(file, "density", maps.density, compression)
        file["density"].attrs["units"] = "g/cm**3"
    if maps.mask is not None:
        _write_array(file, "mask", maps.mask, compression)
    if maps.threshold is not None:
        file.attrs["threshold"] = float(maps.threshold)
    if maps.uncertainty is not None:
        file.create_dataset(_SIGMA, data=maps.uncertainty, compression=compression)
        file[_SIGMA].attrs["axes"] = "elements,nz,nx,slices"


def load(path: str | Path, *, slices: tuple[int, int] | None = None) -> TiltSeries | Volume | CompositionMaps:
    """Load an object saved by :func:`save`; errors name the file and what is wrong with it.

    ``slices=(start, stop)`` reads only that range of slices (the last axis) of
    the large arrays (``(0, 0)``: none, the object's header); compressed arrays
    written by :func:`save` are decompressed in threads (:func:`edstomo.chunked.read_array`).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    InputError
        The file is damaged, not an edstomo file, or its stored experiment
        disagrees with its data (see :func:`differences`).
    """
    obj = _load(path, slices)
    check_agrees(obj, f"path: {str(path)!r}")
    return obj


def _load(path: str | Path, slices: tuple[int, int] | None) -> TiltSeries | Volume | CompositionMaps:
    from .experiment import Experiment

    def read(dataset: h5py.Dataset) -> np.ndarray:
        start, stop = (0, dataset.shape[-1]) if slices is None else slices
        if not 0 <= start <= stop <= dataset.shape[-1]:
            raise InputError(f"slices: {slices} is not a range of the {dataset.shape[-1]} slices of {str(path)!r}")
        if start == stop:
            return np.zeros((*dataset.shape[:-1], 0), dtype=dataset.dtype)
        return chunked.read_array(dataset, start, stop)

    with io.open_file(path) as file, io.reading(path):
        experiment = Experiment.from_json(io.text_of(file["experiment"])) if "experiment" in file else None
        steps = json.loads(io.text_of(file["provenance"]))["steps"]
        pixel_size = ureg.Quantity(file.attrs["pixel_size"])
        kind = file.attrs["object"]
        common = {"pixel_size": pixel_size, "experiment": experiment, "provenance": steps}
        if kind == "TiltSeries":
            return TiltSeries(
                data=read(file["data"]),
                channels=io.strings_of(file["channels"]),
                angles=ureg.Quantity(file["angles"][()], file["angles"].attrs["units"]),
                **common,
            )
        if kind == "Volume":
            return Volume(
                data=read(file["data"]),
                channels=io.strings_of(file["channels"]),
                quantity=str(file.attrs["quantity"]),
                unit=str(file.attrs["unit"]),
                factor=str(file.attrs["factor"]) if "factor" in file.attrs else None,
                **common,
            )
        if kind == "CompositionMaps":
            return CompositionMaps(
                weight_fractions=read(file["weight_fractions"]),
                elements=io.strings_of(file["elements"]),
                density=read(file["density"]) if "density" in file else None,
                mask=read(file["mask"]) if "mask" in file else None,
                threshold=float(file.attrs["threshold"]) if "threshold" in file.attrs else None,
                uncertainty=file[_SIGMA][()] if _SIGMA in file else None,
                **common,
            )
        raise InputError(f"path: {str(path)!r} holds an unknown object {kind!r}")
