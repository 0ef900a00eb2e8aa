"""A worked example: the paper's phantom, step by step with the Python API.

Simulates the Ag–Au core–shell phantom of Yuan et al. (2020) at a low EDS dose,
reconstructs it with EDS-only SIRT and with HEBT, quantifies both into weight
fractions and compares them with the truth. Runs in a few seconds::

    python examples/phantom_study.py            # prints the numbers
    python examples/phantom_study.py --out ex   # also writes maps (HDF5) and an ESF plot

The full sweep (every n, every α, both doses, all figures) is the study
``edstomo study yuan2020-phantom --out DIR``; see docs/method.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import edstomo as et
import numpy as np
from edstomo.preprocessing import gaussian_filter, response_ratios
from edstomo.study import dice, interior
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment


def main(out: Path | None = None, seed: int = 0) -> None:
    # 1. The experiment: the paper's acquisition (100 keV, 31 tilts, 97 positions of 1.5 nm) with
    #    the EDS dose divided by 30 — the noise regime where the choice of n matters.
    experiment = yuan2020_phantom_experiment(solid_angle="0.7 sr", eds_dose_divisor=30)
    eds, haadf = experiment.eds_electrons_per_pixel, experiment.haadf_electrons_per_pixel
    print(f"electrons per pixel: EDS {eds:~.3g}, HAADF {haadf:~.3g}")

    # 2. Physics: the factors f_A (EDS) and z_A (HAADF) of each line, in b·mol/g (paper Table 2).
    factors = et.plugins.physics("table")().compute(experiment)
    print(factors.table())

    # 3. Phantom and forward model: Poisson noise on the EDS sinograms, a fixed seed.
    phantom = et.plugins.phantom("core-shell")(outer_radius="55 nm", core_radius="30 nm")
    truth = phantom.generate(experiment)
    regions = phantom.regions(experiment)
    series = et.plugins.forward("thin-film")(experiment, factors).simulate(truth, noise="poisson", seed=seed)

    # 4. Preprocessing: Gaussian filter (σ = 0.8 px) on the EDS sinograms; response ratios (eq. 15).
    filtered = gaussian_filter(series, 0.8)
    ratios = response_ratios(filtered)
    print(f"r_A = {ratios.ratios}, R² = {ratios.r_squared:.4f}")

    # 5. EDS-only SIRT for 100 iterations; a callback follows SSIM-structure of the Ag map at
    #    every n: it rises, peaks and falls again (semi-convergence).
    structure = et.plugins.metric("ssim-structure")()
    curve = []

    def follow(state):
        curve.append(structure(np.asarray(state.estimate[0], dtype=float), truth.fraction("Ag")))

    et.plugins.solver("sirt")(iterations=100).solve(filtered.select(["Ag_La", "Au_Ma"]), callbacks=follow)
    best_n = int(np.argmax(curve)) + 1
    print(f"EDS-only SIRT: SSIM-structure of Ag best at n = {best_n} ({max(curve):.3f}), {curve[-1]:.3f} at n = 100")

    # ... and again, stopped at the best n.
    eds_maps = et.plugins.solver("sirt")(iterations=best_n).solve(filtered.select(["Ag_La", "Au_Ma"]))

    # 6. HEBT (eq. 17) with α = 0.8 and 200 iterations, using the fitted response ratios.
    hebt_maps = et.plugins.solver("hebt-sirt")(alpha=0.8, ratios=ratios, iterations=200).solve(filtered)

    # 7. Quantification: eq. 12 for EDS-only maps (f_A), eq. 18 for HEBT maps (z_A); the particle is
    #    found by the ESF threshold on Σ X_A / f_A (or z_A).
    eds_quantifier = et.plugins.quantifier("eds")(factors)
    hebt_quantifier = et.plugins.quantifier("hebt")(factors)
    eds_fractions = eds_quantifier.quantify(eds_maps)
    hebt_fractions = hebt_quantifier.quantify(hebt_maps)

    # 8. Compare with the truth: SSIM-structure and MSE of the weight fractions, the particle mask,
    #    and the mean composition deep inside the core and the shell (3 px from every interface).
    particle = regions["core"] | regions["shell"]
    core, shell = interior(regions["core"], 3), interior(regions["shell"], 3)
    mse = et.plugins.metric("mse")()
    for label, fractions in (("EDS-only", eds_fractions), ("HEBT", hebt_fractions)):
        ssim = structure(fractions, truth)
        error = mse(fractions, truth)
        core_au, shell_ag = 100 * fractions.fraction("Au")[core].mean(), 100 * fractions.fraction("Ag")[shell].mean()
        print(
            f"{label:9s} SSIM-structure Ag {ssim['Ag']:.3f} Au {ssim['Au']:.3f} | MSE Ag {error['Ag']:.4f} "
            f"| mask Dice {dice(fractions.mask, particle):.3f} | core {core_au:.1f} wt% Au, shell {shell_ag:.1f} wt% Ag"
        )

    # 9. Save: HDF5 files carry the experiment and the provenance of every step.
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        hebt_fractions.save(out / "hebt_fractions.h5")
        eds_fractions.save(out / "eds_fractions.h5")
        fit = hebt_quantifier.esf(hebt_maps)
        try:
            from matplotlib.figure import Figure
        except ImportError:
            print("matplotlib is not installed: no ESF plot (pip install 'edstomo[plots]')")
        else:
            figure = Figure(figsize=(5, 3.5), layout="constrained")
            axes = figure.subplots()
            axes.plot(fit.trials, fit.volumes, ".", markersize=3, label="V(t)")
            axes.plot(fit.trials, fit.fitted, label="two error-function steps")
            axes.axvline(fit.threshold, color="red", linestyle=":", label=f"threshold {fit.threshold:.3g}")
            axes.set_xlabel("threshold on Σ X_A / z_A")
            axes.set_ylabel("voxels above threshold")
            axes.legend()
            figure.savefig(out / "esf.png")
        print(f"wrote {out}/hebt_fractions.h5, eds_fractions.h5" + (", esf.png" if (out / "esf.png").exists() else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the maps and the ESF plot")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Poisson noise")
    arguments = parser.parse_args()
    main(arguments.out, arguments.seed)
