"""One Pint unit registry for the whole package, and helpers to parse quantities.

Every physical value that enters or leaves edstomo is a :class:`pint.Quantity`
from :data:`ureg`. The registry is Pint's default one, in which

* ``e`` is the elementary charge, so an electron *count* is a charge
  (``100 pA * 0.5 s`` is ``3.121e8 e``) and a *fluence* is a charge per area
  (``e/Å^2``);
* ``b`` (barn, 1e-28 m²) is the unit of cross-sections, so the quantification
  factors ``f_A`` and ``z_A`` are in ``b·mol/g``.

Internally, solvers and projectors work on plain arrays in documented units;
the conversion happens at the boundary through :func:`as_quantity`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pint

from .errors import InputError

ureg: pint.UnitRegistry = pint.UnitRegistry()
ureg.formatter.default_format = "~"
Quantity = ureg.Quantity

#: Units in which edstomo reports each kind of value.
FACTOR_UNIT = "b*mol/g"
CROSS_SECTION_UNIT = "b"
FLUENCE_UNIT = "e/Å**2"
ELECTRON_UNIT = "e"
DENSITY_UNIT = "g/cm**3"


class UnitError(InputError):
    """A value has no unit, or a unit of the wrong dimension or kind."""


class UnitNote(UserWarning):
    """A value was given in a unit that needed an interpretation (e.g. a voltage for an energy)."""


#: Kinds of dimensionless quantity that Pint cannot tell apart by dimension (plane angles,
#: solid angles and plain numbers are all dimensionless): the root unit each must reduce to.
_ANGLE_KINDS = {(("radian", 1),): "a plane angle (deg, rad, mrad)", (("radian", 2),): "a solid angle (sr, msr)"}


def _root(unit: Any) -> tuple[tuple[str, float], ...]:
    """The root units of ``unit`` as sorted (name, exponent) pairs, e.g. (("radian", 2),) for sr."""
    return tuple(sorted(dict(ureg.get_root_units(unit)[1]._units).items()))


def shown(value: Any) -> str:
    """A value as a user wrote it, for messages: quantities as ``'-8 nm'``, the rest with ``repr``."""
    if isinstance(value, pint.Quantity):
        magnitude = value.magnitude
        text = f"{magnitude:g}" if np.ndim(magnitude) == 0 else np.array2string(np.asarray(magnitude), threshold=6)
        return repr(f"{text} {value.units:~}".strip())
    return repr(value)


def as_quantity(value: Any, unit: str, name: str = "value") -> pint.Quantity:
    """Parse ``value`` into a quantity whose unit is compatible with ``unit``.

    Parameters
    ----------
    value
        A Pint quantity, a string such as ``"100 keV"``, a mapping
        ``{"magnitude": ..., "units": ...}`` (scalar or nested list), or a
        sequence of strings/quantities with one unit.
    unit
        A unit of the expected dimension, e.g. ``"keV"``.
    name
        Name of the parameter, used in error messages.

    Returns
    -------
    pint.Quantity
        The value in the registry :data:`ureg`, in the unit it was given in.

    Raises
    ------
    UnitError
        When the value has no unit (a bare number), cannot be parsed, has a
        dimension other than that of ``unit``, or — for angles — is of another
        kind: a plane angle must reduce to radians and a solid angle to
        steradians (radian²), although Pint treats both as dimensionless.
    """
    expected = ureg.Unit(unit)
    quantity = _parse(value, unit, name)
    if not quantity.is_compatible_with(expected):
        raise UnitError(
            f"{name}: {shown(value)} has unit '{quantity.units}' "
            f"({quantity.dimensionality}); expected a quantity in {unit} "
            f"({expected.dimensionality})"
        )
    kind = _ANGLE_KINDS.get(_root(expected))
    if kind is not None and _root(quantity.units) != _root(expected):
        raise UnitError(
            f"{name}: {shown(value)} is not {kind}; expected a quantity in {unit} "
            f"(Pint calls angles dimensionless, edstomo does not mix them)"
        )
    magnitude = np.asarray(quantity.magnitude)
    if magnitude.dtype.kind not in "biuf":
        raise UnitError(f"{name}: {shown(value)} is not numeric; expected a quantity in {unit}")
    return quantity


def as_beam_energy(value: Any, name: str = "beam_energy") -> tuple[pint.Quantity, str | None]:
    """Parse a beam energy; an accelerating voltage (``"200 kV"``) is read as the electron's energy.

    An electron accelerated through a potential difference U gains the kinetic
    energy e·U: 200 kV gives 200 keV (eV per elementary charge). Microscopists
    quote the high tension in kV, so a voltage is accepted here (and only here).

    Returns
    -------
    (Quantity, str or None)
        The energy (in keV when converted from a voltage) and a note describing
        the conversion, or None when the value was an energy. A :class:`UnitNote`
        warning carries the same note.
    """
    if isinstance(value, (str, pint.Quantity)):
        try:
            candidate = _parse(value, "keV", name)
        except UnitError:
            candidate = None
        if candidate is not None and candidate.is_compatible_with("V"):
            energy = (candidate * ureg.e).to("keV")
            note = (
                f"{name}: {shown(value)} is an accelerating voltage; read as the electron energy "
                f"{energy.magnitude:g} keV (1 eV per volt for the elementary charge e)"
            )
            warnings.warn(note, UnitNote, stacklevel=2)
            return energy, note
    return as_quantity(value, "keV", name), None


def _parse(value: Any, unit: str, name: str) -> pint.Quantity:
    if isinstance(value, pint.Quantity):
        if value._REGISTRY is not ureg:  # a quantity from another registry
            return ureg.Quantity(value.magnitude, str(value.units))
        return value
    if isinstance(value, str):
        try:
            quantity = ureg.Quantity(value)
        except Exception as error:  # pint raises several kinds of parse errors
            raise UnitError(
                f"{name}: cannot read {value!r} as a quantity ({str(error).strip() or type(error).__name__}); "
                f"expected a quantity in {unit}, e.g. '1 {unit}'"
            ) from None
        if not isinstance(quantity, pint.Quantity) or quantity.unitless:
            raise UnitError(f"{name}: {value!r} has no unit; expected a quantity in {unit}")
        return quantity
    if isinstance(value, dict) and set(value) == {"magnitude", "units"}:
        try:
            magnitude = np.asarray(value["magnitude"], dtype=float)
        except (TypeError, ValueError, OverflowError):
            raise UnitError(
                f"{name}: magnitude {value['magnitude']!r} is not a number or list of numbers; "
                f"expected a quantity in {unit}"
            ) from None
        if not isinstance(value["units"], str):
            raise UnitError(f"{name}: units {value['units']!r} is not a unit name; expected e.g. {unit!r}")
        try:
            return ureg.Quantity(magnitude, value["units"])
        except Exception as error:  # pint raises several kinds of parse errors
            raise UnitError(
                f"{name}: cannot read the units {value['units']!r} ({error}); expected a quantity in {unit}"
            ) from None
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, (str, pint.Quantity)) for item in value):
        items = [as_quantity(item, unit, name) for item in value]
        first = items[0].units
        return ureg.Quantity(np.array([item.m_as(first) for item in items]), first)
    raise UnitError(
        f"{name}: {shown(value)} has no unit; expected a quantity in {unit} (write e.g. '{_example(value)} {unit}')"
    )


def _example(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "1"


def format_quantity(quantity: pint.Quantity) -> str:
    """Format a scalar quantity so that :func:`as_quantity` reads it back exactly.

    The magnitude is written with ``repr`` (shortest round-tripping form) and the
    unit in Pint's compact abbreviated form, e.g. ``"444.0 e/Å**2"``.
    """
    return f"{float(quantity.magnitude)!r} {quantity.units:~C}"


def to_jsonable(quantity: pint.Quantity) -> str | dict[str, Any]:
    """Serialise a quantity: a string for scalars, a mapping for arrays."""
    magnitude = quantity.magnitude
    if np.ndim(magnitude) == 0:
        return format_quantity(quantity)
    return {"magnitude": np.asarray(magnitude, dtype=float).tolist(), "units": f"{quantity.units:~C}"}


@dataclass(frozen=True)
class QuantityUnit:
    """Marks a pydantic field as a quantity of the dimension of ``unit`` (shown in help texts)."""

    unit: str
