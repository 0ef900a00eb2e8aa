"""Calibrate the default TV weight rule of ``poisson-tv`` and ``fused`` on a phantom that no study uses.

Run from the repository root::

    python benchmarks/calibrate_poisson_tv.py                  # both solvers, about 10 minutes on 2 cores
    python benchmarks/calibrate_poisson_tv.py --solver fused --seeds 0

The phantom (:data:`CALIBRATION_SHAPES`): an Ag–Au ellipse (60/40 wt%) with a
rotated Au-rich box and an Ag-rich inclusion, on the acquisition of the
``yuan2020-phantom`` study (31 tilts, 97 positions of 1.5 nm) at EDS dose
divisors 1 … 300, HAADF with Poisson noise.  For every dose it scans the
absolute TV weight λ, reports the λ that gives the best quantified Ag
SSIM-structure (mean over seeds), and fits ``λ₀ = a · b̄^p`` to those
(least squares in log–log), ``b̄`` being the geometric mean of the lines'
count levels Σb²/Σb.  The constants of
:mod:`edstomo_plugins.solvers.poisson` (``LAMBDA_SCALE``, ``LAMBDA_EXPONENT``) were
set from this script's output; the ``yuan2020-phantom`` and ``dose-sweep`` studies
never see it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

#: The calibration phantom (``shapes`` plugin): coordinates (z, x, y) from the grid centre.
CALIBRATION_SHAPES = [
    {
        "kind": "ellipsoid",
        "radii": ["50 nm", "38 nm", "200 nm"],
        "rotation": "25 deg",
        "composition": {"Ag": 0.6, "Au": 0.4},
    },
    {
        "kind": "box",
        "centre": ["12 nm", "-14 nm", "0 nm"],
        "radii": ["14 nm", "9 nm", "200 nm"],
        "rotation": "-35 deg",
        "composition": {"Au": 0.9, "Ag": 0.1},
    },
    {
        "kind": "ellipsoid",
        "centre": ["-22 nm", "14 nm", "0 nm"],
        "radii": ["10 nm", "13 nm", "200 nm"],
        "composition": {"Ag": 0.95, "Au": 0.05},
    },
]
DIVISORS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
LAMBDAS = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6)


def main() -> None:
    from edstomo.registry import plugins
    from edstomo.threshold import otsu_threshold
    from edstomo_plugins.solvers.poisson import count_levels, default_lambda
    from edstomo_plugins.studies.yuan2020 import phantom_experiment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", choices=("poisson-tv", "fused", "both"), default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    solvers = ("poisson-tv", "fused") if args.solver == "both" else (args.solver,)
    ssim = plugins.metric("ssim-structure")()
    lines = ["Ag_La", "Au_Ma"]
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in solvers}
    levels_at: dict[float, float] = {}
    start = time.perf_counter()
    for divisor in DIVISORS:
        experiment = phantom_experiment("0.7 sr", divisor)
        factors = plugins.physics("table")().compute(experiment)
        truth = plugins.phantom("shapes")(shapes=CALIBRATION_SHAPES).generate(experiment)
        forward = plugins.forward("thin-film")(experiment, factors)
        scores: dict[str, dict[float, list[float]]] = {name: {lam: [] for lam in LAMBDAS} for name in solvers}
        for seed in args.seeds:
            series = forward.simulate(truth, noise="poisson", seed=seed, haadf_noise=True)
            levels = count_levels(series, lines)
            levels_at[divisor] = math.exp(np.mean(np.log(list(levels.values()))))
            for name in solvers:
                data = series if name == "fused" else series.select(lines)
                cls = plugins.solver(name)  # λ = regularization × this solver's own rule
                base = default_lambda(list(levels.values()), cls.lambda_scale, cls.lambda_exponent)
                for lam in LAMBDAS:
                    solver = cls(iterations=args.iterations, regularization=lam / base)
                    volume = solver.solve(data)
                    quantifier = plugins.quantifier("eds")(factors, fallback="otsu")
                    try:
                        maps = quantifier.quantify(volume)
                    except ValueError:  # an ESF threshold outside the map's values: Otsu's instead
                        threshold = otsu_threshold(quantifier.summed(volume))
                        maps = plugins.quantifier("eds")(factors, threshold=threshold).quantify(volume)
                    scores[name][lam].append(ssim(maps.fraction("Ag"), truth.fraction("Ag")))
        for name in solvers:
            means = {lam: float(np.mean(v)) for lam, v in scores[name].items()}
            best = max(means, key=means.get)
            results[name][f"{divisor:g}"] = {"best_lambda": best, "best_ssim": means[best], "level": levels_at[divisor]}
            print(
                f"{name:10s} divisor {divisor:5g}  b̄ {levels_at[divisor]:8.2f}  best λ {best:4.2f}  "
                + " ".join(f"{lam:g}:{s:.4f}" for lam, s in means.items()),
                flush=True,
            )
    for name in solvers:
        x = np.log([row["level"] for row in results[name].values()])
        y = np.log([row["best_lambda"] for row in results[name].values()])
        slope, intercept = np.polyfit(x, y, 1)
        print(f"{name}: λ₀ = {math.exp(intercept):.2f} · b̄^{slope:.3f}")
        results[name]["fit"] = {"scale": math.exp(intercept), "exponent": slope}
    print(json.dumps({"results": results, "seconds": time.perf_counter() - start, "load": os.getloadavg()}))


if __name__ == "__main__":
    main()
