"""Elastic cross-sections of atoms for fast electrons (for the HAADF factor z_A = σ_ela / M).

Two families of models:

* Browning (1991), "Universal elastic scattering cross sections for electrons in
  the range 1-100 keV", Appl. Phys. Lett. 58, 2845: a fit to Mott total
  cross-sections::

      σ = 4.7e-18 (Z^1.33 + 0.032 Z²) / [(E + 0.0155 Z^1.33 E^0.5)(1 − 0.02 Z^0.5 exp(−u²))]  cm²

  with E in keV. The paper writes ``u = log10(8 E Z^−1.33)`` (``form="published"``);
  MC X-ray evaluates ``u = log10(8) · E · Z^−1.33`` (``form="mcxray"``), which is
  what reproduces the values of Yuan et al. (2020), Table 2. Outside 1-100 keV
  the fit is extrapolated and a :class:`ModelRangeWarning` is issued (at
  200-300 keV it is about half of Mott totals).

* Screened Rutherford (Wentzel) with relativistic kinematics::

      dσ/dΩ = (Z e²/4πε0)² / (4 (pv)²) / (sin²(θ/2) + η)²

  with Wentzel's screening ``η = (ħ / (2 p R))²``, atomic radius
  ``R = a0 Z^−1/3``, and relativistic momentum p and velocity v. Its total
  cross-section lies within −4 % to +23 % of Browning's Mott fit for Z = 6-79 at
  30-100 keV (Molière's screening, made for multiple scattering, would
  underestimate heavy-atom totals by up to 6×).
  Integrated over a HAADF annulus θ1..θ2 (with ``s = sin²(θ/2)``)::

      σ = π (Z e²/4πε0)² / (pv)² · [1/(s1 + η) − 1/(s2 + η)]

  which is the part of the elastic scattering that reaches the detector.

All functions take NumPy-broadcastable ``z`` and energies and return barn.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Electron rest energy (eV).
MC2_EV = 510998.95
#: e²/(4πε0) = α ħc (eV·m).
COULOMB_EV_M = 7.2973525693e-3 * 1.973269804e-7
#: ħc (eV·m).
HBAR_C_EV_M = 1.973269804e-7
#: Bohr radius (m).
A0_M = 5.29177210903e-11
#: Range of energies (keV) over which Browning's fit was made.
BROWNING_RANGE_KEV = (1.0, 100.0)
#: Browning forms.
BROWNING_FORMS = ("mcxray", "published")
_CM2_TO_BARN = 1e24
_M2_TO_BARN = 1e28


class ModelRangeWarning(UserWarning):
    """A physical model is used outside the range it was made for."""


def _checked(z: np.ndarray | int, energy_kev: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=float)
    energy = np.asarray(energy_kev, dtype=float)
    if np.any(~np.isfinite(z) | (z < 1) | (z != np.round(z))):
        raise ValueError(f"z: {z!r} must hold atomic numbers (integers >= 1)")
    bad = ~(np.isfinite(energy) & (energy > 0))
    if np.any(bad):
        first = float(energy[bad].ravel()[0])
        raise ValueError(f"energy_kev: {first!r} keV is not a positive, finite electron energy")
    return z, energy


def browning_total_barn(z: np.ndarray | int, energy_kev: np.ndarray | float, form: str = "mcxray") -> np.ndarray:
    """Browning's (1991) total elastic cross-section (barn).

    Parameters
    ----------
    z : int or array
        Atomic number(s).
    energy_kev : float or array
        Electron kinetic energy (keV).
    form : str
        ``"mcxray"`` (u = log10(8)·E·Z^−1.33, as MC X-ray computes it) or
        ``"published"`` (u = log10(8 E Z^−1.33)).

    Warns
    -----
    ModelRangeWarning
        When an energy lies outside 1-100 keV.
    """
    z, energy = _checked(z, energy_kev)
    if form not in BROWNING_FORMS:
        raise ValueError(f"form: {form!r} is not a Browning form; expected one of {', '.join(BROWNING_FORMS)}")
    low, high = BROWNING_RANGE_KEV
    outside = (energy < low * (1 - 1e-9)) | (energy > high * (1 + 1e-9))
    if np.any(outside):
        warnings.warn(
            f"Browning (1991) elastic cross-sections are fitted for {low:g}-{high:g} keV; at "
            f"{energy[outside].ravel()[0]:g} keV they are extrapolated (at 200-300 keV about half of Mott "
            "totals); consider elastic='wentzel-annular'",
            ModelRangeWarning,
            stacklevel=2,
        )
    z133 = z**1.33
    u = np.log10(8.0) * energy / z133 if form == "mcxray" else np.log10(8.0 * energy / z133)
    sigma_cm2 = (
        4.7e-18
        * (z133 + 0.032 * z**2)
        / ((energy + 0.0155 * z133 * np.sqrt(energy)) * (1.0 - 0.02 * np.sqrt(z) * np.exp(-(u**2))))
    )
    return sigma_cm2 * _CM2_TO_BARN


def _kinematics(energy_kev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pc and pv (both eV) of electrons of kinetic energy ``energy_kev``."""
    t = energy_kev * 1e3
    pc = np.sqrt(t * (t + 2 * MC2_EV))
    return pc, pc**2 / (t + MC2_EV)


def wentzel_screening(z: np.ndarray | int, energy_kev: np.ndarray | float) -> np.ndarray:
    """Screening parameter η (dimensionless) of the screened-Rutherford cross-section."""
    z, energy = _checked(z, energy_kev)
    pc, _ = _kinematics(energy)
    radius = A0_M * z ** (-1.0 / 3.0)
    return (HBAR_C_EV_M / (2.0 * pc * radius)) ** 2


def wentzel_annular_barn(
    z: np.ndarray | int,
    energy_kev: np.ndarray | float,
    inner_rad: np.ndarray | float = 0.0,
    outer_rad: np.ndarray | float = np.pi,
) -> np.ndarray:
    """Screened-Rutherford (Wentzel) cross-section for scattering between two angles (barn).

    Parameters
    ----------
    z : int or array
        Atomic number(s).
    energy_kev : float or array
        Electron kinetic energy (keV).
    inner_rad, outer_rad : float or array
        Scattering angles bounding the annulus (rad), ``0 <= inner < outer <= π``.
        The defaults give the total elastic cross-section.
    """
    z, energy = _checked(z, energy_kev)
    inner, outer = np.asarray(inner_rad, dtype=float), np.asarray(outer_rad, dtype=float)
    if np.any(~np.isfinite(inner) | (inner < 0)) or np.any(~np.isfinite(outer) | (outer > np.pi)):
        raise ValueError(f"angles: inner {inner!r} rad and outer {outer!r} rad must lie in [0, π]")
    if np.any(outer <= inner):
        raise ValueError(f"angles: outer {outer!r} rad must exceed inner {inner!r} rad")
    eta = wentzel_screening(z, energy)
    _, pv = _kinematics(energy)
    s1, s2 = np.sin(inner / 2) ** 2, np.sin(outer / 2) ** 2
    sigma_m2 = np.pi * (z * COULOMB_EV_M / pv) ** 2 * (1.0 / (s1 + eta) - 1.0 / (s2 + eta))
    return sigma_m2 * _M2_TO_BARN
