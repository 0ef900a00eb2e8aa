"""Study ``dose-sweep``: how much EDS dose the Poisson-likelihood and fused solvers save over SIRT.

The Ag–Au core–shell phantom of ``yuan2020-phantom`` (same acquisition: 31
tilts, 97 positions of 1.5 nm, 100 keV) is simulated at EDS dose divisors
1, 3, 10, 30, 100, 300 (the paper's EDS dose divided by each), with Poisson
noise on the EDS lines and, by default, on the HAADF too (1e5 electrons per
pixel: the fused term then sees a noisy HAADF, as a microscope gives it),
for several seeds.  Each series is reconstructed by every method with
parameters chosen without the ground truth:

* ``sirt``: EDS sinograms filtered with the paper's Gaussian (σ = 0.8 px), 50 iterations
  (the real-data pipeline's fixed count for EDS-only solvers that cannot choose theirs);
* ``hebt-sirt``: the same filter, response ratios fitted to the filtered series (eq. 15),
  α = 0.8, 100 iterations (likewise for bimodal solvers);
* ``poisson-tv`` and ``fused``: raw counts, their default rules (docs/poisson-tv.md),
  ``fused`` with the same fitted ratios as HEBT;
* on request (``methods``), ``sirt-auto`` and ``hebt-sirt-auto``: the same filter, the
  iterations (and HEBT's α) chosen from the counts by Poisson thinning and the
  held-out deviance (:mod:`edstomo.selection`; the real-data pipeline's default),
  HEBT's ratios fitted to the filtered series; ``poisson-tv-auto`` and ``fused-auto``:
  raw counts, the multiplier of the TV rule chosen the same way (``fused`` with
  the same fitted ratios as its fixed row).

Every volume is quantified by the quantifier its factor names (ESF threshold,
Otsu's when the volume curve has no plateau).  Metrics per seed: quantified
SSIM-structure of Ag and Au, the RMSE of the weight fractions over the 3-px
eroded core and shell (wt%), and the Dice overlap of the particle mask.
``summary.json`` gives the means and spreads per method and divisor and
``dose_reduction``: for each method, the largest divisor at which its mean
quantified Ag SSIM is at least SIRT's at divisor 1.  As a stricter reference
it also gives ``dose_reduction_vs_oracle``: the same against SIRT at divisor 1
with its best n (chosen with the truth, over n = 1 … ``oracle_iterations``), and,
with automatic rows, ``auto_over_oracle``: each one's mean quantified Ag SSIM at divisor 1
divided by that reference.

Files: ``metrics.csv`` (one row per divisor, seed, method), ``summary.json``,
``settings.json`` (options, timings, load, versions) and, with figures,
``dose_sweep.png`` (quality against dose, one curve per method, seed spread shaded).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edstomo import provenance
from edstomo.algorithms import Callback, IterationState
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo.experiment import Experiment, Length, SolidAngle
from edstomo.interfaces import Study
from edstomo.lines import element_of
from edstomo.options import PluginOptions
from edstomo.preprocessing import gaussian_filter, response_ratios
from edstomo.registry import plugins
from edstomo.study import ResultsTable, dice, interior, write_json
from edstomo.units import format_quantity
from pydantic import Field, field_validator

from . import yuan2020_auto
from .yuan2020 import LINES, phantom_experiment

__all__ = ["DIVISORS", "METHODS", "DoseSweepStudy", "dose_reduction"]

#: EDS dose divisors of the sweep (the paper's EDS dose divided by each).
DIVISORS: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
#: The methods compared by default.
METHODS: tuple[str, ...] = ("sirt", "hebt-sirt", "poisson-tv", "fused")
#: Methods run on request: each solver of the phantom study's automatic comparison with its options chosen
#: from the data as there (:func:`.yuan2020_auto.solve_automatic`), method name → solver.
AUTO_METHODS: dict[str, str] = {f"{name}-auto": name for name in yuan2020_auto.AUTO_METHODS}
#: Fixed parameters of the SIRT-type methods (the pipeline's fixed counts), and the paper's filter.
SIRT_ITERATIONS, HEBT_ITERATIONS, HEBT_ALPHA, FILTER_SIGMA = 50, 100, 0.8, 0.8
#: Distance (pixels) kept from every interface for the interior RMSE.
EROSION = 3.0
COLUMNS = ("divisor", "seed", "method", "ssim_quant_Ag", "ssim_quant_Au", "rmse_wt", "mask_dice", "threshold_method")
METRICS = ("ssim_quant_Ag", "ssim_quant_Au", "rmse_wt", "mask_dice")


def dose_reduction(means: dict[float, float], reference: float) -> float | None:
    """The largest divisor whose mean is at least ``reference`` (None when no divisor reaches it)."""
    reached = [divisor for divisor, value in means.items() if np.isfinite(value) and value >= reference]
    return max(reached) if reached else None


class DoseSweepStudy(Study):
    """Quality against EDS dose for SIRT, HEBT-SIRT, poisson-tv and fused on the Yuan 2020 phantom.

    Parameters
    ----------
    divisors : list of float
        EDS dose divisors (≥ 1; default 1, 3, 10, 30, 100, 300).
    seeds : int
        Noise seeds per divisor (0, 1, …; default 3).
    methods : list of str
        Methods to run (default all four; ``sirt`` is needed for ``dose_reduction``).
    haadf_noise : bool
        Poisson noise on the HAADF too (default True).
    oracle_iterations : int
        Largest n of SIRT's truth-chosen reference at divisor 1 (0: none).
    figures : bool
        Write ``dose_sweep.png`` (needs matplotlib).
    solid_angle, outer_radius, core_radius
        As in ``yuan2020-phantom``.
    """

    name = "dose-sweep"
    description = "Quality vs EDS dose (divisors 1-300, seeds): SIRT, HEBT-SIRT, poisson-tv, fused; dose_reduction"

    class Options(PluginOptions):
        divisors: list[float] = Field(list(DIVISORS), min_length=1, description="EDS dose divisors (>= 1)")
        seeds: int = Field(3, ge=1, le=100, description="noise seeds per divisor")
        methods: list[Literal[(*METHODS, *AUTO_METHODS)]] = Field(  # type: ignore[valid-type]
            list(METHODS), min_length=1, description=f"methods to run (also: {', '.join(AUTO_METHODS)})"
        )
        haadf_noise: bool = Field(True, description="Poisson noise on the HAADF too")
        oracle_iterations: int = Field(200, ge=0, le=2000, description="n range of SIRT's truth-chosen reference")
        figures: bool = Field(True, description="write dose_sweep.png (needs matplotlib)")
        solid_angle: SolidAngle = Field("0.7 sr", description="EDS detector solid angle")
        outer_radius: Length = Field("55 nm", description="phantom outer radius")
        core_radius: Length = Field("30 nm", description="phantom core radius")

        @field_validator("divisors")
        @classmethod
        def _divisors(cls, divisors: list[float]) -> list[float]:
            if any(not (np.isfinite(d) and d >= 1) for d in divisors) or len(set(divisors)) != len(divisors):
                raise ValueError(f"divisors: {divisors} must be distinct finite numbers >= 1")
            return sorted(float(d) for d in divisors)

        @field_validator("methods")
        @classmethod
        def _methods(cls, methods: list[str]) -> list[str]:
            if len(set(methods)) != len(methods):
                raise ValueError(f"methods: {methods} must be distinct")
            return [m for m in (*METHODS, *AUTO_METHODS) if m in methods]

    def experiment(self) -> Experiment:
        return phantom_experiment(format_quantity(self.options.solid_angle))

    def run(self, out: str | Path, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        report = progress or (lambda stage, done, total: None)
        if self.options.figures:
            from .yuan2020_figures import require_matplotlib

            require_matplotlib()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        start, load_before = time.perf_counter(), os.getloadavg()
        table = ResultsTable(COLUMNS)
        seconds: dict[str, float] = dict.fromkeys(self.options.methods, 0.0)
        oracle: list[float] = []
        self.chosen: dict[str, dict[str, Any]] = {}
        runs = len(self.options.divisors) * self.options.seeds
        done = 0
        for divisor in self.options.divisors:
            forward, scorer = self._simulation(divisor)  # what every seed of this dose shares
            for seed in range(self.options.seeds):
                self._run_one(divisor, seed, forward, scorer, table, seconds, oracle)
                done += 1
                report("dose sweep", done, runs)
        summary = self.summarise(table, oracle)
        summary["seconds"] = round(time.perf_counter() - start, 1)
        table.to_csv(out / "metrics.csv")
        write_json(out / "summary.json", summary)
        write_json(
            out / "settings.json",
            {
                "study": self.name,
                "parameters": self.parameters(),
                "fixed": {
                    "sirt_iterations": SIRT_ITERATIONS,
                    "hebt_iterations": HEBT_ITERATIONS,
                    "hebt_alpha": HEBT_ALPHA,
                    "filter_sigma": FILTER_SIGMA,
                    "erosion_pixels": EROSION,
                },
                "solver_seconds": {k: round(v, 2) for k, v in seconds.items()},
                "automatic": self.chosen,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "provenance": provenance.versions(),
            },
        )
        if self.options.figures:
            from .dose_sweep_figures import draw

            draw(table, summary, out / "dose_sweep.png")
        return summary

    # ----- one series ----------------------------------------------------------------------------------------
    def _simulation(self, divisor: float) -> tuple[Any, _Scorer]:
        """The forward model (with its phantom) at EDS dose ÷ ``divisor``, and the scorer against that phantom."""
        options = self.options
        experiment = phantom_experiment(format_quantity(options.solid_angle), divisor)
        factors = plugins.physics("table")().compute(experiment)
        phantom = plugins.phantom("core-shell")(outer_radius=options.outer_radius, core_radius=options.core_radius)
        truth = phantom.generate(experiment)
        forward = plugins.forward("thin-film")(experiment, factors)
        return forward, _Scorer(truth, phantom.regions(experiment), factors)

    def _run_one(
        self,
        divisor: float,
        seed: int,
        forward: Any,
        scorer: _Scorer,
        table: ResultsTable,
        seconds: dict[str, float],
        oracle: list[float],
    ) -> None:
        options = self.options
        series = forward.simulate(scorer.truth, noise="poisson", seed=seed, haadf_noise=options.haadf_noise)
        filtered = gaussian_filter(series, FILTER_SIGMA)
        ratios = response_ratios(filtered, list(LINES)).ratios
        lines = list(LINES)
        plans: dict[str, tuple[TiltSeries, dict[str, Any]]] = {
            "sirt": (filtered.select(lines), {"iterations": SIRT_ITERATIONS}),
            "hebt-sirt": (filtered, {"iterations": HEBT_ITERATIONS, "alpha": HEBT_ALPHA, "ratios": ratios}),
            "poisson-tv": (series.select(lines), {}),
            "fused": (series, {"ratios": ratios}),
        }
        for method in options.methods:
            if method in AUTO_METHODS:
                begin = time.perf_counter()
                prepared, volume = yuan2020_auto.solve_automatic(
                    AUTO_METHODS[method], series, ratios=ratios, sigma=FILTER_SIGMA
                )
                chosen = dict(prepared.auto_choice.chosen)
                seconds[method] += time.perf_counter() - begin
                self.chosen[f"{divisor:g}/{seed}/{method}"] = chosen
                table.add(divisor=divisor, seed=seed, method=method, **scorer.score(volume))
                continue
            data, solver_options = plans[method]
            callbacks = None
            if method == "sirt" and divisor == options.divisors[0] and divisor == 1.0 and options.oracle_iterations:
                solver_options = {"iterations": max(SIRT_ITERATIONS, options.oracle_iterations)}
                curve: list[float] = []
                callbacks = [_OracleCurve(scorer, curve, data)]
            begin = time.perf_counter()
            volume = plugins.solver(method)(**solver_options).solve(data, callbacks=callbacks)
            if callbacks is None:  # the oracle's longer run, scored at every n, is not the method's cost
                seconds[method] += time.perf_counter() - begin
            else:
                oracle.append(max(curve))
                volume = callbacks[0].at(SIRT_ITERATIONS)
            table.add(divisor=divisor, seed=seed, method=method, **scorer.score(volume))

    # ----- summary -------------------------------------------------------------------------------------------
    def summarise(self, table: ResultsTable, oracle: list[float]) -> dict[str, Any]:
        """Means, spreads and ``dose_reduction`` from the table (and SIRT's truth-chosen reference)."""
        divisors = self.options.divisors
        statistics: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        for method in self.options.methods:
            statistics[method] = {}
            for divisor in divisors:
                rows = table.where(method=method, divisor=divisor)
                entry = {}
                for metric in METRICS:
                    values = np.array([row[metric] for row in rows], dtype=float)
                    finite = values[np.isfinite(values)]
                    entry[metric] = {
                        "mean": float(finite.mean()) if finite.size else float("nan"),
                        "min": float(finite.min()) if finite.size else float("nan"),
                        "max": float(finite.max()) if finite.size else float("nan"),
                        "failed": int(values.size - finite.size),
                    }
                statistics[method][f"{divisor:g}"] = entry
        summary: dict[str, Any] = {"divisors": divisors, "seeds": self.options.seeds, "statistics": statistics}
        if "sirt" in statistics and 1.0 in divisors:
            reference = statistics["sirt"]["1"]["ssim_quant_Ag"]["mean"]
            summary["sirt_reference_ssim_quant_Ag"] = reference
            summary["dose_reduction"] = {
                method: dose_reduction(
                    {d: statistics[method][f"{d:g}"]["ssim_quant_Ag"]["mean"] for d in divisors}, reference
                )
                for method in statistics
            }
            if oracle:
                best = float(np.mean(oracle))
                summary["sirt_oracle_ssim_quant_Ag"] = best
                summary["dose_reduction_vs_oracle"] = {
                    method: dose_reduction(
                        {d: statistics[method][f"{d:g}"]["ssim_quant_Ag"]["mean"] for d in divisors}, best
                    )
                    for method in statistics
                }
                automatic = [method for method in statistics if method in AUTO_METHODS]
                if automatic:
                    summary["auto_over_oracle"] = {
                        method: statistics[method]["1"]["ssim_quant_Ag"]["mean"] / best for method in automatic
                    }
        return summary


class _Scorer:
    """Quantifies a volume with the quantifier of its factor and scores it against the phantom."""

    def __init__(self, truth: CompositionMaps, regions: dict[str, np.ndarray], factors: Any) -> None:
        self.truth, self.factors = truth, factors
        self.particle = regions["core"] | regions["shell"]
        self.interior = interior(regions["core"], EROSION) | interior(regions["shell"], EROSION)
        self.ssim = plugins.metric("ssim-structure")()

    def quantify(self, volume: Volume) -> CompositionMaps | None:
        quantifier = plugins.quantifier_for(volume.factor)(self.factors, fallback="otsu")
        try:
            return quantifier.quantify(volume)
        except ValueError:  # no usable threshold: counted as a failure of the method at this dose
            return None

    def score(self, volume: Volume) -> dict[str, Any]:
        maps = self.quantify(volume)
        if maps is None:
            return {**dict.fromkeys(METRICS, float("nan")), "threshold_method": "failed"}
        values: dict[str, Any] = {"threshold_method": maps.provenance[-1]["parameters"].get("threshold_method")}
        for line in volume.channels:
            element = element_of(line)
            values[f"ssim_quant_{element}"] = self.ssim(maps.fraction(element), self.truth.fraction(element))
        errors = [maps.fraction(e)[self.interior] - self.truth.fraction(e)[self.interior] for e in maps.elements]
        values["rmse_wt"] = 100.0 * float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
        values["mask_dice"] = dice(maps.mask, self.particle)
        return values


class _OracleCurve(Callback):
    """Scores SIRT's maps at every n (the truth-chosen reference) and keeps the maps at one n."""

    def __init__(self, scorer: _Scorer, curve: list[float], data: TiltSeries) -> None:
        self.scorer, self.curve, self.data = scorer, curve, data
        self.kept: dict[int, Volume] = {}

    def on_step(self, state: IterationState) -> None:
        volume = state.volume()
        if state.iteration == SIRT_ITERATIONS:
            self.kept[state.iteration] = volume
        maps = self.scorer.quantify(volume)
        if maps is not None:
            self.curve.append(self.scorer.ssim(maps.fraction("Ag"), self.scorer.truth.fraction("Ag")))

    def at(self, iteration: int) -> Volume:
        return self.kept[iteration]
