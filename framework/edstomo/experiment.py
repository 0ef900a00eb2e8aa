"""The declarative, unit-aware definition of an experiment.

An :class:`Experiment` holds everything a forward model, a physics model or a
solver needs to know about an acquisition: the beam energy, the X-ray lines,
the tilt angles, the scan, and the HAADF and EDS detectors. Every physical
field is a Pint quantity from :data:`edstomo.units.ureg`; strings such as
``"100 keV"`` are accepted and parsed, bare numbers are rejected. Derived
values (electrons per pixel, fluence) are read-only properties.

Experiments round-trip exactly through JSON and YAML (:meth:`Experiment.save`,
:meth:`Experiment.load`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pint
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import InputError
from .lines import element_of, parse_line
from .units import QuantityUnit, UnitError, as_beam_energy, as_quantity, shown, to_jsonable, ureg

#: Largest tilt angle magnitude (deg): beyond one full turn, a tilt is a unit mistake.
MAX_TILT_DEG = 360.0
#: Most tilt angles a start/stop/step scheme may generate.
MAX_TILTS = 100_000
#: Largest scattering angle a transmission (HAADF) detector can collect (mrad): 90°.
MAX_SCATTERING_MRAD = 1000 * math.pi / 2
#: Largest solid angle (sr): the full sphere.
MAX_SOLID_ANGLE_SR = 4 * math.pi


class ExperimentError(InputError):
    """An experiment definition (or one of its parts) is not valid.

    ``problems`` lists ``(field path, message)`` pairs, e.g.
    ``("scan.pixel_size", "'inf nm' is not finite; ...")``; the message joins them.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    @classmethod
    def from_validation(cls, error: ValidationError, model: str) -> ExperimentError:
        """The pydantic error of a model, with each problem named by its field path."""
        problems = []
        for item in error.errors(include_url=False):
            loc = [str(part) for part in item.get("loc", ())]
            path = ".".join(loc) or model
            message = str(item.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            leaf = loc[-1] if loc else model
            if not loc and item.get("type") == "value_error":  # a model check: its message names the fields
                problems.append((path, message))
                continue
            if message.startswith(leaf) and message[len(leaf) : len(leaf) + 1] in (":", ".", "["):
                message = path + message[len(leaf) :]
                problems.append((path, message))
                continue
            if item.get("type") not in ("value_error", "assertion_error"):
                message = message[:1].lower() + message[1:]
                if "input" in item and item.get("type") != "missing":
                    message += f" (got {shown(item['input'])[:80]})"
            problems.append((path, f"{path}: {message}"))
        return cls("; ".join(text for _, text in problems), problems)


def quantity_field(
    unit: str,
    *,
    minimum: str = "none",
    array: bool = False,
    maximum: float | None = None,
    why: str = "",
    beam: bool = False,
) -> Any:
    """An annotated pydantic type for a Pint quantity of the dimension of ``unit``.

    Parameters
    ----------
    unit
        A unit of the expected dimension; it appears in error messages.
    minimum
        ``"none"``, ``"nonnegative"`` or ``"positive"``: the check applied to
        every element of the magnitude. NaN and infinite values are always rejected.
    array
        Whether a one-dimensional array is expected instead of a scalar.
    maximum
        Largest accepted magnitude (absolute value), in ``unit``; None for no limit.
    why
        Why ``maximum`` is the limit (shown in the error).
    beam
        A beam energy: an accelerating voltage (``"200 kV"``) is accepted and
        converted (see :func:`edstomo.units.as_beam_energy`).
    """

    def validate(value: Any, info: ValidationInfo) -> pint.Quantity:
        name = info.field_name or "value"
        if array and isinstance(value, (list, tuple)) and len(value) == 0:
            raise UnitError(f"{name}: the list is empty; give at least one value in {unit}")
        quantity = as_beam_energy(value, name)[0] if beam else as_quantity(value, unit, name)
        try:
            magnitude = np.asarray(quantity.magnitude, dtype=float)
            limit = np.asarray(quantity.m_as(unit), dtype=float)
        except (TypeError, ValueError, OverflowError):
            raise UnitError(f"{name}: {shown(value)} is not a number in {unit}") from None
        if array and magnitude.ndim != 1:
            raise UnitError(f"{name}: expected a one-dimensional list of values in {unit}, got {shown(value)}")
        if not array and magnitude.ndim != 0:
            raise UnitError(f"{name}: expected a single value in {unit}, got {shown(value)}")
        if not (np.all(np.isfinite(magnitude)) and np.all(np.isfinite(limit))):
            raise UnitError(f"{name}: {shown(value)} is not finite; expected a finite quantity in {unit}")
        if minimum == "positive" and np.any(magnitude <= 0):
            raise UnitError(f"{name}: {shown(value)} must be positive (in {unit})")
        if minimum == "nonnegative" and np.any(magnitude < 0):
            raise UnitError(f"{name}: {shown(value)} must not be negative (in {unit})")
        if maximum is not None and np.any(np.abs(limit) > maximum):
            raise UnitError(f"{name}: {shown(value)} exceeds {maximum:g} {unit} in magnitude{why}")
        if array:
            return ureg.Quantity(magnitude, quantity.units)
        return quantity

    return Annotated[
        pint.Quantity,
        QuantityUnit(unit),
        PlainValidator(validate, json_schema_input_type=str),
        PlainSerializer(to_jsonable, when_used="always"),
    ]


_TILT_WHY = " (a tilt beyond a full turn is a unit mistake)"
BeamEnergy = quantity_field("keV", minimum="positive", beam=True)
Length = quantity_field("nm", minimum="positive")
Angle = quantity_field("deg", maximum=MAX_TILT_DEG, why=_TILT_WHY)
AngleArray = quantity_field("deg", array=True, maximum=MAX_TILT_DEG, why=_TILT_WHY)
ScatteringAngle = quantity_field(
    "mrad", minimum="nonnegative", maximum=MAX_SCATTERING_MRAD, why=" (90°: a transmission detector collects below it)"
)
SolidAngle = quantity_field("sr", minimum="positive", maximum=MAX_SOLID_ANGLE_SR, why=" (4π sr, the full sphere)")
Current = quantity_field("pA", minimum="positive")
Time = quantity_field("s", minimum="positive")
Electrons = quantity_field("e", minimum="positive")
Fluence = quantity_field("e/Å**2", minimum="positive")
Thickness = quantity_field("nm", minimum="nonnegative")
Density = quantity_field("g/cm**3", minimum="positive")


class _Model(BaseModel):
    """Base of the experiment's parts: frozen, no extra fields, errors as :class:`ExperimentError`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ExperimentError.from_validation(error, type(self).__name__) from None

    # Not a custom initialiser for pydantic: nested parts are validated in one pass, so each error keeps its path.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Any:
        try:
            return super().model_validate(obj, **options)
        except ValidationError as error:
            raise ExperimentError.from_validation(error, cls.__name__) from None


class TiltScheme(_Model):
    """Tilt angles: an explicit list, or ``start``, ``stop`` (inclusive) and ``step``."""

    angles: AngleArray | None = None
    start: Angle | None = None
    stop: Angle | None = None
    step: Angle | None = None

    @model_validator(mode="after")
    def _check(self) -> TiltScheme:
        ranged = (self.start, self.stop, self.step)
        if self.angles is not None:
            if any(v is not None for v in ranged):
                raise ValueError("tilts: give either 'angles' or 'start', 'stop' and 'step', not both")
            if np.size(self.angles.magnitude) == 0:
                raise ValueError("tilts.angles: the list of tilt angles is empty; give at least one angle in deg")
            return self
        if any(v is None for v in ranged):
            raise ValueError("tilts: give 'angles' (a list in deg) or all of 'start', 'stop' and 'step' (in deg)")
        step = self.step.m_as("deg")
        if step <= 0:
            raise ValueError(f"tilts.step: {self.step} must be positive (in deg)")
        if self.stop.m_as("deg") < self.start.m_as("deg"):
            raise ValueError(f"tilts: stop {self.stop} is below start {self.start}; the list would be empty")
        count = (self.stop.m_as("deg") - self.start.m_as("deg")) / step + 1
        if count > MAX_TILTS:
            raise ValueError(
                f"tilts: start {self.start}, stop {self.stop} and step {self.step} give {count:.3g} angles; "
                f"at most {MAX_TILTS} are accepted (is the step in the right unit?)"
            )
        return self

    @property
    def values(self) -> pint.Quantity:
        """The tilt angles as a one-dimensional quantity in degrees."""
        if self.angles is not None:
            return self.angles.to("deg")
        start, stop, step = (v.m_as("deg") for v in (self.start, self.stop, self.step))
        count = math.floor((stop - start) / step + 1e-9) + 1
        return ureg.Quantity(start + step * np.arange(count), "deg")

    @property
    def radians(self) -> np.ndarray:
        """The tilt angles in radians, as a plain array."""
        return self.values.m_as("rad")


class Scan(_Model):
    """The probe scan: beam positions across the tilt axis, pixel size, and slices along it."""

    positions: int = Field(gt=0, description="number of beam positions per line (perpendicular to the tilt axis)")
    pixel_size: Length
    slices: int = Field(default=1, gt=0, description="number of slices along the tilt axis")

    @property
    def pixel_area(self) -> pint.Quantity:
        return (self.pixel_size**2).to("Å**2")


class _Dose(_Model):
    """The electron dose of one detector's acquisition: give exactly one of
    ``fluence``, ``electrons_per_pixel``, or ``probe_current`` with ``dwell_time``."""

    fluence: Fluence | None = None
    electrons_per_pixel: Electrons | None = None
    probe_current: Current | None = None
    dwell_time: Time | None = None

    @model_validator(mode="after")
    def _one_dose(self) -> _Dose:
        given = [
            self.fluence is not None,
            self.electrons_per_pixel is not None,
            self.probe_current is not None or self.dwell_time is not None,
        ]
        kind = type(self).__name__
        if sum(given) != 1:
            raise ValueError(
                f"{kind}: give exactly one dose: 'fluence' (e/Å^2), 'electrons_per_pixel' (e), "
                "or 'probe_current' (pA) with 'dwell_time' (s)"
            )
        if given[2] and (self.probe_current is None or self.dwell_time is None):
            raise ValueError(f"{kind}: 'probe_current' and 'dwell_time' must be given together")
        return self

    def electrons(self, pixel_size: pint.Quantity) -> pint.Quantity:
        """Electrons per pixel (a charge in ``e``) for the given pixel size."""
        if self.electrons_per_pixel is not None:
            return self.electrons_per_pixel.to("e")
        if self.fluence is not None:
            return (self.fluence * pixel_size**2).to("e")
        return (self.probe_current * self.dwell_time).to("e")

    def fluence_at(self, pixel_size: pint.Quantity) -> pint.Quantity:
        """Fluence (e/Å²) for the given pixel size."""
        if self.fluence is not None:
            return self.fluence.to("e/Å**2")
        return (self.electrons(pixel_size) / pixel_size**2).to("e/Å**2")


class HAADFDetector(_Dose):
    """The annular dark-field detector: its dose and its collection angles."""

    inner_angle: ScatteringAngle = Field(default_factory=lambda: ureg.Quantity(94.0, "mrad"))
    outer_angle: ScatteringAngle = Field(default_factory=lambda: ureg.Quantity(611.0, "mrad"))

    @model_validator(mode="after")
    def _angles(self) -> HAADFDetector:
        if self.outer_angle.m_as("mrad") <= self.inner_angle.m_as("mrad"):
            raise ValueError(
                f"HAADFDetector: outer_angle {self.outer_angle} must exceed inner_angle {self.inner_angle}"
            )
        return self


def check_material(material: str) -> str:
    """A chemical formula or NIST compound name that xraylib knows (for X-ray attenuation), else an error."""
    import xraylib

    try:
        xraylib.CS_Total_CP(material, 10.0)
    except ValueError:
        raise ValueError(
            f"material: {material!r} is neither a chemical formula (e.g. 'Si3N4', 'Al') nor a NIST compound "
            "name known to xraylib"
        ) from None
    return material


class WindowLayer(_Model):
    """One absorbing layer in front of an EDS sensor (window, coating, contamination).

    ``density`` defaults to the pure element's for an element that is solid at room
    temperature; give it for compounds and for gaseous elements.
    """

    material: str = Field(description="chemical formula or NIST compound name known to xraylib")
    thickness: Thickness
    density: Density | None = None

    @field_validator("material")
    @classmethod
    def _material(cls, value: str) -> str:
        return check_material(value)

    def to_dict(self) -> dict[str, Any]:
        """``{"material", "thickness", "density"?}`` with quantities as strings."""
        return self.model_dump(mode="json", exclude_none=True)


#: Elevation limits (deg): a detector in the specimen plane or on the beam axis has no take-off geometry.
ELEVATION_RANGE_DEG = (0.0, 90.0)


def _check_elevation(value: pint.Quantity | None, name: str) -> pint.Quantity | None:
    if value is None:
        return None
    low, high = ELEVATION_RANGE_DEG
    if not low < value.m_as("deg") < high:
        raise ValueError(
            f"{name}: {shown(value)} must lie strictly between {low:g} and {high:g} deg "
            "(the detector's take-off angle above the specimen plane at zero tilt)"
        )
    return value


class DetectorHead(_Model):
    """One EDS detector: where it looks from, how much it collects, what it looks through.

    ``elevation`` is the angle of the detector's axis above the specimen plane at
    zero tilt, in (0°, 90°); ``azimuth`` its direction in that plane, measured
    from the direction perpendicular to the holder's tilt axis (see
    :attr:`EDSDetector.tilt_axis_azimuth`). ``window``, ``dead_layer`` and
    ``sensor_thickness`` describe the efficiency model (layers in front of a
    silicon sensor); without them the experiment's ``efficiency`` applies.
    """

    name: str = ""
    elevation: Angle
    azimuth: Angle = Field(default_factory=lambda: ureg.Quantity(0.0, "deg"))
    solid_angle: SolidAngle
    window: list[WindowLayer] = Field(default_factory=list)
    dead_layer: Thickness | None = None
    sensor_thickness: Length | None = None

    @field_validator("elevation")
    @classmethod
    def _elevation(cls, value: pint.Quantity) -> pint.Quantity:
        return _check_elevation(value, "elevation")

    @property
    def has_efficiency_model(self) -> bool:
        """Whether the head describes its window or sensor (else the experiment's efficiency applies)."""
        return bool(self.window) or self.dead_layer is not None or self.sensor_thickness is not None

    def efficiency_model(self) -> dict[str, Any]:
        """The layered efficiency model as a plain dict (window layers, dead layer, sensor thickness)."""
        spec: dict[str, Any] = {"window": [layer.to_dict() for layer in self.window]}
        if self.dead_layer is not None:
            spec["dead_layer"] = to_jsonable(self.dead_layer)
        if self.sensor_thickness is not None:
            spec["sensor_thickness"] = to_jsonable(self.sensor_thickness)
        return spec

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class EDSDetector(_Dose):
    """The X-ray detector: dose, solid angle and efficiency, and optionally its geometry.

    ``efficiency`` (dimensionless, in (0, 1]) applies to every line unless
    ``efficiency_overrides`` gives a line its own value.

    Geometry (needed for absorption, optional otherwise): one detector by
    ``elevation`` and ``azimuth``, or several by ``detectors`` (e.g. the four
    heads of a Super-X), whose solid angles add up to ``solid_angle`` (which may
    then be left out). ``tilt_axis_azimuth`` is the direction of the holder's
    tilt axis in the detectors' azimuth frame (default 90°, so that azimuth 0 is
    perpendicular to the tilt axis).
    """

    solid_angle: SolidAngle
    efficiency: float = Field(default=1.0, gt=0, le=1)
    efficiency_overrides: dict[str, float] = Field(default_factory=dict)
    elevation: Angle | None = None
    azimuth: Angle | None = None
    detectors: list[DetectorHead] | None = None
    tilt_axis_azimuth: Angle | None = None

    @model_validator(mode="before")
    @classmethod
    def _total_solid_angle(cls, data: Any) -> Any:
        """Without ``solid_angle``, the detectors' solid angles add up to it."""
        if isinstance(data, dict) and data.get("solid_angle") is None and data.get("detectors"):
            heads = data["detectors"]
            try:
                total = sum(
                    as_quantity(h.solid_angle if isinstance(h, DetectorHead) else h["solid_angle"], "sr").m_as("sr")
                    for h in heads
                )
            except (KeyError, TypeError, UnitError):
                return data  # the detectors' own validation names the problem
            data = {**data, "solid_angle": ureg.Quantity(total, "sr")}
        return data

    @field_validator("efficiency_overrides")
    @classmethod
    def _overrides(cls, value: dict[str, float]) -> dict[str, float]:
        for line, eff in value.items():
            parse_line(line)
            if not 0 < eff <= 1 or not math.isfinite(eff):
                raise ValueError(f"efficiency_overrides[{line!r}]: {eff!r} must lie in (0, 1]")
        return value

    @field_validator("elevation")
    @classmethod
    def _elevation(cls, value: pint.Quantity | None) -> pint.Quantity | None:
        return _check_elevation(value, "elevation")

    @model_validator(mode="after")
    def _geometry(self) -> EDSDetector:
        if self.detectors is not None:
            if not self.detectors:
                raise ValueError("eds.detectors: the list is empty; give at least one detector or leave it out")
            if self.elevation is not None or self.azimuth is not None:
                raise ValueError("eds: give either 'elevation'/'azimuth' (one detector) or 'detectors', not both")
            total = sum(h.solid_angle.m_as("sr") for h in self.detectors)
            if not math.isclose(total, self.solid_angle.m_as("sr"), rel_tol=1e-6):
                raise ValueError(
                    f"eds.solid_angle: {shown(self.solid_angle)} differs from the sum of the detectors' solid "
                    f"angles {total:g} sr; leave solid_angle out or make them agree"
                )
        elif self.azimuth is not None and self.elevation is None:
            raise ValueError("eds.azimuth: an azimuth without an elevation places no detector; give 'elevation' too")
        return self

    def efficiency_for(self, line: str) -> float:
        """Detector efficiency for one line (dimensionless)."""
        return self.efficiency_overrides.get(line, self.efficiency)

    @property
    def heads(self) -> list[DetectorHead]:
        """The detectors with their geometry: ``detectors``, or the one of ``elevation``/``azimuth``; [] if none."""
        if self.detectors is not None:
            return list(self.detectors)
        if self.elevation is None:
            return []
        azimuth = self.azimuth if self.azimuth is not None else ureg.Quantity(0.0, "deg")
        return [DetectorHead(elevation=self.elevation, azimuth=azimuth, solid_angle=self.solid_angle)]

    @property
    def tilt_axis(self) -> pint.Quantity:
        """Azimuth of the tilt axis in the detectors' frame (deg; default 90°)."""
        return self.tilt_axis_azimuth if self.tilt_axis_azimuth is not None else ureg.Quantity(90.0, "deg")


class Experiment(_Model):
    """A complete acquisition, as a validated declarative object.

    Examples
    --------
    >>> exp = Experiment(
    ...     beam_energy="100 keV", lines=["Ag_La", "Au_Ma"],
    ...     tilts=TiltScheme(start="-75 deg", stop="75 deg", step="5 deg"),
    ...     scan=Scan(positions=97, pixel_size="1.5 nm"),
    ...     haadf=HAADFDetector(electrons_per_pixel="1e5 e"),
    ...     eds=EDSDetector(probe_current="100 pA", dwell_time="0.5 s", solid_angle="0.7 sr"))
    >>> round(exp.eds_fluence.m_as("e/Å**2"))
    1387002
    """

    name: str = "experiment"
    description: str = ""
    beam_energy: BeamEnergy
    lines: list[str] = Field(min_length=1)
    tilts: TiltScheme
    scan: Scan
    haadf: HAADFDetector | None = None
    eds: EDSDetector

    @field_validator("lines")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        for line in value:
            parse_line(line)
        if len(set(value)) != len(value):
            raise ValueError(f"lines: {value!r} names a line twice")
        elements = [element_of(line) for line in value]
        if len(set(elements)) != len(elements):
            raise ValueError(f"lines: {value!r} gives two lines of one element; quantification needs one per element")
        return value

    @field_validator("tilts", mode="before")
    @classmethod
    def _tilt_list(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple, pint.Quantity)):
            return {"angles": value}
        return value

    @model_validator(mode="after")
    def _override_lines(self) -> Experiment:
        unknown = set(self.eds.efficiency_overrides) - set(self.lines)
        if unknown:
            raise ValueError(f"eds.efficiency_overrides: {sorted(unknown)} are not among the lines {self.lines}")
        return self

    @model_validator(mode="after")
    def _derived_doses(self) -> Experiment:
        """The doses derived from the given ones must be finite and positive (no overflow or underflow)."""
        detectors = {name: getattr(self, name) for name in type(self).model_fields}
        for name, detector in detectors.items():
            if not isinstance(detector, _Dose):
                continue
            for what, compute, unit in (
                ("electrons per pixel", detector.electrons, "e"),
                ("fluence", detector.fluence_at, "e/Å**2"),
            ):
                try:
                    value = float(compute(self.scan.pixel_size).m_as(unit))
                except (ArithmeticError, ValueError):
                    value = math.nan
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(
                        f"{name}: the {what} derived from the dose and scan.pixel_size {shown(self.scan.pixel_size)} "
                        f"is {value:g} {unit}; the values are outside any physical range"
                    )
        return self

    # ----- derived values -------------------------------------------------
    @property
    def elements(self) -> list[str]:
        """Element symbols, in the order of :attr:`lines`."""
        return [element_of(line) for line in self.lines]

    @property
    def angles(self) -> pint.Quantity:
        """Tilt angles (deg)."""
        return self.tilts.values

    @property
    def eds_electrons_per_pixel(self) -> pint.Quantity:
        """EDS dose per pixel (e)."""
        return self.eds.electrons(self.scan.pixel_size)

    @property
    def eds_fluence(self) -> pint.Quantity:
        """EDS fluence (e/Å²)."""
        return self.eds.fluence_at(self.scan.pixel_size)

    @property
    def haadf_electrons_per_pixel(self) -> pint.Quantity:
        """HAADF dose per pixel (e); an error when there is no HAADF detector."""
        return self._haadf().electrons(self.scan.pixel_size)

    @property
    def haadf_fluence(self) -> pint.Quantity:
        """HAADF fluence (e/Å²)."""
        return self._haadf().fluence_at(self.scan.pixel_size)

    def _haadf(self) -> HAADFDetector:
        if self.haadf is None:
            raise ValueError("haadf: this experiment has no HAADF detector")
        return self.haadf

    # ----- files ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dictionary (quantities as strings or magnitude/units mappings)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        """Read an experiment from JSON text; :class:`ExperimentError` for bad JSON or a bad definition."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ExperimentError(
                f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
                + ("; the text is empty" if not text.strip() else "")
            ) from None
        except RecursionError:
            raise ExperimentError("not valid JSON (nested too deeply)") from None
        return cls._from_data(data, "JSON")

    @classmethod
    def from_yaml(cls, text: str) -> Experiment:
        """Read an experiment from YAML text; :class:`ExperimentError` for bad YAML or a bad definition."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ExperimentError(f"not valid YAML ({problem}{where})") from None
        except RecursionError:
            raise ExperimentError("not valid YAML (nested too deeply)") from None
        return cls._from_data(data, "YAML")

    @classmethod
    def _from_data(cls, data: Any, kind: str) -> Experiment:
        if data is None:
            raise ExperimentError(f"the {kind} text holds no experiment (it is empty)")
        if not isinstance(data, dict):
            raise ExperimentError(
                f"the {kind} text holds a {type(data).__name__}; expected a mapping of experiment fields "
                "(beam_energy, lines, tilts, scan, eds, ...)"
            )
        return cls.model_validate(data)

    def save(self, path: str | Path) -> Path:
        """Write the experiment as YAML (``.yaml``/``.yml``) or JSON (any other suffix), atomically."""
        from .io import atomic_write_text

        path = Path(path)
        text = self.to_yaml() if path.suffix.lower() in {".yaml", ".yml"} else self.to_json()
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        """Read an experiment from a YAML or JSON file (by suffix)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"experiment file {str(path)!r} does not exist")
        if not path.is_file():
            raise InputError(f"experiment file {str(path)!r} is not a regular file; expected YAML or JSON")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"experiment file {str(path)!r} is not UTF-8 text; expected YAML or JSON") from None
        except OSError as error:
            raise InputError(f"experiment file {str(path)!r} cannot be read ({error.strerror})") from None
        try:
            return cls.from_yaml(text) if path.suffix.lower() in {".yaml", ".yml"} else cls.from_json(text)
        except ExperimentError as error:
            raise ExperimentError(f"experiment file {str(path)!r}: {error}", error.problems) from None
