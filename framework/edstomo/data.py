"""Data containers: tilt series, reconstructed volumes, composition maps.

Array layouts (batch axes trailing, the layout of :mod:`edstomo.projector`):

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pint

from .errors import InputError
from .experiment import MAX_TILT_DEG
from .lines import element_of
from .units import as_quantity, shown

if TYPE_CHECKING:
    from .experiment import Experiment

#: Name of the HAADF channel in a :class:`TiltSeries`.
HAADF = "HAADF"


def _check_finite(name: str, array: np.ndarray, *, nonnegative: bool) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name}: contains {int(bad.sum())} NaN or infinite values (first at index {index})")
    if nonnegative and array.size and array.min() < 0:
        index = tuple(int(i) for i in np.unravel_index(int(np.argmin(array)), array.shape))
        raise InputError(
            f"{name}: contains negative values (minimum {array.min():g} at index {index}); counts must be >= 0"
        )


def _as_array(data: Any) -> np.ndarray:
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise InputError(f"data: not an array ({error})") from None


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
        from .io import save

        return save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> TiltSeries:
        from .io import load

        result = load(path)
        if not isinstance(result, cls):
            raise InputError(f"{path}: holds a {type(result).__name__}, not a tilt series")
        return result


@dataclass(eq=False)
class Volume:
    """Reconstructed maps, one per channel: ``data`` of shape (channels, nz, nx, slices).

    ``quantity`` says what the values are (e.g. ``"X_A = n f_A C_A rho"``) and
    ``unit`` their unit (``"arbitrary"`` when on no absolute scale).
    """

    data: np.ndarray
    channels: list[str]
    pixel_size: pint.Quantity
    quantity: str = "reconstruction"
    unit: str = "arbitrary"
    experiment: Experiment | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)

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
        from .io import save

        return save(self, path)


@dataclass(eq=False)
class CompositionMaps:
    """Weight fractions of each element per voxel, and optionally density and particle mask.

    Parameters
    ----------
    weight_fractions : ndarray, shape (elements, nz, nx, slices)
        Dimensionless, in [0, 1]; they sum to 1 inside the particle and to 0 outside.
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
    """

    weight_fractions: np.ndarray
    elements: list[str]
    pixel_size: pint.Quantity
    density: np.ndarray | None = None
    mask: np.ndarray | None = None
    threshold: float | None = None
    experiment: Experiment | None = None
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self.weight_fractions = np.asarray(self.weight_fractions, dtype=float)
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
        if self.weight_fractions.max(initial=0) > 1 + 1e-9:
            raise InputError(f"weight_fractions: maximum {self.weight_fractions.max():g} exceeds 1")
        total = self.weight_fractions.sum(axis=0)
        if total.max(initial=0) > 1 + 1e-6:
            raise InputError(f"weight_fractions: they sum to {total.max():g} > 1 in some voxel")
        spatial = self.weight_fractions.shape[1:]
        if self.density is not None:
            self.density = np.asarray(self.density, dtype=float)
            if self.density.shape != spatial:
                raise InputError(f"density: shape {self.density.shape} does not match the maps' shape {spatial}")
            _check_finite("density", self.density, nonnegative=True)
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.shape != spatial:
                raise InputError(f"mask: shape {self.mask.shape} does not match the maps' shape {spatial}")

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
        from .io import save

        return save(self, path)
