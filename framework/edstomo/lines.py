"""X-ray lines named as HyperSpy/exSpy name them (``"Ag_La"``, ``"Au_Ma"``, ``"Co_Ka"``).

A line name is ``<element symbol>_<family>``. Each family is emitted after the
ionisation of one sub-shell and collects one or more transitions (IUPAC names,
e.g. ``L3M5``). Atomic numbers, densities and transition energies come from
xraylib; standard atomic weights from pyxray (xraylib rounds some, e.g. Au 197.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pyxray
import xraylib

from .errors import InputError

#: Line family -> (ionised sub-shell, IUPAC transitions that make up the family).
LINE_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Ka": ("K", ("KL2", "KL3")),
    "Kb": ("K", ("KM2", "KM3")),
    "La": ("L3", ("L3M4", "L3M5")),
    "Lb1": ("L2", ("L2M4",)),
    "Lb2": ("L3", ("L3N4", "L3N5")),
    "Lb3": ("L1", ("L1M3",)),
    "Lb4": ("L1", ("L1M2",)),
    "Lg1": ("L2", ("L2N4",)),
    "Lg3": ("L1", ("L1N3",)),
    "Ll": ("L3", ("L3M1",)),
    "Ln": ("L2", ("L2M1",)),
    "Ma": ("M5", ("M5N6", "M5N7")),
    "Mb": ("M4", ("M4N6",)),
    "Mg": ("M3", ("M3N5",)),
    "Mz": ("M5", ("M5N3",)),
    "M2N4": ("M2", ("M2N4",)),
}

#: Highest atomic number edstomo knows (the range of Bote et al. 2009).
MAX_Z = 99


class LineError(InputError):
    """An unknown element, line family, or a line the element does not emit."""


@dataclass(frozen=True)
class XrayLine:
    """One characteristic X-ray line.

    Attributes
    ----------
    name : str
        HyperSpy-style name, e.g. ``"Ag_La"``.
    element : str
        Element symbol.
    z : int
        Atomic number.
    family : str
        Line family, e.g. ``"La"``.
    shell : str
        Ionised sub-shell (``"K"``, ``"L1"`` … ``"M5"``).
    transitions : tuple of str
        IUPAC transitions that the family collects and the element emits.
    energy_kev : float
        Energy of the strongest transition (keV).
    """

    name: str
    element: str
    z: int
    family: str
    shell: str
    transitions: tuple[str, ...]
    energy_kev: float


@cache
def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (``"Ag"`` -> 47); LineError if unknown."""
    try:
        z = int(xraylib.SymbolToAtomicNumber(symbol))
    except ValueError:
        z = 0
    if not 1 <= z <= MAX_Z or xraylib.AtomicNumberToSymbol(z) != symbol:
        raise LineError(f"element: unknown element symbol {symbol!r} (expected e.g. 'Ag', 'Au', 'Co')")
    return z


def atomic_weight(symbol: str) -> float:
    """Standard atomic weight (g/mol) of an element (pyxray's NIST values)."""
    return float(pyxray.element_atomic_weight(atomic_number(symbol)))


def element_density(symbol: str) -> float:
    """Density (g/cm³) of the pure element at room temperature."""
    return float(xraylib.ElementDensity(atomic_number(symbol)))


@cache
def parse_line(name: str) -> XrayLine:
    """Parse and check a HyperSpy-style line name.

    Parameters
    ----------
    name : str
        For example ``"Ag_La"``.

    Raises
    ------
    LineError
        When the name is malformed, the element or family is unknown, or the
        element emits none of the family's transitions.
    """
    if not isinstance(name, str) or name.count("_") != 1:
        raise LineError(f"line: {name!r} is not a line name; expected '<element>_<family>', e.g. 'Ag_La'")
    symbol, family = name.split("_")
    z = atomic_number(symbol)
    if family not in LINE_FAMILIES:
        raise LineError(f"line: {name!r} has unknown family {family!r}; known families: {', '.join(LINE_FAMILIES)}")
    shell, transitions = LINE_FAMILIES[family]
    emitted = []
    for transition in transitions:
        try:
            energy = xraylib.LineEnergy(z, getattr(xraylib, f"{transition}_LINE"))
        except ValueError:
            continue
        if energy > 0:
            emitted.append((transition, energy))
    if not emitted:
        raise LineError(f"line: {symbol} (Z = {z}) does not emit the {family} line ({name!r})")
    strongest = max(emitted, key=lambda item: _rate(z, item[0]))
    return XrayLine(
        name=name,
        element=symbol,
        z=z,
        family=family,
        shell=shell,
        transitions=tuple(t for t, _ in emitted),
        energy_kev=float(strongest[1]),
    )


def _rate(z: int, transition: str) -> float:
    try:
        return float(xraylib.RadRate(z, getattr(xraylib, f"{transition}_LINE")))
    except ValueError:
        return 0.0


def element_of(line: str) -> str:
    """Element symbol of a line name (``"Ag_La"`` -> ``"Ag"``)."""
    return parse_line(line).element
