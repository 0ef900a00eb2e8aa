"""Automatic parameters in the Yuan 2020 phantom study: each method with options chosen from the data, vs its oracle.

For each method of :data:`AUTO_METHODS` the solver's options listed there are
set to ``"auto"`` and chosen on the simulated counts (Poisson thinning and the
held-out deviance, :mod:`edstomo.selection`).  The SIRT family sees the data as
in its sweep: the sinogram filter applied to every fit part, the response
ratios (HEBT) fitted to each; the Poisson-likelihood solvers see the raw counts,
``fused`` with the study's response ratios as in its sweep.  The series is then
reconstructed with the chosen values and quantified.  ``auto_over_oracle`` is
the quantified Ag SSIM-structure of that result divided by the best over the
study's sweep of the same method (the oracle, which knows the truth): n and α
for the SIRT family, the multiplier of the TV rule for ``poisson-tv`` and
``fused`` (:mod:`.yuan2020_poisson`).

A new solver joins the comparison with one entry in :data:`AUTO_METHODS`
(and its sweep rows in ``metrics.csv`` under the method name given there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edstomo.data import TiltSeries, Volume
from edstomo.factors import PhysicsFactors
from edstomo.preprocessing import ResponseRatios, gaussian_filter
from edstomo.registry import plugins
from edstomo.selection import SelectionResult, choose
from edstomo.study import ResultsTable


@dataclass(frozen=True)
class AutoMethod:
    """How one solver is compared: its rows in metrics.csv, its quantifier, what it chooses, what it sees."""

    method: str  # its method name in metrics.csv
    quantifier: str
    automatic: tuple[str, ...]  # the options set to "auto"
    filtered: bool = True  # the sinogram filter applied (SIRT family); False: the raw counts
    ratios: bool = False  # given the study's response ratios (as in its sweep)


#: solver → how it is compared.
AUTO_METHODS: dict[str, AutoMethod] = {
    "sirt": AutoMethod("eds-sirt", "eds", ("iterations",)),
    "hebt-sirt": AutoMethod("hebt-sirt", "hebt", ("iterations", "alpha")),
    "poisson-tv": AutoMethod("poisson-tv", "eds", ("regularization",), filtered=False),
    "fused": AutoMethod("fused", "eds", ("regularization",), filtered=False, ratios=True),
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


def solve_automatic(
    name: str, series: TiltSeries, *, ratios: dict[str, float], sigma: float, **options: Any
) -> tuple[Any, Volume]:
    """The solver ``name`` with the options of :data:`AUTO_METHODS` chosen on ``series`` (counts), and its volume.

    The SIRT family sees the data filtered (Gaussian ``sigma``, px), the filter applied to every fit
    part; the Poisson-likelihood solvers see the raw counts, with their count levels (and ``fused`` the
    given ``ratios``) fitted on the whole series first.  Returns the prepared solver (its
    ``auto_choice``) and the volume of the whole series.
    """
    spec = AUTO_METHODS[name]
    cls = plugins.solver(name)
    data = series if "haadf" in cls.requires else series.select(series.lines)
    given = {"ratios": ratios} if spec.ratios else {}
    solver = cls(**options, **given, **dict.fromkeys(spec.automatic, "auto"))
    if spec.filtered:
        prepared = choose(solver, data, preprocess=lambda s: gaussian_filter(s, sigma))
        return prepared, prepared.solve(gaussian_filter(data, sigma))
    prepared = solver.prepare(data)  # count levels (and ratios) of the whole series, then the choice
    return prepared, prepared.solve(data)


def run_auto(
    level: str,
    series: TiltSeries,
    truth: Any,
    factors: PhysicsFactors,
    table: ResultsTable,
    *,
    ratios: ResponseRatios,
    sigma: float,
    projector: str,
    max_iterations: int,
) -> dict[str, AutoResult]:
    """Every method of :data:`AUTO_METHODS` with automatic parameters on ``series`` (counts), against its oracle
    (the selection tries n up to ``max_iterations``, the sweep's largest n; ``ratios``: the study's, for the
    methods that are given them)."""
    metric = plugins.metric("ssim-structure")()
    results = {}
    for name, spec in AUTO_METHODS.items():
        prepared, volume = solve_automatic(
            name,
            series,
            ratios=ratios.ratios,
            sigma=sigma,
            projector=projector,
            selection={"max_iterations": max_iterations},
        )
        maps = plugins.quantifier(spec.quantifier)(factors).quantify(volume)
        ssim = float(metric(maps.fraction(ELEMENT), truth.fraction(ELEMENT)))
        best = table.best("ssim_structure", level=level, method=spec.method, maps="quantified", element=ELEMENT)
        oracle = float(best["ssim_structure"])
        setting = {key: best[key] for key in ("alpha", "regularization", "n") if best[key] is not None}
        chosen = dict(prepared.auto_choice.chosen)
        swept = {row["regularization"] for row in table.where(level=level, method=spec.method)}
        if "regularization" in chosen and chosen["regularization"] not in swept and ssim > oracle:
            oracle, setting = ssim, chosen  # a multiplier beyond the sweep's grid (an edge followed) is a setting too
        results[name] = AutoResult(
            solver=name, chosen=chosen, selection=prepared.auto_choice, ssim=ssim, oracle=oracle, oracle_setting=setting
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
