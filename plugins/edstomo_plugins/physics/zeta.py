"""Physics from ζ-factors (Watanabe & Williams 2006): ``f_A = 4π / (N_A Ω ζ_A)``; see :mod:`.kfactors`."""

from __future__ import annotations

import math
from typing import Any

from edstomo.errors import OptionError
from edstomo.experiment import Experiment
from edstomo.units import as_quantity, ureg

from .kfactors import _MeasuredFactors


class ZetaFactorPhysics(_MeasuredFactors):
    """f_A = 4π / (N_A Ω ζ_A) from ζ-factors in kg/m² per electron (absolute, with the experiment's Ω)."""

    name = "zeta"
    description = "Watanabe zeta-factors (kg/m^2/electron, options or a file) as f_A = 4 pi / (N_A Omega zeta_A)"
    what = "ζ-factor"

    def checked(self, line: str, value: Any) -> Any:
        zeta = as_quantity(value, "kg/m**2/e", f"factors[{line!r}]")
        if not (math.isfinite(zeta.magnitude) and zeta.magnitude > 0):
            raise OptionError(self.label(), f"factors[{line!r}]", value, "a positive ζ-factor in kg/m²/e")
        return zeta

    def factor(self, line: str, experiment: Experiment) -> float:
        avogadro = ureg.Quantity(1, "avogadro_constant").to("1/mol")
        omega = experiment.eds.solid_angle.m_as("sr")
        f = 4 * math.pi / (avogadro * omega * self._factors[line] * ureg.e)
        return float(f.m_as("b*mol/g"))
