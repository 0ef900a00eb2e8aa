"""Study ``uncertainty``: are the bootstrap error bars honest?  Coverage on the paper's phantom over many seeds.

For each dose level of ``yuan2020-phantom`` (the paper's EDS dose and the
dose divided by 30) and each of ``seeds`` noise realisations, the study
simulates the Ag–Au core–shell phantom, filters the EDS sinograms (σ = 0.8 px),
reconstructs it with the solver (default HEBT-SIRT, α = 0.8, n = 200, the
paper's headline setting; the response ratios fitted to the data),
quantifies it (ESF threshold) and runs the parametric bootstrap
(:func:`edstomo.uncertainty.bootstrap`, ``replicas`` replicas, each refiltered,
refitted, reconstructed and quantified, and the phase model for the
missing-wedge error).  It then counts

* ``voxel_coverage_1sigma``: the fraction of interior voxels (core and shell,
  each eroded to voxels more than 3 px from every interface) whose true weight
  fraction lies within ±1σ of the estimate (for a Gaussian error: 0.68);
  both elements, all seeds;
* ``region_coverage_95``: the fraction of (seed, region) pairs whose 95 %
  interval of the region's mean Ag fraction covers the true mean (Au is 1 − Ag);

and also the coverage of the noise-only σ (without the bias terms), the mean
σ and mean error, and the scatter of the fitted r_A: its bootstrap estimate
against the scatter over the seeds.  Files: ``summary.json`` (per level),
``coverage.csv`` (per seed), ``settings.json`` and, with ``figures``, one figure
per level of the first seed's map, σ and error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from edstomo import provenance
from edstomo.data import CompositionMaps
from edstomo.interfaces import Study
from edstomo.options import PluginOptions
from edstomo.preprocessing import gaussian_filter
from edstomo.registry import plugins
from edstomo.study import ResultsTable, interior, write_json
from edstomo.uncertainty import bootstrap
from pydantic import Field

from .yuan2020 import LEVELS, phantom_experiment
from .yuan2020_results import EROSION

COLUMNS = (
    "level", "seed", "voxels", "voxel_coverage_1sigma", "voxel_coverage_1sigma_sd_only",
    "core_Ag", "core_Ag_low", "core_Ag_high", "shell_Ag", "shell_Ag_low", "shell_Ag_high",
    "mean_sigma", "mean_error", "r_Ag", "r_Au", "seconds",
)  # fmt: skip
SUMMARY_KEYS = (
    "voxel_coverage_1sigma", "region_coverage_95", "voxel_coverage_1sigma_sd_only",
    "mean_sigma_wt", "mean_error_wt", "r_relative_sd_bootstrap", "r_relative_sd_seeds", "seconds",
)  # fmt: skip
#: The element whose region means are checked (the other one is 1 − it).
ELEMENT = "Ag"


class UncertaintyStudy(Study):
    """Calibration of the bootstrap error bars on the Yuan 2020 phantom at two doses, over many seeds."""

    name = "uncertainty"
    description = "Bootstrap error bars on the Yuan 2020 phantom: voxel and region-mean coverage over seeds"

    class Options(PluginOptions):
        levels: list[Literal[LEVELS]] = Field(list(LEVELS), min_length=1, description="dose levels to run")
        seeds: int = Field(20, ge=2, le=1000, description="noise realisations per level")
        replicas: int = Field(16, ge=2, le=1000, description="bootstrap replicas per realisation")
        solver: Literal["hebt-sirt", "sirt"] = Field("hebt-sirt", description="reconstruction method")
        iterations: int = Field(200, ge=1, description="iterations n")
        alpha: float = Field(0.8, ge=0, lt=1, description="α of hebt-sirt")
        low_dose_divisor: float = Field(30.0, gt=1, description="EDS dose divisor of 'low'")
        sigma: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
            0.8, description="Gaussian filter σ (pixels) on EDS sinograms"
        )
        figures: bool = Field(True, description="write the PNG figures (needs matplotlib)")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._scatter: dict[str, list[dict[str, dict[str, float]]]] = {}

    def run(self, out: str | Path, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        report = progress or (lambda stage, done, total: None)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table = ResultsTable(COLUMNS)
        summary, first = {}, {}
        for level in [lv for lv in LEVELS if lv in self.options.levels]:
            start = time.perf_counter()
            first[level] = self._run_level(level, table, report)
            summary[level] = self._summarise(level, table, time.perf_counter() - start)
        table.to_csv(out / "coverage.csv")
        write_json(out / "summary.json", summary)
        write_json(
            out / "settings.json",
            {"study": self.name, "parameters": self.parameters(), "provenance": provenance.versions()},
        )
        if self.options.figures:
            from .uncertainty_figures import uncertainty_figure

            for level, (maps, truth) in first.items():
                uncertainty_figure(maps, truth, out / f"{level}_uncertainty.png", level)
        return summary

    def _run_level(
        self, level: str, table: ResultsTable, report: Callable[[str, int, int], None]
    ) -> tuple[CompositionMaps, CompositionMaps]:
        options = self.options
        experiment = phantom_experiment("0.7 sr", 1.0 if level == "paper" else options.low_dose_divisor)
        factors = plugins.physics("table")().compute(experiment)
        phantom = plugins.phantom("core-shell")()
        truth = phantom.generate(experiment)
        regions = {name: interior(mask, EROSION) for name, mask in phantom.regions(experiment).items()}
        inside = regions["core"] | regions["shell"]
        forward = plugins.forward("thin-film")(experiment, factors)
        bimodal = options.solver == "hebt-sirt"
        solver = plugins.solver(options.solver)(
            iterations=options.iterations, **({"alpha": options.alpha} if bimodal else {})
        )
        quantifier = plugins.quantifier("hebt" if bimodal else "eds")(factors)
        kept = None
        for seed in range(options.seeds):
            report(f"{level}: seeds", seed, options.seeds)
            start = time.perf_counter()
            series = forward.simulate(truth, noise="poisson", seed=seed)
            if not bimodal:
                series = series.select(list(experiment.lines))
            result = bootstrap(
                solver,
                series,
                quantifier,
                replicas=options.replicas,
                seed=10_000 + seed,
                preprocess=lambda s: gaussian_filter(s, options.sigma),
            )
            maps = result.maps
            error = np.abs(
                maps.weight_fractions - truth.weight_fractions[[truth.elements.index(e) for e in maps.elements]]
            )
            within = error <= maps.uncertainty
            within_sd = error <= result.sd
            means = result.region_means(regions)
            ratios = _fitted_ratios(maps)
            table.add(
                level=level,
                seed=seed,
                voxels=int(inside.sum()),
                voxel_coverage_1sigma=float(within[:, inside].mean()),
                voxel_coverage_1sigma_sd_only=float(within_sd[:, inside].mean()),
                **{
                    f"{region}_{ELEMENT}{suffix}": getattr(means[region][ELEMENT], attribute)
                    for region in ("core", "shell")
                    for suffix, attribute in (("", "mean"), ("_low", "low"), ("_high", "high"))
                },
                mean_sigma=float(maps.uncertainty[:, inside].mean()),
                mean_error=float(error[:, inside].mean()),
                r_Ag=ratios.get("Ag_La"),
                r_Au=ratios.get("Au_Ma"),
                seconds=time.perf_counter() - start,
            )
            self._scatter.setdefault(level, []).append(result.ratio_scatter())
            if kept is None:
                kept = (maps, truth)
        report(f"{level}: seeds", options.seeds, options.seeds)
        return kept  # type: ignore[return-value]

    def _summarise(self, level: str, table: ResultsTable, seconds: float) -> dict[str, float | None]:
        rows = table.where(level=level)
        phantom = plugins.phantom("core-shell")()
        truth = {"core": phantom.options.core[ELEMENT], "shell": phantom.options.shell[ELEMENT]}
        covered = [
            row[f"{region}_{ELEMENT}_low"] <= truth[region] <= row[f"{region}_{ELEMENT}_high"]
            for row in rows
            for region in ("core", "shell")
        ]
        weights = np.array([row["voxels"] for row in rows], dtype=float)
        r = np.array([[row["r_Ag"], row["r_Au"]] for row in rows if row["r_Ag"] is not None], dtype=float)
        boot = [s for s in self._scatter.get(level, []) if s]
        return {
            "voxel_coverage_1sigma": float(
                np.average(table.column("voxel_coverage_1sigma", level=level), weights=weights)
            ),
            "region_coverage_95": float(np.mean(covered)),
            "voxel_coverage_1sigma_sd_only": float(
                np.average(table.column("voxel_coverage_1sigma_sd_only", level=level), weights=weights)
            ),
            "mean_sigma_wt": 100 * float(table.column("mean_sigma", level=level).mean()),
            "mean_error_wt": 100 * float(table.column("mean_error", level=level).mean()),
            "r_relative_sd_bootstrap": float(np.mean([np.mean([v["relative_sd"] for v in s.values()]) for s in boot]))
            if boot
            else None,
            "r_relative_sd_seeds": float(np.mean(r.std(axis=0, ddof=1) / r.mean(axis=0))) if len(r) > 1 else None,
            "seconds": seconds,
        }


def _fitted_ratios(maps: CompositionMaps) -> dict[str, float]:
    """The response ratios the reconstruction used (from its provenance), or {} for EDS-only maps."""
    for step in reversed(maps.provenance):
        if step.get("action") == "reconstruct":
            return dict(step.get("parameters", {}).get("ratios_used", {}))
    return {}
