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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pint

ureg: pint.UnitRegistry = pint.UnitRegistry()
ureg.formatter.default_format = "~"
Quantity = ureg.Quantity

#: Units in which edstomo reports each kind of value.
FACTOR_UNIT = "b*mol/g"
CROSS_SECTION_UNIT = "b"
FLUENCE_UNIT = "e/Å**2"
ELECTRON_UNIT = "e"
DENSITY_UNIT = "g/cm**3"


class UnitError(ValueError):
    """A value has no unit, or a unit of the wrong dimension."""


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
        When the value has no unit (a bare number), cannot be parsed, or has a
        dimension other than that of ``unit``.
    """
    expected = ureg.Unit(unit)
    quantity = _parse(value, unit, name)
    if not quantity.is_compatible_with(expected):
        raise UnitError(
            f"{name}: {value!r} has unit '{quantity.units}' "
            f"({quantity.dimensionality}); expected a quantity in {unit} "
            f"({expected.dimensionality})"
        )
    magnitude = np.asarray(quantity.magnitude)
    if magnitude.dtype.kind not in "biuf":
        raise UnitError(f"{name}: {value!r} is not numeric; expected a quantity in {unit}")
    return quantity


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
                f"{name}: cannot read {value!r} as a quantity ({error}); expected a quantity in {unit}, e.g. '1 {unit}'"
            ) from None
        if not isinstance(quantity, pint.Quantity) or quantity.unitless:
            raise UnitError(f"{name}: {value!r} has no unit; expected a quantity in {unit}")
        return quantity
    if isinstance(value, dict) and set(value) == {"magnitude", "units"}:
        return ureg.Quantity(np.asarray(value["magnitude"], dtype=float), value["units"])
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, (str, pint.Quantity)) for item in value):
        items = [as_quantity(item, unit, name) for item in value]
        first = items[0].units
        return ureg.Quantity(np.array([item.m_as(first) for item in items]), first)
    raise UnitError(
        f"{name}: {value!r} has no unit; expected a quantity in {unit} (write e.g. '{_example(value)} {unit}')"
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
