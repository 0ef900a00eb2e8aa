"""The ``mcxray`` physics plugin: f_A and z_A from open physics, with MC X-ray's choice of models.

Yuan et al. (2020) took their factors from MC X-ray (Table 1 of the paper):
Bote 2009 ionisation, Perkins 1991 (EADL) fluorescence yields and relative
intensities, Browning 1991 elastic cross-sections. This plugin computes the same
ingredients from open data, for any element and line:

==================  =======================================  ==========================================
ingredient          default                                  alternatives (option)
==================  =======================================  ==========================================
``sigma_ion``       Bote 2009, direct ionisation             Coster-Kronig / full cascade (``cascade``)
``omega``, ``p``    EADL via pyxray                          xraylib (``yields="xraylib"``)
``sigma_ela``       Browning 1991 as MC X-ray evaluates it   published form, Wentzel over the HAADF
                                                             annulus, none (``elastic``)
``epsilon``         the experiment's EDS efficiency          constant or layered model (``efficiency``)
``atomic_weight``   pyxray (NIST standard atomic weights)    xraylib (``atomic_weights``)
==================  =======================================  ==========================================

Any value of any line can be replaced with ``overrides``; each ingredient's
origin is recorded in ``LineParameters.sources``. To add a data source or change
one line's values in code, subclass :class:`MCXRayPhysics` and override one of
its ingredient methods (``ionization_cross_section``, ``fluorescence_yield``,
``relative_intensity``, ``detector_efficiency``, ``elastic_cross_section``,
``atomic_weight``), or extend :attr:`MCXRayPhysics.relaxation_sources`; see
``docs/physics.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pint
import pyxray
import xraylib
from edstomo import provenance
from edstomo.errors import InputError, OptionError
from edstomo.experiment import Experiment
from edstomo.factors import LineParameters, PhysicsFactors
from edstomo.interfaces import PhysicsModel
from edstomo.lines import XrayLine, parse_line
from edstomo.options import PluginOptions
from edstomo.units import as_quantity, ureg
from pydantic import Field

from . import bote2009, elastic
from .cascade import MODES as CASCADE_MODES
from .cascade import SOURCE as CASCADE_SOURCE
from .cascade import effective_cross_sections
from .efficiency import LayeredDetector, detector
from .relaxation import SOURCES, RelaxationSource

#: Keys of ``overrides[line]`` and the unit each is read in (None: a plain number).
OVERRIDE_KEYS: dict[str, str | None] = {
    "sigma_ion": "b",
    "omega": None,
    "p": None,
    "epsilon": None,
    "sigma_ela": "b",
    "atomic_weight": "g/mol",
}
#: Elastic cross-section models.
ELASTIC_MODELS = ("browning-mcxray", "browning-published", "wentzel-annular", "none")
#: Atomic-weight sources.
ATOMIC_WEIGHT_SOURCES = ("pyxray", "xraylib")
_USER = "user override"


class MCXRayPhysics(PhysicsModel):
    """Open-data factors with MC X-ray's models: Bote 2009, EADL, Browning 1991.

    Parameters
    ----------
    yields : str
        Source of ω and p: a key of :attr:`relaxation_sources` (``"eadl"``, the
        default, or ``"xraylib"``).
    cascade : str
        ``"none"`` (direct ionisation, as the paper), ``"coster-kronig"`` or
        ``"full"`` (vacancy transfer from inner sub-shells, xraylib data).
    elastic : str
        ``"browning-mcxray"`` (default; reproduces Table 2), ``"browning-published"``,
        ``"wentzel-annular"`` (screened Rutherford over the experiment's HAADF
        annulus) or ``"none"`` (no z_A).
    efficiency : None, float, str, dict or LayeredDetector
        ``None`` (default): the experiment's ``eds.efficiency``; a number in
        (0, 1]: that constant for every line; otherwise a layered detector model
        (a preset name of :data:`~edstomo_plugins.physics.efficiency.PRESETS`, a
        dict, or a :class:`LayeredDetector`). The experiment's
        ``eds.efficiency_overrides`` win over the model for their lines.
    atomic_weights : str
        ``"pyxray"`` (default; NIST standard atomic weights) or ``"xraylib"``.
    overrides : dict, optional
        ``{line: {key: value}}`` with keys ``sigma_ion``, ``omega``, ``p``,
        ``epsilon``, ``sigma_ela``, ``atomic_weight`` (cross-sections and weights
        as quantities, e.g. ``"7460 b"``); they replace the computed values, e.g.
        ``{"Au_Ma": {"p": 0.999}}`` for the paper's Au Mα intensity.
    """

    name = "mcxray"
    default = True
    description = "Open physics with MC X-ray's models: Bote 2009 σ_ion, EADL ω and p, Browning 1991 σ_ela"

    #: Sources of fluorescence yields and relative intensities, by name (extend in a subclass).
    relaxation_sources: ClassVar[dict[str, RelaxationSource]] = dict(SOURCES)

    class Options(PluginOptions):
        yields: str = Field("eadl", description="source of ω and p: 'eadl' or 'xraylib'")
        cascade: Literal[CASCADE_MODES] = Field(
            "none", description="vacancy transfer from inner sub-shells (xraylib data)"
        )
        elastic: Literal[ELASTIC_MODELS] = Field("browning-mcxray", description="elastic cross-section model of z_A")
        efficiency: float | str | dict[str, Any] | LayeredDetector | None = Field(
            None, description="detector efficiency: None (the experiment's), a number in (0, 1], or a detector preset"
        )
        atomic_weights: Literal[ATOMIC_WEIGHT_SOURCES] = Field("pyxray", description="source of atomic weights")
        overrides: dict[str, dict[str, Any]] = Field(
            default_factory=dict, description="replace computed values, e.g. {Au_Ma: {p: 0.999}}"
        )

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options.yields not in self.relaxation_sources:
            raise OptionError(
                self.label(),
                "yields",
                self.options.yields,
                f"a source of ω and p: one of {list(self.relaxation_sources)}",
            )
        self._efficiency = _efficiency_option(self.options.efficiency)
        self._overrides = _checked_overrides(self.options.overrides)

    def parameters(self) -> dict[str, Any]:
        """The options, with the efficiency model resolved (a preset name becomes its layers)."""
        return {**super().parameters(), "efficiency": provenance.jsonable(self._efficiency)}

    # ----- the contract ---------------------------------------------------------
    def compute(self, experiment: Experiment) -> PhysicsFactors:
        """The factors of every line of ``experiment``; an override of a line it does not use is an error."""
        unused = [line for line in self._overrides if line not in experiment.lines]
        if unused:
            raise InputError(
                f"overrides: lines {unused} are not among the experiment's lines {experiment.lines}; "
                "an override of a line that is not used would be ignored"
            )
        return super().compute(experiment)

    def line_parameters(self, line: str, experiment: Experiment) -> LineParameters:
        xray_line = parse_line(line)
        self.check_excitable(xray_line, experiment)
        methods = {
            "sigma_ion": self.ionization_cross_section,
            "omega": self.fluorescence_yield,
            "p": self.relative_intensity,
            "epsilon": self.detector_efficiency,
            "sigma_ela": self.elastic_cross_section,
            "atomic_weight": self.atomic_weight,
        }
        user = self._overrides.get(line, {})
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, method in methods.items():
            if key in user:
                values[key], sources[key] = user[key], _USER
            else:
                values[key], sources[key] = method(xray_line, experiment)
        if values["sigma_ela"] is None:
            del sources["sigma_ela"]
        return LineParameters(line=line, sources=sources, **values)

    def check_excitable(self, line: XrayLine, experiment: Experiment) -> None:
        """Raise ``ValueError`` when the beam cannot ionise the line's sub-shell."""
        energy_kev = experiment.beam_energy.m_as("keV")
        try:
            edge_kev = bote2009.ionization_energy_ev(line.z, line.shell) / 1e3
        except ValueError as error:
            raise ValueError(f"line: {line.name}: {error}") from None
        if edge_kev >= energy_kev:
            raise ValueError(
                f"line: {line.name} cannot be excited: the {line.shell} edge of {line.element} is at "
                f"{edge_kev:.4g} keV, not below the beam energy {energy_kev:g} keV"
            )

    # ----- ingredients (override these in a subclass) ---------------------------
    def ionization_cross_section(self, line: XrayLine, experiment: Experiment) -> tuple[pint.Quantity, str]:
        """σ_ion of the line's sub-shell at the beam energy, and its source."""
        energy_ev = experiment.beam_energy.m_as("eV")
        if self.options.cascade == "none":
            sigma = float(bote2009.cross_section_barn(line.z, line.shell, energy_ev))
            return ureg.Quantity(sigma, "b"), bote2009.SOURCE
        direct = {
            shell: float(bote2009.cross_section_barn(line.z, shell, energy_ev)) for shell in bote2009.shells(line.z)
        }
        sigma = effective_cross_sections(line.z, direct, self.options.cascade)[line.shell]
        return ureg.Quantity(
            sigma, "b"
        ), f"{bote2009.SOURCE} + {self.options.cascade} vacancy transfer ({CASCADE_SOURCE})"

    def fluorescence_yield(self, line: XrayLine, experiment: Experiment) -> tuple[float, str]:
        """ω of the line's sub-shell, and its source."""
        source = self.relaxation_sources[self.options.yields]
        return source.checked_yield(line.z, line.shell), source.citation

    def relative_intensity(self, line: XrayLine, experiment: Experiment) -> tuple[float, str]:
        """p: the line family's share of the sub-shell's radiative transitions, and its source."""
        source = self.relaxation_sources[self.options.yields]
        return source.relative_intensity(line.z, line.shell, line.transitions), source.citation

    def detector_efficiency(self, line: XrayLine, experiment: Experiment) -> tuple[float, str]:
        """ε for the line, and its source (see the ``efficiency`` option for the precedence)."""
        if line.name in experiment.eds.efficiency_overrides:
            return experiment.eds.efficiency_for(line.name), "experiment eds.efficiency_overrides"
        heads = experiment.eds.heads
        if self._efficiency is None and any(h.has_efficiency_model for h in heads):
            weights = np.array([h.solid_angle.m_as("sr") for h in heads])
            values = [
                self._layered(detector(h.efficiency_model()), line)
                if h.has_efficiency_model
                else experiment.eds.efficiency
                for h in heads
            ]
            return float(np.dot(weights, values) / weights.sum()), (
                "experiment eds.detectors' layered models (xraylib CS_Total_CP / CS_Photo_CP), solid-angle weighted"
            )
        if self._efficiency is None:
            return experiment.eds.efficiency, "experiment eds.efficiency"
        if isinstance(self._efficiency, float):
            return self._efficiency, "constant (efficiency option)"
        epsilon = self._layered(self._efficiency, line)
        transitions = self.relaxation_sources[self.options.yields].transition_weights(
            line.z, line.shell, line.transitions
        )
        return epsilon, "layered detector model (xraylib CS_Total_CP / CS_Photo_CP), intensity-weighted over " + (
            "+".join(transitions)
        )

    def _layered(self, model: LayeredDetector, line: XrayLine) -> float:
        """ε of a layered model for a line, weighted over its transitions' intensities."""
        weights = self.relaxation_sources[self.options.yields].transition_weights(line.z, line.shell, line.transitions)
        energies = np.array([_line_energy_kev(line.z, t) for t in weights])
        return float(np.dot(list(weights.values()), model.efficiency(energies)))

    def elastic_cross_section(self, line: XrayLine, experiment: Experiment) -> tuple[pint.Quantity | None, str]:
        """σ_ela of the element for the HAADF factor (None with ``elastic="none"``), and its source."""
        energy_kev = experiment.beam_energy.m_as("keV")
        if self.options.elastic == "none":
            return None, "none"
        if self.options.elastic.startswith("browning"):
            form = self.options.elastic.removeprefix("browning-")
            sigma = float(elastic.browning_total_barn(line.z, energy_kev, form=form))
            return ureg.Quantity(sigma, "b"), f"Browning 1991 total elastic ({form} form)"
        if experiment.haadf is None:
            raise ValueError("haadf: elastic='wentzel-annular' needs the HAADF angles, but the experiment has no HAADF")
        inner, outer = experiment.haadf.inner_angle.m_as("rad"), experiment.haadf.outer_angle.m_as("rad")
        sigma = float(elastic.wentzel_annular_barn(line.z, energy_kev, inner, outer))
        return ureg.Quantity(sigma, "b"), (
            f"screened Rutherford (Wentzel, relativistic) over {inner * 1e3:g}-{outer * 1e3:g} mrad"
        )

    def atomic_weight(self, line: XrayLine, experiment: Experiment) -> tuple[pint.Quantity, str]:
        """Atomic weight of the element, and its source."""
        if self.options.atomic_weights == "xraylib":
            return ureg.Quantity(float(xraylib.AtomicWeight(line.z)), "g/mol"), f"xraylib {xraylib.__version__}"
        try:
            weight = pyxray.element_atomic_weight(line.z, reference="coursey2015")
            source = "pyxray: NIST standard atomic weights (Coursey et al. 2015)"
        except pyxray.NotFound:
            weight = pyxray.element_atomic_weight(line.z)
            source = "pyxray (mass number of the longest-lived isotope)"
        return ureg.Quantity(float(weight), "g/mol"), source


def _line_energy_kev(z: int, transition: str) -> float:
    return float(xraylib.LineEnergy(z, getattr(xraylib, f"{transition}_LINE")))


def _efficiency_option(value: Any) -> float | LayeredDetector | None:
    if value is None or isinstance(value, LayeredDetector):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (np.isfinite(value) and 0 < value <= 1):
            raise ValueError(f"efficiency: {value!r} must lie in (0, 1] (dimensionless)")
        return float(value)
    return detector(value)


def _checked_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    checked: dict[str, dict[str, Any]] = {}
    for line, entry in overrides.items():
        parse_line(line)
        if not isinstance(entry, dict):
            raise ValueError(f"overrides[{line!r}]: {entry!r} must be a mapping of ingredient to value")
        unknown = set(entry) - set(OVERRIDE_KEYS)
        if unknown:
            raise ValueError(f"overrides[{line!r}]: unknown keys {sorted(unknown)}; allowed: {sorted(OVERRIDE_KEYS)}")
        values = {}
        for key, value in entry.items():
            unit = OVERRIDE_KEYS[key]
            if unit is not None:
                values[key] = as_quantity(value, unit, f"overrides[{line!r}].{key}")
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1:
                values[key] = float(value)
            else:
                raise ValueError(f"overrides[{line!r}].{key}: {value!r} must be a number in (0, 1] (dimensionless)")
        checked[line] = values
    return checked
