"""Physics from measured factors: Cliff–Lorimer k-factors (``kfactor``; ζ-factors in :mod:`.zeta`).

Both give the same ``f_A`` interface as the cross-section models, so the
``eds`` quantifier (eq. 12) and every solver use them unchanged:

* **k-factors** (Cliff & Lorimer 1975), relative to a reference line R:
  ``C_A / C_R = k_A I_A / I_R``. With eq. 12, ``C_A ∝ X_A / f_A``, so
  ``f_A = f_R / k_A``; the scale is free and set to ``f_R = 1 b·mol/g``.
  Weight fractions are right; absolute numbers (simulated counts, a density
  from the maps' scale) are not.
* **ζ-factors** (Watanabe & Williams 2006), in kg/m² per electron:
  ``ρt = ζ_A I_A / (C_A D_e)``. With eq. 11, ``I_A = N_A D_e (Ω/4π) f_A C_A ρt``, so
  ``f_A = 4π / (N_A Ω ζ_A)`` with the experiment's solid angle Ω: absolute.

The factors come from the ``factors`` option (``{line: value}``) or a YAML/JSON
``file`` holding that mapping; a line of the experiment without a factor is an
error. Each ``LineParameters`` carries ``σ_ion = M_A f_A`` with ω = p = ε = 1
(the measured factor includes them) and no elastic cross-section (so no z_A).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from edstomo.errors import InputError, OptionError
from edstomo.experiment import Experiment
from edstomo.factors import LineParameters
from edstomo.interfaces import PhysicsModel
from edstomo.lines import atomic_weight, parse_line
from edstomo.options import PluginOptions
from edstomo.units import ureg
from pydantic import Field


def read_factor_file(path: str | Path, plugin: str) -> dict[str, Any]:
    """``{line: value}`` from a YAML (``.yaml``/``.yml``) or JSON file."""
    path = Path(path)
    if not path.is_file():
        raise OptionError(plugin, "file", str(path), "an existing YAML or JSON file of {line: factor}")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise OptionError(plugin, "file", str(path), f"valid YAML or JSON ({error})") from None
    if not isinstance(data, dict) or not data:
        raise OptionError(plugin, "file", str(path), "a non-empty mapping of line names to factors")
    return data


class _FactorOptions(PluginOptions):
    factors: dict[str, Any] = Field(default_factory=dict, description="{line: factor}; overrides the file's")
    file: str | None = Field(None, description="YAML or JSON file of {line: factor}")


class _MeasuredFactors(PhysicsModel):
    """Common part: the factors of the options and file, checked per line."""

    Options = _FactorOptions
    what = "factor"

    def __init__(self, **options: Any):
        super().__init__(**options)
        table = read_factor_file(self.options.file, self.label()) if self.options.file else {}
        table.update(self.options.factors)
        self._factors: dict[str, Any] = {}
        for line, value in table.items():
            try:
                parse_line(line)
            except ValueError as error:
                raise OptionError(self.label(), "factors", line, f"a line name ({error})") from None
            self._factors[line] = self.checked(line, value)

    def checked(self, line: str, value: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def factor(self, line: str, experiment: Experiment) -> float:
        """f_A in b·mol/g."""
        raise NotImplementedError  # pragma: no cover - overridden

    def line_parameters(self, line: str, experiment: Experiment) -> LineParameters:
        if line not in self._factors:
            raise InputError(
                f"{self.label()}: no {self.what} for line {line!r}; given for {sorted(self._factors)} "
                f"(the experiment's lines are {experiment.lines})"
            )
        weight = atomic_weight(parse_line(line).element)
        f = self.factor(line, experiment)
        source = f"{self.what} {self._factors[line]} ({'file ' + self.options.file if self.options.file else 'given'})"
        return LineParameters(
            line=line,
            sigma_ion=ureg.Quantity(f * weight, "b"),
            omega=1.0,
            p=1.0,
            epsilon=1.0,
            atomic_weight=ureg.Quantity(weight, "g/mol"),
            sources={key: source for key in ("sigma_ion", "omega", "p", "epsilon")}
            | {"atomic_weight": "standard atomic weight (pyxray)"},
        )


class KFactorPhysics(_MeasuredFactors):
    """f_A from Cliff–Lorimer k-factors relative to a reference line (scale-free: f_R = 1 b·mol/g).

    Options: ``factors`` ``{line: k}`` (dimensionless, > 0), ``file``, and
    ``reference``, the line whose k is 1 (default: the one given as 1, or the
    first line of the experiment).
    """

    name = "kfactor"
    description = "Cliff-Lorimer k-factors (from options or a file) as f_A = f_ref / k_A; scale-free"
    what = "k-factor"

    class Options(_FactorOptions):
        reference: str | None = Field(None, description="the line all k are relative to (its k is 1)")

    def checked(self, line: str, value: Any) -> float:
        try:
            k = float(value)
        except (TypeError, ValueError):
            raise OptionError(self.label(), f"factors[{line!r}]", value, "a k-factor: a positive number") from None
        if not (math.isfinite(k) and k > 0):
            raise OptionError(self.label(), f"factors[{line!r}]", value, "a k-factor: a positive number")
        return k

    def factor(self, line: str, experiment: Experiment) -> float:
        reference = self.options.reference
        if reference is None:
            return 1.0 / self._factors[line]
        if reference not in self._factors:
            expected = f"one of the lines with a k-factor {sorted(self._factors)}"
            raise OptionError(self.label(), "reference", reference, expected)
        return self._factors[reference] / self._factors[line]
