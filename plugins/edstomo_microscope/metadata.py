"""Acquisition values read from HyperSpy metadata, and the record of what was found or assumed.

HyperSpy/RosettaSciIO map each vendor's metadata onto one tree. The values
edstomo needs, and where they live in that tree:

===============  =====================================================  ======
value            HyperSpy metadata path                                 unit
===============  =====================================================  ======
beam energy      ``Acquisition_instrument.TEM.beam_energy``             keV
probe current    ``Acquisition_instrument.TEM.beam_current``            nA
dwell time       ``Acquisition_instrument.TEM.dwell_time``              s
live time (EDS)  ``Acquisition_instrument.TEM.Detector.EDS.live_time``  s
real time (EDS)  ``Acquisition_instrument.TEM.Detector.EDS.real_time``  s
stage tilt       ``Acquisition_instrument.TEM.Stage.tilt_alpha``        deg
pixel size       scale and units of the navigation (EDS) axes           length
===============  =====================================================  ======

(``SEM`` instead of ``TEM`` is accepted too.) :class:`ValueSources` keeps,
for every value that enters the :class:`~edstomo.experiment.Experiment`, the
value and where it came from: ``"given"`` (by the caller), ``"metadata"``,
``"derived"`` (e.g. dwell time = live time / pixels) or ``"assumed"`` (a
documented default, with a warning).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import pint
from edstomo.errors import InputError
from edstomo.units import as_beam_energy, as_quantity, format_quantity, shown, ureg

__all__ = [
    "ASSUMED_DEFAULTS",
    "AcquisitionMetadata",
    "MetadataWarning",
    "ValueSources",
    "read_metadata",
]

#: Values assumed when neither the caller nor the file gives them. None of them
#: changes a weight fraction (only the absolute dose and solid angle, which
#: cancel in eq. 12 and 18); they make the Experiment complete.
ASSUMED_DEFAULTS: dict[str, str] = {
    "probe_current": "100 pA",
    "dwell_time": "1 ms",
    "pixel_size": "1 nm",
    "solid_angle": "0.7 sr",
}

_INSTRUMENTS = ("TEM", "SEM")


class MetadataWarning(UserWarning):
    """Acquisition values were missing from the files and had to be assumed."""


@dataclass(frozen=True)
class AcquisitionMetadata:
    """Acquisition values of one tilt, as read from one file (None when absent).

    Attributes
    ----------
    source : str
        The file (and, for stacks, the index) the values came from.
    beam_energy, probe_current, dwell_time, live_time, real_time, tilt, pixel_size : Quantity or None
        As listed in the module docstring; ``pixel_size`` is the EDS pixel before any rebinning.
    elevation, azimuth : Quantity or None
        The EDS detector's elevation and azimuth (``Detector.EDS.elevation_angle``, ``azimuth_angle``; deg).
    detector_type : str or None
        ``Detector.EDS.detector_type`` (e.g. ``"SuperX"``: four heads).
    window : tuple of (element symbol, thickness in nm), or None
        Bruker ``DetLayers`` (original metadata ``Detector.DetLayers``: atomic number and thickness in µm).
    sensor_thickness : Quantity or None
        Bruker ``Detector.DetectorThickness`` (mm).
    """

    source: str
    beam_energy: pint.Quantity | None = None
    probe_current: pint.Quantity | None = None
    dwell_time: pint.Quantity | None = None
    live_time: pint.Quantity | None = None
    real_time: pint.Quantity | None = None
    tilt: pint.Quantity | None = None
    pixel_size: pint.Quantity | None = None
    elevation: pint.Quantity | None = None
    azimuth: pint.Quantity | None = None
    detector_type: str | None = None
    window: tuple[tuple[str, float], ...] | None = None
    sensor_thickness: pint.Quantity | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle quantities as (magnitude, unit) so that they come back in edstomo's registry.

        (Pint unpickles into its application registry, which edstomo does not
        set; metadata read in a reader process must still mix with ``ureg``.)
        """
        values = {
            f.name: ("quantity", v.magnitude, f"{v.units:D}") if isinstance(v, pint.Quantity) else v
            for f in fields(self)
            if (v := getattr(self, f.name)) is not None
        }
        return _rebuild_metadata, (values,)


def _rebuild_metadata(values: dict[str, Any]) -> AcquisitionMetadata:
    return AcquisitionMetadata(**{k: ureg.Quantity(*v[1:]) if _is_quantity(v) else v for k, v in values.items()})


def _is_quantity(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 3 and value[0] == "quantity"


def _bruker_layers(signal: Any) -> tuple[tuple[tuple[str, float], ...] | None, pint.Quantity | None]:
    """Bruker's detector description: window layers (element, thickness in nm) and the sensor thickness.

    ``Detector.DetLayers.LayerN`` holds ``Atom`` (atomic number) and ``Thickness``
    (µm); ``Detector.DetectorThickness`` is in mm (read as Bruker's Esprit gives them).
    """
    original = getattr(signal, "original_metadata", None)
    layers_node = _node(original, "Detector.DetLayers")
    layers: list[tuple[str, float]] = []
    if layers_node is not None:
        import xraylib

        tree = layers_node.as_dictionary() if hasattr(layers_node, "as_dictionary") else dict(layers_node)
        for key in sorted(tree, key=lambda k: int("".join(c for c in k if c.isdigit()) or 0)):
            entry = tree[key]
            atom, thickness = _number(entry.get("Atom")), _number(entry.get("Thickness"))
            if atom is None or thickness is None or thickness < 0 or not 1 <= atom <= 98:
                continue
            layers.append((xraylib.AtomicNumberToSymbol(int(atom)), thickness * 1e3))
    sensor = _number(_node(original, "Detector.DetectorThickness"))
    return (tuple(layers) or None), (ureg.Quantity(sensor, "mm") if sensor and sensor > 0 else None)


def _node(metadata: Any, path: str) -> Any:
    """The value at a dotted path of a HyperSpy DictionaryTreeBrowser (None if absent)."""
    if metadata is None or not metadata.has_item(path):
        return None
    return metadata.get_item(path)


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _instrument_value(metadata: Any, leaf: str, unit: str, *, positive: bool = True) -> pint.Quantity | None:
    for instrument in _INSTRUMENTS:
        number = _number(_node(metadata, f"Acquisition_instrument.{instrument}.{leaf}"))
        if number is not None and (number > 0 or not positive):
            return ureg.Quantity(number, unit)
    return None


def _axis_pixel_size(signal: Any) -> pint.Quantity | None:
    """The pixel size of a signal's spatial axes (navigation axes of a spectrum image)."""
    axes = signal.axes_manager.navigation_axes or signal.axes_manager.signal_axes
    spatial = [a for a in axes if str(getattr(a, "units", "")).strip() not in ("", "<undefined>", "keV", "eV")]
    for axis in spatial[:2]:
        scale = _number(getattr(axis, "scale", None))
        units = str(axis.units).replace("µ", "u").replace("μ", "u")
        if scale is None or scale <= 0 or (scale == 1 and units in ("", "px", "pixel")):
            continue
        try:
            quantity = ureg.Quantity(scale, units)
        except Exception:  # pint raises several kinds of parse errors
            continue
        if quantity.is_compatible_with("nm"):
            return quantity.to("nm")
    return None


def read_metadata(eds: Any, haadf: Any | None, source: str) -> AcquisitionMetadata:
    """Read the acquisition values of one tilt from its EDS signal (and HAADF image).

    Parameters
    ----------
    eds : hyperspy signal
        The EDS spectrum image of the tilt.
    haadf : hyperspy signal or None
        The HAADF image, consulted for values the EDS metadata lacks.
    source : str
        Name of the file, used in reports.
    """
    trees = [eds.metadata] + ([haadf.metadata] if haadf is not None else [])

    def first(leaf: str, unit: str, *, positive: bool = True) -> pint.Quantity | None:
        for tree in trees:
            value = _instrument_value(tree, leaf, unit, positive=positive)
            if value is not None:
                return value
        return None

    pixel = _axis_pixel_size(eds)
    if pixel is None and haadf is not None:
        pixel = _axis_pixel_size(haadf)
    window, sensor = _bruker_layers(eds)
    kind = None
    for instrument in _INSTRUMENTS:
        kind = kind or _node(eds.metadata, f"Acquisition_instrument.{instrument}.Detector.EDS.detector_type")
    return AcquisitionMetadata(
        source=source,
        beam_energy=first("beam_energy", "keV"),
        probe_current=first("beam_current", "nA"),
        dwell_time=first("dwell_time", "s"),
        live_time=first("Detector.EDS.live_time", "s"),
        real_time=first("Detector.EDS.real_time", "s"),
        tilt=first("Stage.tilt_alpha", "deg", positive=False),
        pixel_size=pixel,
        elevation=first("Detector.EDS.elevation_angle", "deg"),
        azimuth=first("Detector.EDS.azimuth_angle", "deg", positive=False),
        detector_type=str(kind) if kind is not None else None,
        window=window,
        sensor_thickness=sensor,
    )


@dataclass
class ValueSources:
    """Values that enter the experiment, each with its origin, and the notes made on the way.

    ``values[name]`` is a quantity; ``origins[name]`` is one of ``"given"``,
    ``"metadata"``, ``"derived"`` or ``"assumed"``; ``notes`` are sentences for
    the user (also stored in the provenance).
    """

    values: dict[str, pint.Quantity] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, name: str, value: pint.Quantity, origin: str, note: str | None = None) -> None:
        self.values[name] = value
        self.origins[name] = origin
        if note:
            self.notes.append(note)

    def resolve(
        self, name: str, given: Any, found: pint.Quantity | None, unit: str, *, derived: bool = False
    ) -> pint.Quantity:
        """Take ``given`` if set, else ``found``, else the assumed default (with a note).

        A given beam energy may be an accelerating voltage ("200 kV"; the
        conversion is noted).

        Raises
        ------
        InputError
            When a given value is not positive and finite, or none of the three
            exists (the caller must give the value).
        """
        if given is not None:
            if name == "beam_energy":
                value, conversion = as_beam_energy(given, name)
                if conversion:
                    self.notes.append(conversion)
            else:
                value = as_quantity(given, unit, name)
            magnitude = value.m_as(unit)
            if not (math.isfinite(magnitude) and magnitude > 0):
                raise InputError(f"{name}: {shown(given)} must be positive and finite (in {unit})")
            if found is not None and not math.isclose(found.m_as(unit), value.m_as(unit), rel_tol=1e-6):
                self.notes.append(
                    f"{name}: given {format_quantity(value)} replaces {format_quantity(found)} from the files"
                )
            self.set(name, value, "given")
        elif found is not None:
            self.set(name, found, "derived" if derived else "metadata")
        elif name in ASSUMED_DEFAULTS:
            value = as_quantity(ASSUMED_DEFAULTS[name], unit, name)
            self.set(name, value, "assumed", f"{name}: not in the files; assumed {ASSUMED_DEFAULTS[name]}")
        else:
            raise InputError(f"{name}: not found in the files' metadata; give it explicitly (in {unit})")
        return self.values[name]

    @property
    def assumed(self) -> list[str]:
        """Names of the values that were assumed."""
        return [name for name, origin in self.origins.items() if origin == "assumed"]

    def warn(self) -> None:
        """Issue one :class:`MetadataWarning` listing the assumed values (if any)."""
        if self.assumed:
            details = "; ".join(note for note in self.notes if note.split(":")[0] in self.assumed)
            warnings.warn(
                f"values missing from the files were assumed ({details}); give them explicitly to replace them",
                MetadataWarning,
                stacklevel=3,
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible record: value and origin of each entry, and the notes."""
        return {
            "values": {name: format_quantity(value) for name, value in self.values.items()},
            "origins": dict(self.origins),
            "notes": list(self.notes),
        }
