"""Study ``absorption``: a thick silicate particle, simulated with X-ray absorption, quantified, corrected or not.

The phantom (``shapes``) is a 600-nm olivine sphere: an Fe-poor shell (Fo90,
(Mg0.9Fe0.1)2SiO4, 3.35 g/cm³) around an Fe-rich core of 300 nm (Fo50,
MgFeSiO4, 3.8 g/cm³), imaged at 200 keV with O, Mg, Si and Fe Kα. For each
detector configuration — one detector at 18° elevation, and four (a Super-X
layout: 18°, azimuths 45°, 135°, 225°, 315°) — the study

1. simulates the tilt series with the ``absorbing`` forward model (Poisson noise);
2. reconstructs with the chosen solver and quantifies (uncorrected);
3. runs :class:`edstomo.absorption.AbsorptionCorrection` with the same solver
   and quantifier (corrected);
4. records per region (shell, core; eroded by 3 px) and element the mean
   weight fraction against the truth.

``summary.json`` holds per configuration ``uncorrected_max_region_error_wt`` and
``corrected_max_region_error_wt`` (largest absolute error of a region-mean weight
fraction, in wt%, over elements and regions), the line transmissions of the
phantom (emission-weighted means over voxels and tilts), iterations and timings.
``regions.csv`` has every number; ``absorption.png`` shows the maps and errors.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edstomo import provenance
from edstomo.absorption import AbsorptionCorrection, AbsorptionModel
from edstomo.data import CompositionMaps
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from edstomo.interfaces import Study
from edstomo.options import PluginOptions
from edstomo.registry import plugins
from edstomo.study import ResultsTable, interior, write_json
from pydantic import Field

from ..forward.absorbing import head_efficiency

#: The lines, in order.
LINES: tuple[str, ...] = ("O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka")
#: Detector configurations: name -> EDS geometry.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "single": {"elevation": "18 deg", "azimuth": "0 deg", "solid_angle": "0.7 sr"},
    "super-x": {
        "detectors": [
            {"name": f"SDD{k + 1}", "elevation": "18 deg", "azimuth": f"{a} deg", "solid_angle": "0.175 sr"}
            for k, a in enumerate((45, 135, 225, 315))
        ]
    },
}
#: Olivine compositions (weight fractions) and densities (g/cm³).
SHELL = {"O": 0.4353, "Mg": 0.2977, "Si": 0.1911, "Fe": 0.0759}
CORE = {"O": 0.3716, "Mg": 0.1411, "Si": 0.1631, "Fe": 0.3242}
SHELL_DENSITY, CORE_DENSITY = 3.35, 3.8
#: Erosion of the regions before averaging (pixels).
EROSION = 3.0
COLUMNS = ("configuration", "stage", "region", "element", "truth_wt", "estimate_wt", "error_wt")


def absorption_experiment(configuration: str, tilt_step: float = 5.0) -> Experiment:
    """The acquisition: 200 keV, O/Mg/Si/Fe Kα, tilts ±70°, 36 positions × 32 slices of 20 nm."""
    if configuration not in CONFIGURATIONS:
        raise ValueError(f"configuration: {configuration!r} must be one of {list(CONFIGURATIONS)}")
    return Experiment(
        name=f"absorption-{configuration}",
        description="600-nm olivine particle (Fo90 shell, Fo50 core) for the absorption study",
        beam_energy="200 keV",
        lines=list(LINES),
        tilts=TiltScheme(start="-70 deg", stop="70 deg", step=f"{tilt_step!r} deg"),
        scan=Scan(positions=36, pixel_size="20 nm", slices=32),
        haadf=HAADFDetector(electrons_per_pixel="1e5 e"),
        eds=EDSDetector(electrons_per_pixel="1e9 e", **CONFIGURATIONS[configuration]),
    )


def phantom_shapes() -> list[dict[str, Any]]:
    """The ``shapes`` phantom: an Fo90 sphere of 300 nm radius with an Fo50 core of 150 nm radius."""
    return [
        {"kind": "ellipsoid", "radii": ["300 nm"] * 3, "composition": SHELL, "density": SHELL_DENSITY},
        {
            "kind": "ellipsoid",
            "centre": ["0 nm", "-40 nm", "0 nm"],
            "radii": ["150 nm"] * 3,
            "composition": CORE,
            "density": CORE_DENSITY,
        },
    ]


class AbsorptionStudy(Study):
    """A thick silicate particle with and without absorption correction, for one and four EDS detectors."""

    name = "absorption"
    description = "600-nm olivine particle simulated with X-ray absorption; errors without and with correction"

    class Options(PluginOptions):
        configurations: list[Literal[tuple(CONFIGURATIONS)]] = Field(
            default_factory=lambda: list(CONFIGURATIONS), description="detector configurations to run"
        )
        solver: str = Field("sirt", description="reconstruction solver (any; its quantifier follows its factor)")
        iterations: int = Field(60, ge=1, le=10_000, description="iterations of the solver")
        density: Literal["maps", "mixture"] | float = Field(
            "maps", description="density estimate of the correction: 'maps', 'mixture' or g/cm³"
        )
        tolerance: float = Field(0.002, gt=0, description="stop when particle-mean fractions change less (fraction)")
        max_corrections: int = Field(5, ge=1, le=50, description="most corrected reconstructions")
        tilt_step: float = Field(5.0, gt=0, le=70, description="tilt step (deg) over ±70°")
        seed: int = Field(1, ge=0, description="seed of the Poisson noise")

    def experiment(self) -> Experiment:
        return absorption_experiment(self.options.configurations[0], self.options.tilt_step)

    def run(self, out: str | Path, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        table = ResultsTable(COLUMNS)
        summary: dict[str, Any] = {}
        figures: dict[str, Any] = {}
        for index, configuration in enumerate(self.options.configurations):
            result, panels = self._configuration(configuration, table)
            summary[configuration] = result
            figures[configuration] = panels
            if progress is not None:
                progress("configurations", index + 1, len(self.options.configurations))
        table.to_csv(out / "regions.csv")
        summary["settings"] = {
            **self.parameters(),
            "phantom": "600-nm olivine sphere: Fo90 shell (3.35 g/cm³), Fo50 core of 300 nm (3.8 g/cm³)",
            "erosion_px": EROSION,
            "machine": {"cpus": _cpus(), "python": platform.python_version()},
            "versions": provenance.versions(),
        }
        write_json(out / "summary.json", summary)
        try:
            from .absorption_figures import absorption_figure
        except ImportError:  # matplotlib is optional
            pass
        else:
            absorption_figure(figures, out / "absorption.png")
        return summary

    def _configuration(self, configuration: str, table: ResultsTable) -> tuple[dict[str, Any], dict[str, Any]]:
        start = time.perf_counter()
        experiment = absorption_experiment(configuration, self.options.tilt_step)
        phantom = plugins.phantom("shapes")(shapes=phantom_shapes())
        truth = phantom.generate(experiment)
        regions = dict(zip(("shell", "core"), phantom.regions(experiment)))
        physics = plugins.default("physics")().compute(experiment)
        forward = plugins.forward("absorbing")(experiment, physics)
        transmissions = forward.transmissions(truth)
        series = forward.simulate(truth, seed=self.options.seed)
        simulated = time.perf_counter() - start
        solver_cls = plugins.solver(self.options.solver)
        solver = solver_cls(iterations=self.options.iterations)
        quantifier = plugins.quantifier_for(solver_cls.produces)(physics)
        factors = physics.f_array(list(LINES)) if solver_cls.produces == "f_A" else physics.z_array(list(LINES))
        correction = AbsorptionCorrection(
            AbsorptionModel(experiment, efficiency=head_efficiency),
            density=self.options.density,
            tolerance=self.options.tolerance,
            max_iterations=self.options.max_corrections,
        )
        corrected = correction.run(series, solver.solve, quantifier.quantify, factors)
        errors = {}
        for stage, composition in (("uncorrected", corrected.uncorrected), ("corrected", corrected.composition)):
            errors[stage] = self._errors(configuration, stage, composition, truth, regions, table)
        emission = np.stack([truth.fraction(e) * truth.density for e in forward.model.elements])  # (lines, z, x, y)
        weights = np.moveaxis(emission, 0, 2)[None]  # (1, nz, nx, lines, slices)
        mean_transmission = (transmissions * weights).sum(axis=(0, 1, 2, 4)) / (
            weights.sum(axis=(0, 1, 2, 4)) * transmissions.shape[0]
        )
        result = {
            "uncorrected_max_region_error_wt": max(abs(v) for v in errors["uncorrected"].values()),
            "corrected_max_region_error_wt": max(abs(v) for v in errors["corrected"].values()),
            "errors_wt": errors,
            "mean_transmission": dict(zip(LINES, np.round(mean_transmission, 4).tolist())),
            "lowest_transmission": dict(zip(LINES, np.round(transmissions.min(axis=(0, 1, 2, 4)), 4).tolist())),
            "corrections": len(corrected.history),
            "converged": corrected.converged,
            "history": corrected.history,
            "seconds_simulate": round(simulated, 1),
            "seconds_total": round(time.perf_counter() - start, 1),
        }
        panels = {
            "truth": truth.fraction("O"),
            "uncorrected": corrected.uncorrected.fraction("O"),
            "corrected": corrected.composition.fraction("O"),
            "errors": errors,
        }
        return result, panels

    @staticmethod
    def _errors(
        configuration: str,
        stage: str,
        composition: CompositionMaps,
        truth: CompositionMaps,
        regions: dict[str, np.ndarray],
        table: ResultsTable,
    ) -> dict[str, float]:
        found = {}
        for region, mask in regions.items():
            inner = interior(mask, EROSION)
            for element in (line.split("_")[0] for line in LINES):
                expected = float(truth.fraction(element)[inner].mean()) * 100
                estimate = float(composition.fraction(element)[inner].mean()) * 100
                found[f"{region}_{element}"] = round(estimate - expected, 3)
                table.add(
                    configuration=configuration,
                    stage=stage,
                    region=region,
                    element=element,
                    truth_wt=expected,
                    estimate_wt=estimate,
                    error_wt=estimate - expected,
                )
        return found


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
