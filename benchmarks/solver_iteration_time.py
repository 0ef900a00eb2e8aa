"""Seconds per iteration of the SIRT and HEBT-SIRT solvers on two problem sizes.

Run: ``python benchmarks/solver_iteration_time.py`` (prints one line per case).
Cases: the paper's 2-D phantom (97 × 97 pixels, 31 tilts, 2 lines) and a
3-D block of 64 slices of 256 × 256 pixels, 31 tilts, 2 lines.  Data are
random non-negative sinograms: the cost of an iteration does not depend on them.
"""

from __future__ import annotations

import time

import edstomo as et
import numpy as np
from edstomo.data import TiltSeries


def series(positions: int, slices: int, tilts: int = 31, seed: int = 0) -> TiltSeries:
    rng = np.random.default_rng(seed)
    data = rng.random((3, tilts, positions, slices)) * 100.0
    data[0] = 500.0 * data[1] + 700.0 * data[2]
    angles = et.ureg.Quantity(np.linspace(-75.0, 75.0, tilts), "deg")
    return TiltSeries(data, ["HAADF", "Ag_La", "Au_Ma"], angles, et.ureg.Quantity(1.5, "nm"))


def per_iteration(solver: str, data: TiltSeries, iterations: int, **options: object) -> float:
    cls = et.plugins.solver(solver)
    cls(iterations=1, **options).solve(data)  # build and cache the projector
    start = time.perf_counter()
    cls(iterations=iterations, **options).solve(data)
    return (time.perf_counter() - start) / iterations


def main() -> None:
    for label, positions, slices, iterations in (("97x97x1", 97, 1, 200), ("256x256x64", 256, 64, 10)):
        data = series(positions, slices)
        hebt = {"alpha": 0.8, "ratios": {"Ag_La": 500.0, "Au_Ma": 700.0}}
        for solver, options in (("sirt", {}), ("hebt-sirt", hebt)):
            for dtype in ("float32", "float64"):
                seconds = per_iteration(solver, data, iterations, dtype=dtype, **options)
                print(f"{label:>11}  31 tilts  2 lines  {solver:<9}  {dtype}  {seconds * 1e3:8.2f} ms/iteration")


if __name__ == "__main__":
    main()
