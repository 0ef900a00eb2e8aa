"""How good ``regularization="auto"`` of ``poisson-tv`` and ``fused`` is, and whether the multiplier transfers.

Run from the repository root (about 4 minutes on 2 cores)::

    python benchmarks/regularization_choice.py              # both parts
    python benchmarks/regularization_choice.py --part transfer

``transfer``: on the ``yuan2020-phantom`` data (seed 0, both levels) the best
multiplier of the TV rule (quantified Ag SSIM-structure against the truth) on
each p = 0.5 fit part, solved as the selection solves it (p × the whole data's
count levels, given ratios ÷ p), beside the best on the whole data.  If the
multiplier transfers unchanged (``whole`` = identity) the two agree; with
``value / fraction`` the whole data's best would be twice the fit part's.

``fe-ni``: on the Fe–Ni particle of ``tests/test_selection.py`` (seeds 1 and 2,
5/20/50 ms dwell, raw counts; and ``poisson-tv`` on counts smoothed along the
positions with a Gaussian of σ = 1 px, ``counts="scaled"`` and the matching
dispersion) the multiplier chosen from the data and auto/oracle, the quality
being the quantified Ni SSIM-structure with the particle threshold at half the
99th percentile of the summed map.  Numbers are in docs/selection.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from edstomo.preprocessing import gaussian_filter, response_ratios
from edstomo.registry import plugins
from edstomo.selection import thin
from edstomo_plugins.solvers.poisson import REGULARIZATION_CANDIDATES, count_levels
from edstomo_plugins.studies.yuan2020 import LINES, phantom_experiment
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test's Fe-Ni particle
from test_selection import _particle

GRID = REGULARIZATION_CANDIDATES
SOLVERS = ("poisson-tv", "fused")


def transfer() -> None:
    """Best multiplier on the fit parts and on the whole data of the study phantom, per level and solver."""
    for level, divisor in (("paper", 1.0), ("low", 30.0)):
        experiment = phantom_experiment("0.7 sr", divisor)
        factors = plugins.physics("table")().compute(experiment)
        truth = plugins.phantom("core-shell")(outer_radius="55 nm", core_radius="30 nm").generate(experiment)
        series = plugins.forward("thin-film")(experiment, factors).simulate(truth, noise="poisson", seed=0)
        ratios = response_ratios(gaussian_filter(series, 0.8), list(LINES)).ratios
        quantifier, metric = plugins.quantifier("eds")(factors), plugins.metric("ssim-structure")()
        rng = np.random.default_rng(0)
        fits = [thin(series, list(LINES), 0.5, rng)[0] for _ in range(2)]
        levels = count_levels(series, list(LINES))
        for name in SOLVERS:
            solvers = [
                plugins.solver(name)(regularization=m, levels=levels, **({"ratios": ratios} if name == "fused" else {}))
                for m in GRID
            ]

            def quality(data, fraction, solvers=solvers, name=name, truth=truth, quantifier=quantifier, metric=metric):
                row = []
                for solver in solvers:
                    solver = solver.thinned(fraction) if fraction < 1 else solver
                    volume = solver.solve(data if name == "fused" else data.select(list(LINES)))
                    row.append(metric(quantifier.quantify(volume).fraction("Ag"), truth.fraction("Ag")))
                return row

            whole = quality(series, 1.0)
            parts = [quality(fit, 0.5) for fit in fits]
            best = [GRID[int(np.argmax(row))] for row in parts]
            print(
                f"{level:5s} {name:10s} whole {np.round(whole, 4).tolist()} best {GRID[int(np.argmax(whole))]}; "
                f"fit parts best {best}",
                flush=True,
            )


def fe_ni() -> None:
    """Chosen multiplier and auto/oracle on the Fe-Ni particle: raw counts, and smoothed counts (poisson-tv)."""
    kernel = ndimage.gaussian_filter1d(np.eye(1, 41, 20)[0], 1.0)
    dispersion = float(np.sum(kernel**2))
    for seed in (1, 2):
        for dwell in ("5 ms", "20 ms", "50 ms"):
            series, truth, factors = _particle(dwell, seed=seed)
            quantifier, metric = plugins.quantifier("eds")(factors), plugins.metric("ssim-structure")()

            def quality(volume, quantifier=quantifier, metric=metric, truth=truth):
                threshold = 0.5 * float(np.percentile(quantifier.summed(volume), 99))
                maps = quantifier.with_options(threshold=threshold).quantify(volume)
                return metric(maps.fraction("Ni"), truth.fraction("Ni"))

            smoothed = np.array(series.data, dtype=float)
            for line in series.lines:
                index = series.channels.index(line)
                smoothed[index] = ndimage.gaussian_filter1d(smoothed[index], 1.0, axis=1)
            cases = [(name, series if name == "fused" else series.select(series.lines), {}, {}) for name in SOLVERS] + [
                (
                    "poisson-tv smoothed",
                    series.replace(data=smoothed).select(series.lines),
                    {"counts": "scaled"},
                    {"dispersion": dispersion},
                )
            ]
            for label, data, options, selection in cases:
                name = label.split()[0]
                solver = plugins.solver(name)(regularization="auto", selection=selection, **options)
                chosen = solver.prepare(data).options.regularization
                tried = sorted({*GRID, chosen})  # the grid, and the choice if it followed an edge beyond it
                sweep = [quality(plugins.solver(name)(regularization=m, **options).solve(data)) for m in tried]
                ratio = sweep[tried.index(chosen)] / max(sweep)
                print(
                    f"seed {seed} {dwell:5s} {label:20s} {dict(zip(tried, np.round(sweep, 4).tolist()))} "
                    f"chosen {chosen:g} auto/oracle {ratio:.3f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("transfer", "fe-ni", "both"), default="both")
    part = parser.parse_args().part
    if part in ("transfer", "both"):
        transfer()
    if part in ("fe-ni", "both"):
        fe_ni()


if __name__ == "__main__":
    main()
