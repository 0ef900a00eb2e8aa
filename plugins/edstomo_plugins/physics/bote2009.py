"""Inner-shell ionisation cross-sections by electron impact: Bote et al. (2009).

D. Bote, F. Salvat, A. Jablonski, C. J. Powell, Atomic Data and Nuclear Data
Tables 95 (2009) 871-909. Analytical formulas for the K, L1-L3 and M1-M5 shells
of Z = 1-99, fitted to distorted-wave Born (low energy) and plane-wave Born
(high energy) calculations. With overvoltage ``U = E / E_i``:

* ``U <= 16``: ``σ = 4π a0² (U − 1)/U² [a1 + a2 U + a3/(1+U) + a4/(1+U)³ + a5/(1+U)⁵]²``
* ``U > 16``: ``σ = 4π a0² U/(U + b⁻) (A/β²) {[ln X² − β²](1 + g1/X) + g2 + g3 (1 − β²)^¼ + g4/X}``

with ``β² = E(E + 2mc²)/(E + mc²)²`` and ``X = √(E(E + 2mc²))/mc²``. These are
direct ionisations (no Coster-Kronig or cascade transfer; see
:mod:`edstomo_plugins.physics.cascade`).

The coefficients are read from the package's own table ``data/bote2009.json``
(converted once from the published numbers), loaded once and cached.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

#: 4π a0² in barn (a0 = 5.29177210903e-11 m, CODATA 2018).
FOUR_PI_A0_SQUARED_BARN = 4.0 * np.pi * (5.29177210903e-11) ** 2 / 1e-28
#: Electron rest energy (eV).
MC2_EV = 510998.95
#: Overvoltage above which the high-energy branch applies.
U_SWITCH = 16.0
#: Shells of the table, in its order.
SHELLS = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
#: Name of the data source, for provenance records.
SOURCE = "Bote et al. 2009, ADNDT 95, 871 (analytical formulas)"


@cache
def _table() -> dict:
    text = (resources.files("edstomo_plugins.physics") / "data" / "bote2009.json").read_text(encoding="utf-8")
    table = json.loads(text)
    table["arrays"] = {int(z): np.array(rows, dtype=float) for z, rows in table.pop("elements").items()}
    return table


def citation() -> str:
    """The reference of the coefficient table."""
    return _table()["citation"]


def _coefficients(z: int, shell: str) -> np.ndarray:
    arrays = _table()["arrays"]
    if not (isinstance(z, (int, np.integer)) and int(z) in arrays):
        raise ValueError(f"z: {z!r} is outside the Bote 2009 table (atomic numbers 1 to {max(arrays)})")
    if shell not in SHELLS:
        raise ValueError(f"shell: {shell!r} is not one of the Bote 2009 shells {', '.join(SHELLS)}")
    rows = arrays[int(z)]
    index = SHELLS.index(shell)
    if index >= len(rows):
        raise ValueError(
            f"shell: Z = {z} has no {shell} shell in the Bote 2009 table (it has {', '.join(SHELLS[: len(rows)])})"
        )
    return rows[index]


def shells(z: int) -> tuple[str, ...]:
    """The shells of element ``z`` that the table covers, innermost first."""
    _coefficients(z, "K")
    return SHELLS[: len(_table()["arrays"][int(z)])]


def ionization_energy_ev(z: int, shell: str) -> float:
    """Bote's ionisation energy E_i of a shell (eV), the edge of the cross-section."""
    return float(_coefficients(z, shell)[0])


def cross_section_barn(z: int, shell: str, energy_ev: float | np.ndarray) -> np.ndarray:
    """Direct ionisation cross-section of a shell by electrons (barn).

    Parameters
    ----------
    z : int
        Atomic number, 1-99.
    shell : str
        ``"K"``, ``"L1"`` ... ``"M5"``.
    energy_ev : float or array
        Kinetic energy of the electrons (eV); every value must be positive.

    Returns
    -------
    numpy.ndarray
        Cross-sections in barn, the shape of ``energy_ev``; 0 at and below the
        ionisation energy.

    Raises
    ------
    ValueError
        For an atomic number or shell outside the table, or an energy that is
        not positive and finite.
    """
    energy = np.asarray(energy_ev, dtype=float)
    bad = ~(np.isfinite(energy) & (energy > 0))
    if np.any(bad):
        first = float(energy[bad].ravel()[0])
        raise ValueError(f"energy_ev: {first!r} eV is not a positive, finite electron energy")
    row = _coefficients(z, shell)
    e_i, a, b_minus, amplitude, g = row[0], row[1:6], row[6], row[7], row[8:12]
    u = energy / e_i
    above = u > 1.0
    low = above & (u <= U_SWITCH)
    high = u > U_SWITCH
    sigma = np.zeros_like(energy)
    ul = u[low]
    bracket = a[0] + a[1] * ul + a[2] / (1 + ul) + a[3] / (1 + ul) ** 3 + a[4] / (1 + ul) ** 5
    sigma[low] = (ul - 1) / ul**2 * bracket**2
    eh, uh = energy[high], u[high]
    beta2 = eh * (eh + 2 * MC2_EV) / (eh + MC2_EV) ** 2
    x = np.sqrt(eh * (eh + 2 * MC2_EV)) / MC2_EV
    braces = (np.log(x**2) - beta2) * (1 + g[0] / x) + g[1] + g[2] * (1 - beta2) ** 0.25 + g[3] / x
    sigma[high] = uh / (uh + b_minus) * amplitude / beta2 * braces
    return FOUR_PI_A0_SQUARED_BARN * sigma
