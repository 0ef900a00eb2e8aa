"""X-ray detector efficiency ε(E): a layered window / dead-layer / sensor model.

An X-ray of energy E reaches the sensor through the window layers and the
sensor's dead layer, and is detected when it is photo-absorbed in the active
thickness::

    ε(E) = Π_layers exp(−μ_i(E) ρ_i t_i) · exp(−μ_s(E) ρ_s t_dead) · (1 − exp(−τ_s(E) ρ_s t_s))

with μ the total mass attenuation coefficient (``xraylib.CS_Total_CP``) and τ
the photo-absorption one (``xraylib.CS_Photo_CP``), both in cm²/g. Every
material is a chemical formula or a NIST compound name that xraylib knows.
:data:`PRESETS` holds illustrative detectors, not calibrations of real ones: for
quantification use your instrument's efficiency (a constant or per line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pint
import xraylib
from edstomo.experiment import check_material
from edstomo.units import as_quantity, format_quantity, ureg


def _density(material: str, density: Any) -> pint.Quantity:
    if density is not None:
        value = as_quantity(density, "g/cm**3", f"{material}.density")
    else:
        try:
            z = xraylib.SymbolToAtomicNumber(material)
        except ValueError:
            z = 0
        if z <= 0:
            raise ValueError(f"density: the layer of {material!r} is not a pure element; give its density in g/cm³")
        value = ureg.Quantity(xraylib.ElementDensity(z), "g/cm**3")
    if not value.magnitude > 0:
        raise ValueError(f"density: {value} of {material!r} must be positive (g/cm³)")
    return value


def _coefficients(function: Any, material: str, energy_kev: np.ndarray) -> np.ndarray:
    """Mass attenuation coefficients (cm²/g) of ``material`` at each energy, from an xraylib function."""
    energy = np.asarray(energy_kev, dtype=float)
    values = np.empty(energy.shape)
    for index, e in np.ndenumerate(energy):
        try:
            values[index] = function(material, float(e))
        except ValueError as error:
            raise ValueError(
                f"energy_kev: xraylib has no attenuation data for {material!r} at {float(e):g} keV ({error})"
            ) from None
    return values


@dataclass(frozen=True)
class Layer:
    """One absorbing layer.

    Parameters
    ----------
    material : str
        Chemical formula (``"Si3N4"``, ``"Al"``) or xraylib NIST compound name.
    thickness : Quantity or str
        Thickness (a length, e.g. ``"40 nm"``); zero is allowed.
    density : Quantity or str, optional
        Density (g/cm³); defaults to the element's density for a pure element.
    """

    material: str
    thickness: pint.Quantity
    density: pint.Quantity | None = None

    def __post_init__(self) -> None:
        check_material(self.material)
        thickness = as_quantity(self.thickness, "nm", f"{self.material}.thickness")
        if not (np.isfinite(thickness.magnitude) and thickness.magnitude >= 0):
            raise ValueError(f"thickness: {thickness} of {self.material!r} must be finite and not negative")
        object.__setattr__(self, "thickness", thickness)
        object.__setattr__(self, "density", _density(self.material, self.density))

    @property
    def areal_density(self) -> float:
        """ρ t in g/cm²."""
        return float((self.density * self.thickness).m_as("g/cm**2"))

    def transmission(self, energy_kev: np.ndarray) -> np.ndarray:
        """Fraction of X-rays of energy ``energy_kev`` transmitted through the layer."""
        mu = _coefficients(xraylib.CS_Total_CP, self.material, energy_kev)
        return np.exp(-mu * self.areal_density)

    def to_dict(self) -> dict[str, str]:
        return {
            "material": self.material,
            "thickness": format_quantity(self.thickness),
            "density": format_quantity(self.density),
        }


@dataclass(frozen=True)
class LayeredDetector:
    """A detector: window layers, a dead layer and an active thickness of sensor material.

    Parameters
    ----------
    window : sequence of Layer or dict
        Layers in front of the sensor (light shield, window, grid are not modelled).
    dead_layer : Quantity or str
        Inactive sensor material at the entrance (a length).
    sensor_thickness : Quantity or str
        Active sensor thickness (a length).
    sensor : str
        Sensor material (default silicon).
    """

    window: tuple[Layer, ...] = ()
    dead_layer: pint.Quantity = field(default_factory=lambda: ureg.Quantity(20.0, "nm"))
    sensor_thickness: pint.Quantity = field(default_factory=lambda: ureg.Quantity(450.0, "µm"))
    sensor: str = "Si"

    def __post_init__(self) -> None:
        layers = tuple(layer if isinstance(layer, Layer) else Layer(**layer) for layer in self.window)
        object.__setattr__(self, "window", layers)
        object.__setattr__(self, "_dead", Layer(self.sensor, self.dead_layer))
        object.__setattr__(self, "dead_layer", self._dead.thickness)
        active = Layer(self.sensor, self.sensor_thickness)
        if not active.thickness.magnitude > 0:
            raise ValueError(f"sensor_thickness: {active.thickness} must be positive")
        object.__setattr__(self, "_active", active)
        object.__setattr__(self, "sensor_thickness", active.thickness)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> LayeredDetector:
        """Build from ``{"window": [{"material", "thickness", "density"?}, ...], "dead_layer", "sensor_thickness",
        "sensor"}`` (all keys optional)."""
        allowed = {"window", "dead_layer", "sensor_thickness", "sensor"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"efficiency: unknown detector keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**{**spec, "window": tuple(spec.get("window", ()))})

    def efficiency(self, energy_kev: float | np.ndarray) -> np.ndarray:
        """Detection efficiency ε at photon energy ``energy_kev`` (keV), in [0, 1]."""
        energy = np.asarray(energy_kev, dtype=float)
        bad = ~(np.isfinite(energy) & (energy > 0))
        if np.any(bad):
            first = float(energy[bad].ravel()[0])
            raise ValueError(f"energy_kev: {first!r} keV is not a positive, finite photon energy")
        transmitted = np.ones_like(energy)
        for layer in (*self.window, self._dead):
            transmitted = transmitted * layer.transmission(energy)
        tau = _coefficients(xraylib.CS_Photo_CP, self.sensor, energy)
        return transmitted * (1.0 - np.exp(-tau * self._active.areal_density))

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": [layer.to_dict() for layer in self.window],
            "dead_layer": format_quantity(self.dead_layer),
            "sensor_thickness": format_quantity(self.sensor_thickness),
            "sensor": self.sensor,
        }


#: Illustrative detectors (typical layer thicknesses, not a calibration of any instrument).
PRESETS: dict[str, dict[str, Any]] = {
    "windowless-sdd": {"window": [{"material": "Al", "thickness": "30 nm"}]},
    "si3n4-window-sdd": {
        "window": [
            {"material": "Al", "thickness": "30 nm"},
            {"material": "Si3N4", "thickness": "40 nm", "density": "3.17 g/cm**3"},
        ]
    },
}


def detector(spec: LayeredDetector | str | dict[str, Any]) -> LayeredDetector:
    """A :class:`LayeredDetector` from itself, a preset name, or a dict for :meth:`LayeredDetector.from_dict`."""
    if isinstance(spec, LayeredDetector):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"efficiency: unknown detector preset {spec!r}; presets: {', '.join(PRESETS)}")
        return LayeredDetector.from_dict(PRESETS[spec])
    if isinstance(spec, dict):
        return LayeredDetector.from_dict(spec)
    raise ValueError(f"efficiency: {spec!r} is not a detector (a LayeredDetector, a preset name or a dict)")
