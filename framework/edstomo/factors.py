"""Quantification factors f_A and z_A, and the per-line physics they come from.

For an X-ray line of element A (paper eq. 7 and 14)::

    f_A = σ_ion · ω · p · ε / M        z_A = σ_ela / M

with σ in barn and M in g/mol, so both factors are in b·mol/g.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pint

from .lines import parse_line
from .units import FACTOR_UNIT, as_quantity, format_quantity, ureg


@dataclass(frozen=True)
class LineParameters:
    """The physical ingredients of one line's factors.

    Parameters
    ----------
    line : str
        HyperSpy-style line name.
    sigma_ion : Quantity
        Ionisation cross-section of the line's shell (an area, e.g. barn).
    omega : float
        Fluorescence yield of the shell (dimensionless).
    p : float
        Relative intensity of the line within the shell's emission (dimensionless).
    epsilon : float
        Detector efficiency for the line (dimensionless).
    atomic_weight : Quantity
        Atomic weight (g/mol).
    sigma_ela : Quantity, optional
        Elastic cross-section used for the HAADF factor (an area).
    sources : dict
        Where each value came from (model or data set), by ingredient name.
    """

    line: str
    sigma_ion: pint.Quantity
    omega: float
    p: float
    epsilon: float
    atomic_weight: pint.Quantity
    sigma_ela: pint.Quantity | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_line(self.line)
        object.__setattr__(self, "sigma_ion", as_quantity(self.sigma_ion, "b", f"{self.line}.sigma_ion"))
        object.__setattr__(
            self, "atomic_weight", as_quantity(self.atomic_weight, "g/mol", f"{self.line}.atomic_weight")
        )
        if self.sigma_ela is not None:
            object.__setattr__(self, "sigma_ela", as_quantity(self.sigma_ela, "b", f"{self.line}.sigma_ela"))
        for name in ("omega", "p", "epsilon"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise ValueError(f"{self.line}.{name}: {value!r} must be a number in (0, 1] (dimensionless)")
        for name in ("sigma_ion", "atomic_weight"):
            if not getattr(self, name).magnitude > 0:
                raise ValueError(f"{self.line}.{name}: {getattr(self, name)} must be positive")
        if self.sigma_ela is not None and not self.sigma_ela.magnitude > 0:
            raise ValueError(f"{self.line}.sigma_ela: {self.sigma_ela} must be positive")

    @property
    def f(self) -> pint.Quantity:
        """EDS factor f_A = σ_ion ω p ε / M (b·mol/g)."""
        return (self.sigma_ion * self.omega * self.p * self.epsilon / self.atomic_weight).to(FACTOR_UNIT)

    @property
    def z(self) -> pint.Quantity:
        """HAADF factor z_A = σ_ela / M (b·mol/g)."""
        if self.sigma_ela is None:
            raise ValueError(f"{self.line}: no elastic cross-section, so no HAADF factor z_A")
        return (self.sigma_ela / self.atomic_weight).to(FACTOR_UNIT)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers in fixed units (the keys of ``edstomo physics --format json``)."""
        record: dict[str, Any] = {
            "sigma_ion_barn": float(self.sigma_ion.m_as("b")),
            "omega": float(self.omega),
            "p": float(self.p),
            "epsilon": float(self.epsilon),
            "sigma_ela_barn": None if self.sigma_ela is None else float(self.sigma_ela.m_as("b")),
            "atomic_weight": float(self.atomic_weight.m_as("g/mol")),
            "f": float(self.f.m_as(FACTOR_UNIT)),
            "z": None if self.sigma_ela is None else float(self.z.m_as(FACTOR_UNIT)),
            "sources": dict(self.sources),
        }
        return record


@dataclass(frozen=True)
class PhysicsFactors:
    """The factors of every line of an experiment, with their ingredients and provenance."""

    model: str
    beam_energy: pint.Quantity
    parameters: dict[str, LineParameters]
    provenance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return list(self.parameters)

    @property
    def f(self) -> dict[str, pint.Quantity]:
        """EDS factors f_A by line (b·mol/g)."""
        return {line: p.f for line, p in self.parameters.items()}

    @property
    def z(self) -> dict[str, pint.Quantity]:
        """HAADF factors z_A by line (b·mol/g)."""
        return {line: p.z for line, p in self.parameters.items()}

    def _array(self, which: str, lines: list[str] | None) -> np.ndarray:
        lines = self.lines if lines is None else lines
        missing = [line for line in lines if line not in self.parameters]
        if missing:
            raise KeyError(f"lines: {missing} have no factors; this model computed {self.lines}")
        return np.array([getattr(self.parameters[line], which).m_as(FACTOR_UNIT) for line in lines])

    def f_array(self, lines: list[str] | None = None) -> np.ndarray:
        """f_A as plain numbers in b·mol/g, in the order of ``lines``."""
        return self._array("f", lines)

    def z_array(self, lines: list[str] | None = None) -> np.ndarray:
        """z_A as plain numbers in b·mol/g, in the order of ``lines``."""
        return self._array("z", lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "beam_energy": format_quantity(self.beam_energy),
            "lines": {line: p.to_dict() for line, p in self.parameters.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """A plain-text table in the layout of the paper's Table 2, plus f_A and z_A."""
        rows = [
            ("X-ray line", lambda p: p.line.replace("_", " ")),
            ("Beam energy (keV)", lambda p: f"{self.beam_energy.m_as('keV'):g}"),
            ("Elastic cross-section (barn)", lambda p: "-" if p.sigma_ela is None else f"{p.sigma_ela.m_as('b'):.3g}"),
            ("Ionization cross-section (barn)", lambda p: f"{p.sigma_ion.m_as('b'):.4g}"),
            ("Fluorescence yield", lambda p: f"{p.omega:.4f}"),
            ("Relative intensity", lambda p: f"{p.p:.4f}"),
            ("Detector efficiency", lambda p: f"{p.epsilon:.4f}"),
            ("Atomic weight (g/mol)", lambda p: f"{p.atomic_weight.m_as('g/mol'):.3f}"),
            ("f_A (b·mol/g)", lambda p: f"{p.f.m_as(FACTOR_UNIT):.4g}"),
            ("z_A (b·mol/g)", lambda p: "-" if p.sigma_ela is None else f"{p.z.m_as(FACTOR_UNIT):.4g}"),
        ]
        params = list(self.parameters.values())
        cells = [[label, *[fmt(p) for p in params]] for label, fmt in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(lines) + f"\n(model: {self.model})"


def avogadro() -> pint.Quantity:
    """Avogadro's constant (1/mol)."""
    return ureg.Quantity(1, "avogadro_constant").to("1/mol")
