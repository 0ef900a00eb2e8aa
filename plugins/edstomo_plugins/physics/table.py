"""Tabulated physics: per-line values given by the user or shipped as a named data set."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from edstomo.experiment import Experiment
from edstomo.factors import LineParameters
from edstomo.interfaces import PhysicsModel
from edstomo.lines import atomic_weight, parse_line
from edstomo.options import PluginOptions
from edstomo.units import as_quantity, ureg
from pydantic import Field

_KEYS = {"beam_energy", "sigma_ion", "sigma_ela", "omega", "p", "epsilon", "atomic_weight"}


def datasets() -> list[str]:
    """Names of the data sets shipped with edstomo."""
    folder = resources.files("edstomo_plugins.physics") / "data"
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_dataset(name: str) -> dict[str, Any]:
    """The contents of a shipped data set (``{"citation": ..., "lines": {...}}``)."""
    if name not in datasets():
        raise ValueError(f"dataset: unknown data set {name!r}; available: {', '.join(datasets())}")
    text = (resources.files("edstomo_plugins.physics") / "data" / f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


class TablePhysics(PhysicsModel):
    """Factors from tabulated per-line values (a shipped data set or your own).

    Parameters
    ----------
    dataset : str, optional
        A shipped data set, e.g. ``"yuan2020-table2"``.
    values : dict, optional
        Per-line values, ``{line: {"sigma_ion": "2440 b", "omega": 0.057, "p": 0.816,
        "sigma_ela": "9.9e6 b", "epsilon": 0.96, "atomic_weight": "107.87 g/mol",
        "beam_energy": "100 keV"}}``; they override the data set's. ``epsilon``
        defaults to the experiment's detector efficiency, ``atomic_weight`` to the
        standard atomic weight, and ``beam_energy`` (when given) must equal the
        experiment's.
    """

    name = "table"
    description = "Tabulated per-line cross-sections, yields and intensities (ships yuan2020-table2)"

    class Options(PluginOptions):
        dataset: str | None = Field("yuan2020-table2", description="a shipped data set, or None")
        values: dict[str, dict[str, Any]] = Field(
            default_factory=dict, description="per-line values that override the data set's"
        )

    def __init__(self, **options: Any):
        super().__init__(**options)
        dataset = self.options.dataset
        table = load_dataset(dataset)["lines"] if dataset else {}
        self._table: dict[str, dict[str, Any]] = {line: dict(entry) for line, entry in table.items()}
        for line, entry in self.options.values.items():
            parse_line(line)
            unknown = set(entry) - _KEYS
            if unknown:
                raise ValueError(f"values[{line!r}]: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
            self._table.setdefault(line, {}).update(entry)

    def line_parameters(self, line: str, experiment: Experiment) -> LineParameters:
        entry = self._table.get(line)
        if entry is None:
            raise ValueError(
                f"line: {line!r} is not in the table ({self.dataset or 'user values'}); it has {sorted(self._table)}"
            )
        missing = {"sigma_ion", "omega", "p"} - set(entry)
        if missing:
            raise ValueError(f"line: {line!r} lacks {sorted(missing)} in the table")
        origin = "user values" if line in self.values else f"data set {self.dataset}"
        if "beam_energy" in entry:
            energy = as_quantity(entry["beam_energy"], "keV", f"{line}.beam_energy")
            if abs(energy.m_as("keV") - experiment.beam_energy.m_as("keV")) > 1e-9 * energy.m_as("keV"):
                raise ValueError(
                    f"beam_energy: the table's {line} values are for {energy}, "
                    f"but the experiment's beam energy is {experiment.beam_energy}"
                )
        sources = {key: origin for key in entry}
        if "epsilon" not in entry:
            sources["epsilon"] = "experiment EDS detector"
        if "atomic_weight" not in entry:
            sources["atomic_weight"] = "standard atomic weight (pyxray)"
        return LineParameters(
            line=line,
            sigma_ion=as_quantity(entry["sigma_ion"], "b", f"{line}.sigma_ion"),
            omega=float(entry["omega"]),
            p=float(entry["p"]),
            epsilon=float(entry.get("epsilon", experiment.eds.efficiency_for(line))),
            atomic_weight=as_quantity(
                entry.get("atomic_weight", ureg.Quantity(atomic_weight(parse_line(line).element), "g/mol")),
                "g/mol",
                f"{line}.atomic_weight",
            ),
            sigma_ela=as_quantity(entry["sigma_ela"], "b", f"{line}.sigma_ela") if "sigma_ela" in entry else None,
            sources=sources,
        )
