"""Automatic parameters in the Yuan 2020 phantom study: each method with options chosen from the data, vs its oracle.

For each method of :data:`AUTO_METHODS` the solver's options listed there are
set to ``"auto"`` and chosen on the simulated counts (Poisson thinning and the
held-out deviance, :mod:`edstomo.selection`; the sinogram filter applied to
every fit part, the response ratios fitted to each); the filtered series is
then reconstructed with the chosen values and quantified.
``auto_over_oracle`` is the quantified Ag SSIM-structure of that result
divided by the best over the study's sweep of the same method (the oracle,
which knows the truth).

A new solver joins the comparison with one entry in :data:`AUTO_METHODS`
(and its sweep rows in ``metrics.csv`` under the method name given there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edstomo.data import TiltSeries
from edstomo.factors import PhysicsFactors
from edstomo.preprocessing import gaussian_filter
from edstomo.registry import plugins
from edstomo.selection import SelectionResult, choose
from edstomo.study import ResultsTable

#: solver → (its method name in metrics.csv, its quantifier, the options chosen automatically).
AUTO_METHODS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sirt": ("eds-sirt", "eds", ("iterations",)),
    "hebt-sirt": ("hebt-sirt", "hebt", ("iterations", "alpha")),
}
#: The element whose quantified map is compared.
ELEMENT = "Ag"


@dataclass
class AutoResult:
    """One method with automatic parameters at one dose level."""

    solver: str
    chosen: dict[str, Any]
    selection: SelectionResult
    ssim: float
    oracle: float
    oracle_setting: dict[str, Any]

    @property
    def ratio(self) -> float:
        """``ssim / oracle``: the quality with automatic parameters relative to the best of the sweep."""
        return self.ssim / self.oracle


def run_auto(
    level: str,
    series: TiltSeries,
    truth: Any,
    factors: PhysicsFactors,
    table: ResultsTable,
    *,
    sigma: float,
    projector: str,
    max_iterations: int,
) -> dict[str, AutoResult]:
    """Every method of :data:`AUTO_METHODS` with automatic parameters on ``series`` (counts), against its oracle
    (the selection tries n up to ``max_iterations``, the sweep's largest n)."""
    metric = plugins.metric("ssim-structure")()
    results = {}
    for name, (method, quantifier, automatic) in AUTO_METHODS.items():
        cls = plugins.solver(name)
        data = series if "haadf" in cls.requires else series.select(series.lines)
        solver = cls(
            projector=projector, selection={"max_iterations": max_iterations}, **dict.fromkeys(automatic, "auto")
        )
        prepared = choose(solver, data, preprocess=lambda s: gaussian_filter(s, sigma))
        maps = plugins.quantifier(quantifier)(factors).quantify(prepared.solve(gaussian_filter(data, sigma)))
        best = table.best("ssim_structure", level=level, method=method, maps="quantified", element=ELEMENT)
        results[name] = AutoResult(
            solver=name,
            chosen=dict(prepared.auto_choice.chosen),
            selection=prepared.auto_choice,
            ssim=float(metric(maps.fraction(ELEMENT), truth.fraction(ELEMENT))),
            oracle=float(best["ssim_structure"]),
            oracle_setting={"alpha": best["alpha"], "n": best["n"]},
        )
    return results


def auto_summary(results: dict[str, AutoResult]) -> dict[str, dict[str, Any]]:
    """The summary keys of one level: ``auto_over_oracle`` and ``auto_parameters`` per solver."""
    return {
        "auto_over_oracle": {name: r.ratio for name, r in results.items()},
        "auto_parameters": {name: r.chosen for name, r in results.items()},
    }


def auto_settings(results: dict[str, AutoResult]) -> dict[str, Any]:
    """What settings.json records of one level: choices, qualities, oracle settings, selection curves."""
    return {
        name: {
            "chosen": r.chosen,
            "ssim_quantified_Ag": r.ssim,
            "oracle_ssim_quantified_Ag": r.oracle,
            "oracle_setting": r.oracle_setting,
            "selection": r.selection.record(),
        }
        for name, r in results.items()
    }


def auto_figures(results: dict[str, AutoResult], folder: Path, level: str) -> list[Path]:
    """One selection figure per method (held-out deviance vs n, the choice marked)."""
    from edstomo.selection_figure import selection_figure

    return [
        selection_figure(r.selection, folder / f"selection_{name}.png", f"{name}, {level} dose: automatic choice")
        for name, r in results.items()
    ]
