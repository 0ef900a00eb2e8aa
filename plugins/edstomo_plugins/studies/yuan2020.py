"""Study ``yuan2020-phantom``: the phantom study of Yuan et al. (2020), section 3.1, at two EDS dose levels.

For each dose level (``"paper"``: the paper's doses; ``"low"``: the EDS dose
divided by ``low_dose_divisor``) the study

1. simulates the Ag–Au core–shell phantom (thin-film model, Poisson noise on
   EDS, fixed seed), filters the EDS sinograms (Gaussian, σ = 0.8 px over
   tilts × positions) and estimates the response ratios r_A (eq. 15);
2. runs EDS-only SIRT once to ``max_iterations`` and records, at every n, the
   metrics of the raw maps X_A and of the quantified maps (eq. 12, ESF threshold);
3. runs HEBT-SIRT (eq. 17) once per α to the largest n of ``hebt_iterations``
   and records the same metrics at each n of ``hebt_iterations`` (eq. 18);
4. reconstructs the HAADF sinogram alone (SIRT, 50 iterations; Figure 7);
5. beyond the paper, runs ``poisson-tv`` (the raw EDS counts) and ``fused`` (raw counts, the
   HAADF and the ratios of step 1) with their default rules, and records the same metrics
   (:mod:`edstomo_plugins.studies.yuan2020_poisson`); with ``auto`` also at every multiplier of
   their TV rule that ``regularization="auto"`` tries (the oracle of ``auto_over_oracle``);
6. with ``auto`` (the default), runs every method once more with its options chosen from the
   data (:mod:`edstomo_plugins.studies.yuan2020_auto`).

Metrics compare each map with the phantom's weight fractions (the paper's
Figure 1). Raw maps, which are on no absolute scale, are first multiplied by
the least-squares scale factor (the paper's convention for their MSE), so
``mse`` equals ``mse_scaled`` for them; SSIM-structure is scale-invariant.
Windowed SSIM and PSNR use a data range of 1 (weight fractions).

Files written to ``out``: ``metrics.csv`` (every metric, every map),
``summary.json`` (one object per level with the acceptance figures),
``settings.json`` (options, experiments, ratios, timings, versions), and per
level a folder with the simulated tilt series and the headline quantified maps
(HDF5) and the figures (PNG) equivalent to the paper's Figures 1–13.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from edstomo import provenance
from edstomo.algorithms import IterationState
from edstomo.data import HAADF, CompositionMaps, TiltSeries, Volume
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Length, Scan, SolidAngle, TiltScheme
from edstomo.interfaces import Study
from edstomo.lines import element_of
from edstomo.operators import MODELS
from edstomo.options import PluginOptions
from edstomo.preprocessing import gaussian_filter, response_ratios
from edstomo.registry import plugins
from edstomo.study import ResultsTable, dice, interior, write_json
from edstomo.units import format_quantity
from pydantic import Field, model_validator

from ..metrics.mse import best_scale
from .yuan2020_auto import auto_figures, auto_settings, auto_summary, run_auto
from .yuan2020_poisson import POISSON_SUMMARY_KEYS, poisson_summary, run_poisson_solvers
from .yuan2020_results import (
    EROSION,
    FIGURE_EDS_N,
    HAADF_ITERATIONS,
    HEADLINE_ALPHA,
    HEADLINE_N,
    LevelResult,
    Snapshot,
)

#: Dose levels, in the order they are run.
LEVELS: tuple[str, ...] = ("paper", "low")
#: The elements and lines of the phantom.
LINES: tuple[str, ...] = ("Ag_La", "Au_Ma")
#: The paper's sweep of α.
PAPER_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: The n at which HEBT maps are recorded.
PAPER_HEBT_ITERATIONS: tuple[int, ...] = (50, 100, 200, 500)
#: The reduced sweep of ``quick=True`` (same geometry and doses).
QUICK_ALPHAS: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9)
QUICK_HEBT_ITERATIONS: tuple[int, ...] = (50, 100, 200)
QUICK_MAX_ITERATIONS = 200
COLUMNS = (
    "level", "method", "alpha", "regularization", "n", "element", "maps",
    "ssim_structure", "mse_scaled", "mse", "ssim", "psnr", "scale", "threshold", "mask_dice",
)  # fmt: skip
SUMMARY_KEYS = (
    "eds_best_n_Ag", "eds_best_n_Au", "eds_ssim_quant_Ag", "hebt_ssim_quant_Ag",
    "core_wt_Au", "shell_wt_Ag", "mask_dice", "r_squared", "r_Ag", "r_Au",
    *POISSON_SUMMARY_KEYS,
)  # fmt: skip
#: Summary keys added with ``auto=True`` (see :mod:`.yuan2020_auto`).
AUTO_SUMMARY_KEYS = ("auto_over_oracle", "auto_parameters")


def phantom_experiment(solid_angle: str = "0.7 sr", eds_dose_divisor: float = 1.0) -> Experiment:
    """The acquisition of the phantom study of Yuan et al. (2020), section 3.1.1.

    100 keV; Ag Lα and Au Mα; 31 tilts from −75° to 75°; 97 positions of
    1.5 nm; HAADF 1e5 electrons per pixel (444 e/Å²); EDS 100 pA × 0.5 s per
    pixel (3.121e8 electrons, 1.39e6 e/Å²), divided by ``eds_dose_divisor``.
    The paper does not give the detector solid angle; ``solid_angle`` sets it.
    """
    if not eds_dose_divisor > 0:
        raise ValueError(f"eds_dose_divisor: {eds_dose_divisor!r} must be positive")
    return Experiment(
        name="yuan2020-phantom",
        description="Ag-Au core-shell phantom of Yuan et al. 2020, section 3.1.1",
        beam_energy="100 keV",
        lines=["Ag_La", "Au_Ma"],
        tilts=TiltScheme(start="-75 deg", stop="75 deg", step="5 deg"),
        scan=Scan(positions=97, pixel_size="1.5 nm"),
        haadf=HAADFDetector(electrons_per_pixel="1e5 e", inner_angle="94 mrad", outer_angle="611 mrad"),
        eds=EDSDetector(probe_current=f"{100.0 / eds_dose_divisor!r} pA", dwell_time="0.5 s", solid_angle=solid_angle),
    )


class Yuan2020PhantomStudy(Study):
    """The Ag–Au core–shell phantom study of Yuan et al. (2020), §3.1, at the paper's and a low EDS dose.

    Parameters
    ----------
    solid_angle : str or Quantity
        EDS detector solid angle (the paper does not give it); default 0.7 sr.
    low_dose_divisor : float
        The ``low`` level divides the paper's EDS dose by this (> 1); default 30.
    levels : sequence of {"paper", "low"}
        The dose levels to run.
    max_iterations : int, optional
        Largest n of the EDS-only sweep (n = 1 … max); HEBT n above it are
        dropped. Default 500 (200 with ``quick``); at least 200 (the summary's n).
    seed : int
        Seed of the Poisson noise (the same for every level).
    figures : bool
        Write the PNG figures (needs matplotlib, the ``plots`` extra).
    quick : bool
        Reduced sweep: α ∈ {0, 0.5, 0.8, 0.9}, HEBT n ∈ {50, 100, 200}, EDS n ≤ 200.
    alphas, hebt_iterations : sequence, optional
        Override the α values and the HEBT n; they must include α = 0.8 and n = 200.
    sigma : float
        Gaussian filter σ (pixels) on the EDS sinograms; default 0.8 as in the paper.
    outer_radius, core_radius : str or Quantity
        Phantom radii; default 55 nm and 30 nm.
    projector : {"strip", "joseph"}
        Projection model of the simulation and of the solvers.
    """

    name = "yuan2020-phantom"
    description = "Yuan 2020 Ag-Au phantom: EDS-only SIRT vs HEBT, semi-convergence, quantification, two doses"

    default = True

    class Options(PluginOptions):
        solid_angle: SolidAngle = Field("0.7 sr", description="EDS detector solid angle (the paper does not give it)")
        low_dose_divisor: float = Field(30.0, gt=1, allow_inf_nan=False, description="EDS dose divisor of 'low'")
        levels: list[Literal[LEVELS]] = Field(list(LEVELS), min_length=1, description="dose levels to run")
        max_iterations: int | None = Field(
            None, ge=HEADLINE_N, description="largest n of the EDS-only sweep (default 500, 200 with quick)"
        )
        seed: int = Field(0, ge=0, description="seed of the Poisson noise")
        figures: bool = Field(True, description="write the PNG figures (needs matplotlib)")
        quick: bool = Field(False, description="reduced sweep: fewer α and n")
        alphas: list[Annotated[float, Field(ge=0, lt=1)]] | None = Field(
            None, description=f"α values of the HEBT sweep (must include {HEADLINE_ALPHA})"
        )
        hebt_iterations: list[Annotated[int, Field(ge=1)]] | None = Field(
            None, description=f"n at which HEBT maps are recorded (must include {HEADLINE_N})"
        )
        sigma: float = Field(0.8, ge=0, allow_inf_nan=False, description="Gaussian filter σ (pixels) on EDS sinograms")
        outer_radius: Length = Field("55 nm", description="phantom outer radius")
        core_radius: Length = Field("30 nm", description="phantom core radius")
        projector: Literal[MODELS] = Field("strip", description="projection model of the simulation and solvers")
        auto: bool = Field(True, description="also choose each method's parameters from the data (auto_over_oracle)")
        haadf_noise: bool = Field(False, description="Poisson noise on the HAADF too (the paper's: none)")

        @model_validator(mode="after")
        def _sweeps(self) -> Yuan2020PhantomStudy.Options:
            if len(set(self.levels)) != len(self.levels):
                raise ValueError(f"levels: {self.levels} must be distinct")
            if self.alphas is not None and not any(np.isclose(a, HEADLINE_ALPHA) for a in self.alphas):
                raise ValueError(f"alphas: {self.alphas} must include {HEADLINE_ALPHA}")
            if self.hebt_iterations is not None and HEADLINE_N not in self.hebt_iterations:
                raise ValueError(f"hebt_iterations: {self.hebt_iterations} must include {HEADLINE_N}")
            return self

    def __init__(self, **options: Any):
        super().__init__(**options)
        quick = self.options.quick
        self.levels = [level for level in LEVELS if level in self.options.levels]
        default_max = QUICK_MAX_ITERATIONS if quick else max(PAPER_HEBT_ITERATIONS)
        self.max_iterations = self.options.max_iterations or default_max
        alphas = self.options.alphas or (QUICK_ALPHAS if quick else PAPER_ALPHAS)
        self.alphas = sorted(HEADLINE_ALPHA if np.isclose(a, HEADLINE_ALPHA) else float(a) for a in alphas)
        ns = self.options.hebt_iterations or (QUICK_HEBT_ITERATIONS if quick else PAPER_HEBT_ITERATIONS)
        self.hebt_iterations = sorted(int(n) for n in ns if int(n) <= self.max_iterations)

    def experiment(self) -> Experiment:
        """The experiment of the paper's dose level."""
        return phantom_experiment(format_quantity(self.options.solid_angle))

    # ----- running -------------------------------------------------------------------------------------------
    def run(self, out: str | Path, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        report = progress or (lambda stage, done, total: None)
        if self.figures:
            from .yuan2020_figures import require_matplotlib

            require_matplotlib()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table = ResultsTable(COLUMNS)
        results = {level: self._run_level(level, table, report) for level in self.levels}
        summary = {level: self.summarise(result, table) for level, result in results.items()}
        table.to_csv(out / "metrics.csv")
        write_json(out / "summary.json", summary)
        write_json(out / "settings.json", self._settings(results))
        for level, result in results.items():
            folder = out / level
            folder.mkdir(exist_ok=True)
            result.series.save(folder / "tilt_series.h5")
            if result.headline.quantified is not None:
                result.headline.quantified.save(folder / f"hebt_alpha{HEADLINE_ALPHA}_n{HEADLINE_N}_quantified.h5")
            if self.figures:
                from .yuan2020_figures import write_figures

                stage = f"{level}: figures"
                write_figures(result, table, folder, progress=lambda done, total, s=stage: report(s, done, total))
                if result.auto:
                    auto_figures(result.auto, folder, level)
        return summary

    def _run_level(self, level: str, table: ResultsTable, report: Callable[[str, int, int], None]) -> LevelResult:
        start = time.perf_counter()
        divisor = 1.0 if level == "paper" else self.low_dose_divisor
        experiment = phantom_experiment(format_quantity(self.solid_angle), divisor)
        factors = plugins.physics("table")().compute(experiment)
        phantom = plugins.phantom("core-shell")(outer_radius=self.outer_radius, core_radius=self.core_radius)
        truth = phantom.generate(experiment)
        regions = phantom.regions(experiment)
        forward = plugins.forward("thin-film")(experiment, factors, projector=self.projector)
        series = forward.simulate(truth, noise="poisson", seed=self.seed, haadf_noise=self.haadf_noise)
        filtered = gaussian_filter(series, self.sigma)
        ratios = response_ratios(filtered, list(LINES))
        haadf = plugins.solver("sirt")(iterations=HAADF_ITERATIONS, channels=[HAADF], projector=self.projector).solve(
            series
        )
        result = LevelResult(level, experiment, truth, regions, series, filtered, ratios, haadf)
        recorder = _Recorder(table, level, truth, regions["core"] | regions["shell"])

        eds_quantifier = plugins.quantifier("eds")(factors)
        stage = f"{level}: EDS-only SIRT"

        def eds_callback(state: IterationState) -> None:
            maps = _volume(state, series)
            snapshot = recorder.record("eds-sirt", None, state.iteration, maps, eds_quantifier)
            if state.iteration in FIGURE_EDS_N:
                result.eds[state.iteration] = snapshot
            report(stage, state.iteration, self.max_iterations)

        plugins.solver("sirt")(iterations=self.max_iterations, projector=self.projector).solve(
            filtered.select(list(LINES)), callbacks=eds_callback
        )

        hebt_quantifier = plugins.quantifier("hebt")(factors)
        last = max(self.hebt_iterations)
        for alpha in self.alphas:
            stage = f"{level}: HEBT-SIRT alpha={alpha:g}"

            def hebt_callback(state: IterationState, alpha: float = alpha, stage: str = stage) -> None:
                report(stage, state.iteration, last)
                if state.iteration not in self.hebt_iterations:
                    return
                maps = _volume(state, series)
                snapshot = recorder.record("hebt-sirt", alpha, state.iteration, maps, hebt_quantifier)
                result.hebt[(alpha, state.iteration)] = snapshot

            plugins.solver("hebt-sirt")(alpha=alpha, ratios=ratios, iterations=last, projector=self.projector).solve(
                filtered, callbacks=hebt_callback
            )
        run_poisson_solvers(self, series, ratios, recorder, result, eds_quantifier, report)
        result.esf = hebt_quantifier.esf(result.headline.raw)
        if self.options.auto:
            report(f"{level}: automatic parameters", 0, 1)
            result.auto = run_auto(
                level,
                series,
                truth,
                factors,
                table,
                ratios=ratios,
                sigma=self.sigma,
                projector=self.projector,
                max_iterations=self.max_iterations,
            )
            report(f"{level}: automatic parameters", 1, 1)
        result.seconds = time.perf_counter() - start
        return result

    # ----- results -------------------------------------------------------------------------------------------
    def summarise(self, result: LevelResult, table: ResultsTable) -> dict[str, float | int]:
        """The acceptance figures of one level (the keys of :data:`SUMMARY_KEYS`)."""
        level = result.level
        eds = {"level": level, "method": "eds-sirt"}
        best_n = {
            element: int(table.best("ssim_structure", **eds, maps="raw", element=element)["n"])
            for element in ("Ag", "Au")
        }
        headline_rows = table.where(
            level=level, method="hebt-sirt", alpha=HEADLINE_ALPHA, n=HEADLINE_N, maps="quantified", element="Ag"
        )
        quantified = result.headline.quantified
        if quantified is None:
            raise ValueError(
                f"{level}: the ESF method found no particle plateau in the HEBT maps at alpha={HEADLINE_ALPHA}, "
                f"n={HEADLINE_N}; the summary cannot be computed"
            )
        core = interior(result.regions["core"], EROSION)
        shell = interior(result.regions["shell"], EROSION)
        summary = {
            "eds_best_n_Ag": best_n["Ag"],
            "eds_best_n_Au": best_n["Au"],
            "eds_ssim_quant_Ag": float(
                table.best("ssim_structure", **eds, maps="quantified", element="Ag")["ssim_structure"]
            ),
            "hebt_ssim_quant_Ag": float(headline_rows[0]["ssim_structure"]),
            "core_wt_Au": 100.0 * float(quantified.fraction("Au")[core].mean()),
            "shell_wt_Ag": 100.0 * float(quantified.fraction("Ag")[shell].mean()),
            "mask_dice": dice(quantified.mask, result.regions["core"] | result.regions["shell"]),
            "r_squared": float(result.ratios.r_squared),
            "r_Ag": float(result.ratios["Ag_La"]),
            "r_Au": float(result.ratios["Au_Ma"]),
            **poisson_summary(result, table),
        }
        if result.auto:
            summary.update(auto_summary(result.auto))
        return summary

    def _settings(self, results: dict[str, LevelResult]) -> dict[str, Any]:
        levels = {}
        for level, result in results.items():
            experiment = result.experiment
            factors = plugins.physics("table")().compute(experiment)
            # eq. 16: r_A = D_H N_A z_A / (n f_A), n = N_A D_e Ω / 4π
            solid = experiment.eds.solid_angle.m_as("sr") / (4 * np.pi)
            dose_ratio = experiment.haadf_electrons_per_pixel.m_as("e") / experiment.eds_electrons_per_pixel.m_as("e")
            expected = dose_ratio * factors.z_array(list(LINES)) / (solid * factors.f_array(list(LINES)))
            levels[level] = {
                "eds_dose_divisor": 1.0 if level == "paper" else self.low_dose_divisor,
                "experiment": experiment.to_dict(),
                "response_ratios": result.ratios.ratios,
                "response_ratios_eq16": dict(zip(LINES, expected.tolist())),
                "r_squared": result.ratios.r_squared,
                "esf_threshold": None if result.esf is None else result.esf.threshold,
                "seconds": result.seconds,
                **({"auto": auto_settings(result.auto)} if result.auto else {}),
            }
        return {
            "study": self.name,
            "parameters": self.parameters(),
            "alphas": self.alphas,
            "hebt_iterations": self.hebt_iterations,
            "headline": {"alpha": HEADLINE_ALPHA, "n": HEADLINE_N, "erosion_pixels": EROSION},
            "levels": levels,
            "provenance": provenance.versions(),
        }


def _volume(state: IterationState, series: TiltSeries) -> Volume:
    """A copy of the solver's current estimate as a Volume (float64)."""
    return Volume(
        data=np.array(state.estimate, dtype=float),
        channels=list(state.channels),
        pixel_size=series.pixel_size,
        experiment=series.experiment,
    )


class _Recorder:
    """Computes every metric of raw and quantified maps against the phantom and adds table rows."""

    def __init__(self, table: ResultsTable, level: str, truth: CompositionMaps, particle: np.ndarray):
        self.table = table
        self.level = level
        self.truth = truth
        self.particle = particle
        self.metrics = {
            "ssim_structure": plugins.metric("ssim-structure")(),
            "mse_scaled": plugins.metric("mse-scaled")(),
            "mse": plugins.metric("mse")(),
            "ssim": plugins.metric("ssim")(data_range=1.0),
            "psnr": plugins.metric("psnr")(data_range=1.0),
        }

    def record(
        self,
        method: str,
        alpha: float | None,
        n: int,
        maps: Volume,
        quantifier: Any,
        regularization: float | None = None,
    ) -> Snapshot:
        keys = {"level": self.level, "method": method, "alpha": alpha, "regularization": regularization, "n": n}
        for line in maps.channels:
            element = element_of(line)
            reference = self.truth.fraction(element)
            scale = best_scale(maps.channel(line), reference)
            values = self._values(scale * maps.channel(line), reference)
            self.table.add(**keys, element=element, maps="raw", scale=scale, **values)
        try:
            quantified = quantifier.quantify(maps)
        except ValueError:  # no plateau in the volume curve (early iterations): no quantified maps
            quantified = None
        overlap = None if quantified is None else dice(quantified.mask, self.particle)
        for line in maps.channels:
            element = element_of(line)
            if quantified is None:
                values = dict.fromkeys(self.metrics, float("nan"))
                threshold = None
            else:
                values = self._values(quantified.fraction(element), self.truth.fraction(element))
                threshold = quantified.threshold
            self.table.add(**keys, element=element, maps="quantified", threshold=threshold, mask_dice=overlap, **values)
        return Snapshot(maps, quantified)

    def _values(self, estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        return {name: metric(estimate, reference) for name, metric in self.metrics.items()}
