"""Line intensities, fitting against window integration: accuracy on a synthetic series, loading time on real data.

Two tables:

1. **Accuracy** — the synthetic core–shell particle of ``tests/test_microscope_overlaps.py``
   (Co/Ni/Zn core, Ba/Ti/Ni shell, 80 keV, 29 tilts, 40³ voxels) through the
   whole pipeline; the error of every interior region mean (wt%, 3 voxels from
   every surface and interface) for both methods. ``--mismatch`` adds runs whose
   spectra were made with EADL's relative intensities while the fit assumes the
   default ones: for the K families only (Kβ/Kα about 10 % weaker), then for K
   and L families (the L shapes differ too): what an error in the atomic data costs.
2. **Loading time** — :func:`load_tilt_series` of the shared openNCEM series
   (16 Bruker files, 256 × 256 pixels, 8 lines) at rebin 1 with each method,
   alternately, ``--repeat`` times; the machine's load average is printed with it.

Run::

    python benchmarks/line_intensities.py                 # both tables
    python benchmarks/line_intensities.py --skip-accuracy --repeat 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from edstomo_microscope.loading import load_tilt_series
from edstomo_microscope.pipeline import PipelineOptions, run_pipeline
from edstomo_microscope.synthetic import Region, core_shell_labels, region_means, write_spectrum_series

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openNCEM_L2083-K-4-1_EDS_tilt_series"
LINES = ["Ti_Ka", "Co_Ka", "Ni_Ka", "Zn_Ka", "Ba_La"]
REGIONS = {
    1: Region("core", {"Co": 0.6, "Ni": 0.3, "Zn": 0.1}, density=8.9),
    2: Region("shell", {"Ba": 0.5, "Ti": 0.3, "Ni": 0.2}, density=6.0),
}


def load_average() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"


def accuracy(mismatch: bool) -> None:
    labels = core_shell_labels(40, 40, core_radius=9, shell_radius=17)
    cases: list[tuple[str, Any]] = [("default", "auto")]
    if mismatch:
        cases += [("EADL K", {"K": "eadl", "L": "xraylib", "M": "eadl"}), ("EADL K, L", "eadl")]
    print(f"\nInterior region means, error in wt% (fit | window); {load_average()}")
    print(f"{'spectra':<13} {'region':<6} " + " ".join(f"{e:>15}" for e in [line.split("_")[0] for line in LINES]))
    for name, yields in cases:
        with tempfile.TemporaryDirectory() as folder:
            series = write_spectrum_series(
                Path(folder) / "tilts",
                labels,
                REGIONS,
                LINES,
                angles_deg=np.arange(-70, 71, 5),
                electrons_per_pixel=5e8,
                yields=yields,
                seed=4,
            )
            errors = {}
            for method in ("fit", "window"):
                options = PipelineOptions(
                    lines=LINES,
                    rebin=1,
                    intensities=method,
                    series="none",
                    axis="none",
                    solver_options={"sirt": {"iterations": 200}},
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = run_pipeline(series.files, options)
                errors[method] = region_means(result.maps["sirt"], labels)
            for label, region in REGIONS.items():
                cells = []
                for line in LINES:
                    element = line.split("_")[0]
                    truth = series.truth[label][element]
                    fit, window = (100 * (errors[m][label][element] - truth) for m in ("fit", "window"))
                    cells.append(f"{fit:+6.2f} | {window:+6.2f}")
                print(f"{name:<13} {region.name:<6} " + " ".join(f"{c:>15}" for c in cells))


def loading(repeat: int) -> None:
    if not DATA.is_dir():
        print(f"\n{DATA} not found: loading time skipped")
        return
    times: dict[str, list[float]] = {"window": [], "fit": []}
    for _ in range(repeat):
        for method in times:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                load_tilt_series(DATA, rebin=1, smooth=1.0, intensities=method)
                times[method].append(time.perf_counter() - start)
            print(f"  {method:<6} {times[method][-1]:6.1f} s   ({load_average()})", flush=True)
    window, fit = min(times["window"]), min(times["fit"])
    print("\nLoading the openNCEM series (16 files, 256 x 256 pixels, 8 lines) at rebin 1, best of", repeat)
    print(f"{'method':<8} {'seconds':>8}")
    print(f"{'window':<8} {window:8.1f}")
    print(f"{'fit':<8} {fit:8.1f}   ({100 * (fit / window - 1):+.0f} % against window integration)")
    print(load_average())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="loading runs per method (default 2)")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the loading time")
    parser.add_argument("--skip-loading", action="store_true", help="only the accuracy table")
    parser.add_argument("--mismatch", action="store_true", help="also fit spectra made with EADL's intensities")
    args = parser.parse_args()
    if not args.skip_accuracy:
        accuracy(args.mismatch)
    if not args.skip_loading:
        loading(args.repeat)


if __name__ == "__main__":
    main()
