"""The solver engine: per-iteration time against an earlier checkout, and time to quality of every solver.

Run from the repository root::

    python benchmarks/bench_engine.py                          # time to quality only (~2 minutes on 2 cores)
    python benchmarks/bench_engine.py --baseline ../old-checkout  # plus per-iteration times, old vs new

Tables
------
Per iteration (``--baseline``): SIRT and HEBT-SIRT on ``bench_sirt.py``'s case (b)
(256 slices of 256² pixels, 31 tilts, 4 lines), median interval between
iteration callbacks after set-up, in wall time and in CPU time of the process
(all threads; less sensitive to other processes on the machine than wall
time), each solve in a fresh subprocess, the two checkouts alternated
``--repeats`` times so that both see the same machine load.

Time to quality: a noisy case (``--slices`` slices of ``--size``² pixels, 31
tilts from −75° to 75°, a core–shell sphere per line, Poisson noise at
``--counts`` counts per unit path length).  SIRT runs ``--sirt-iterations``
iterations; its best relative error ‖x − truth‖/‖truth‖ over the iterations
is the target (chosen with the truth: this is a benchmark, not a parameter
choice).  For each solver the time from the call to ``solve`` until the
first iteration whose error reaches the target, in wall and in CPU seconds
(all threads), with the time spent computing errors in the callbacks
subtracted, median of ``--rounds`` rounds that each run every solver once
(so that all see the same spread of machine loads); "—" when it never does.  The projector of the geometry is built
and every compiled kernel loaded before the timings (``warm_up``), so SIRT's
time holds no matrix build, while SART's holds the slicing of its subset
matrices.  The last columns give the time to come within 1 % of the target
(and SIRT's own time to that level).  ``--subsets-study`` adds OS-SART's
passes to the target for 4, 8, 16 and 31 subsets, interleaved and in
golden-ratio order, and the time of one pass against one SIRT iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sirt import ANGLES_DEG, LINES, machine, make_case, phantom  # noqa: E402

WORKER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from bench_sirt import tilt_series, LINES, RATIOS
import edstomo as et
with np.load(sys.argv[2]) as stored:
    eds, haadf = stored["eds"], stored["haadf"]
solver, iterations = sys.argv[3], int(sys.argv[4])
if solver == "sirt":
    series, options = tilt_series(eds, None, LINES), {}
else:
    series, options = tilt_series(eds, haadf, LINES), {"alpha": 0.8, "ratios": RATIOS}
stamps = []
cls = et.plugins.solver(solver)
keyword = "callbacks" if "callbacks" in cls.solve.__code__.co_varnames else "callback"
mark = lambda state: stamps.append((time.perf_counter(), time.process_time()))
cls(iterations=iterations, **options).solve(series, **{keyword: mark})
print(json.dumps([float(v) for v in np.median(np.diff(np.array(stamps), axis=0), axis=0)]))
"""


def per_iteration(baseline: Path, repeats: int, iterations: int) -> list[str]:
    """Seconds per iteration of SIRT and HEBT, this checkout against ``baseline``, alternated."""
    import tempfile

    data = make_case("b")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "case_b.npz")
        np.savez(path, eds=data["eds"], haadf=data["haadf"])
        times: dict[tuple[str, str], list[float]] = {}
        trees = {"before": baseline.resolve(), "now": ROOT}
        for _ in range(repeats):
            for solver in ("sirt", "hebt-sirt"):
                for label, tree in trees.items():
                    env = {
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join([str(tree / "framework"), str(tree / "plugins")]),
                    }
                    out = subprocess.run(
                        [sys.executable, "-c", WORKER, str(ROOT / "benchmarks"), path, solver, str(iterations)],
                        capture_output=True, text=True, env=env, check=True,
                    )  # fmt: skip
                    times.setdefault((solver, label), []).append(json.loads(out.stdout.splitlines()[-1]))
    rows.append("| solver | before: wall (CPU) s/iteration | now: wall (CPU) s/iteration | now / before: wall (CPU) |")
    rows.append("|---|---|---|---|")
    for solver in ("sirt", "hebt-sirt"):
        (wall0, cpu0), (wall1, cpu1) = (
            [statistics.median(run[k] for run in times[(solver, label)]) for k in (0, 1)] for label in ("before", "now")
        )
        ratio = f"{wall1 / wall0:.3f} ({cpu1 / cpu0:.3f})"
        rows.append(f"| {solver} | {wall0:.4f} ({cpu0:.4f}) | {wall1:.4f} ({cpu1:.4f}) | {ratio} |")
    return rows


def noisy_case(size: int, slices: int, counts: float, seed: int = 0):
    """Truth maps (lines, nz, nx, slices) and a noisy tilt series of them."""
    import edstomo as et
    from edstomo.operators import projector_for

    truth = np.stack([phantom(size, slices, element=k) for k in range(2)])  # (2, nz, nx, slices)
    projector = projector_for(np.deg2rad(ANGLES_DEG), (size, size), "strip", "float64")
    expected = projector.forward(np.moveaxis(truth, 0, 2)) * counts
    noisy = np.random.default_rng(seed).poisson(expected).astype(np.float32) / counts
    series = et.TiltSeries(
        np.moveaxis(noisy, 2, 0), LINES[:2], et.ureg.Quantity(ANGLES_DEG, "deg"), et.ureg.Quantity(1.0, "nm")
    )
    return truth, series


def run_to_quality(name: str, options: dict, series, truth: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Errors after each iteration, and the wall and CPU seconds at each, shape (iterations, 2).

    The time spent computing errors in the callback is subtracted from both clocks.
    """
    import edstomo as et

    norm = np.linalg.norm(truth)
    errors, stamps, spent = [], [], np.zeros(2)

    def clocks() -> np.ndarray:
        return np.array([time.perf_counter(), time.process_time()])

    def watch(state) -> None:
        mark = clocks()
        errors.append(float(np.linalg.norm(state.estimate - truth) / norm))
        stamps.append(mark - spent)
        spent[:] += clocks() - mark

    start = clocks()
    et.plugins.solver(name)(**options).solve(series, callbacks=watch)
    return errors, np.array(stamps) - start


CANDIDATES: list[tuple[str, dict]] = [
    ("sart", {}),
    ("sart", {"iterations": 8, "subsets": 16}),
    ("sart", {"iterations": 14, "subsets": 8}),
    ("sart", {"iterations": 14, "subsets": 8, "ordering": "interleaved"}),
    ("cgls", {"iterations": 40}),
    ("fbp", {"filter": "hann"}),
]
"""The solvers timed after SIRT (for sart, iterations are passes over all subsets; its defaults: 3 passes,
one tilt per subset, golden-ratio order)."""


def warm_up(series) -> None:
    """Build and cache the projector of the series' geometry and load every compiled kernel, outside the timings.

    SIRT and SART then both start from the cached projector; SART's subset
    matrices (sliced from it) are built inside its timed solves.
    """
    import edstomo as et

    et.plugins.solver("sirt")(iterations=1).solve(series)
    small = noisy_case(32, 16, 20.0)[1]  # the same tilts: loads the compiled kernels of every solver
    for name, options in (("sart", {"iterations": 2}), ("cgls", {"iterations": 2}), ("fbp", {})):
        et.plugins.solver(name)(**options).solve(small)


def _first(errors: list[float], level: float) -> int | None:
    return next((i for i, e in enumerate(errors) if e <= level), None)


def subset_study(series, truth: np.ndarray, target: float) -> list[str]:
    """Passes of OS-SART to SIRT's best error, by subset count and ordering (stops 3 passes after the error rises)."""
    import edstomo as et

    norm = np.linalg.norm(truth)
    rows = [
        "| subsets | ordering | best error / target | at pass | passes to target | passes to 1.01 × target |",
        "|---|---|---|---|---|---|",
    ]
    for subsets in (4, 8, 16, len(ANGLES_DEG)):
        for ordering in ("interleaved", "golden"):
            errors: list[float] = []

            def watch(state, errors=errors) -> bool:
                errors.append(float(np.linalg.norm(state.estimate - truth) / norm))
                return len(errors) > 3 and errors[-1] > errors[-2] > errors[-3] > errors[-4]

            passes = 4 * len(ANGLES_DEG) // subsets + 8
            solver = et.plugins.solver("sart")(iterations=passes, subsets=subsets, ordering=ordering)
            solver.solve(series, callbacks=watch)
            hit, near = _first(errors, target * (1 + 1e-9)), _first(errors, 1.01 * target)
            shown = [str(i + 1) if i is not None else "—" for i in (hit, near)]
            best = int(np.argmin(errors))
            rows.append(
                f"| {subsets} | {ordering} | {errors[best] / target:.4f} | {best + 1} | {shown[0]} | {shown[1]} |"
            )
    return rows


def pass_costs(series, rounds: int) -> list[str]:
    """Seconds per SIRT iteration and per OS-SART pass (golden order), wall and CPU, median over passes and rounds.

    The first iteration of a run (it also projects the first subset) and the last (it projects nothing
    for a next one) are left out.
    """
    import edstomo as et

    tilts = len(ANGLES_DEG)
    cases = [("sirt", {}), *(("sart", {"subsets": m}) for m in (2, 4, 8, 16, tilts))]
    seconds: dict[int, list[np.ndarray]] = {}
    for _ in range(rounds):
        for k, (name, options) in enumerate(cases):
            stamps: list[tuple[float, float]] = []
            mark = lambda state, stamps=stamps: stamps.append((time.perf_counter(), time.process_time()))  # noqa: E731
            et.plugins.solver(name)(iterations=7, **options).solve(series, callbacks=mark)
            seconds.setdefault(k, []).append(np.diff(np.array(stamps), axis=0)[:-1])
    sirt = np.median(np.concatenate(seconds[0]), axis=0)
    rows = ["| solver | subsets | s per iteration: wall (CPU) | × a SIRT iteration: wall (CPU) |", "|---|---|---|---|"]
    for k, (name, options) in enumerate(cases):
        wall, cpu = np.median(np.concatenate(seconds[k]), axis=0)
        ratio = f"{wall / sirt[0]:.2f} ({cpu / sirt[1]:.2f})"
        rows.append(f"| {name} | {options.get('subsets', 1)} | {wall:.4f} ({cpu:.4f}) | {ratio} |")
    return rows


def time_to_quality(
    size: int, slices: int, counts: float, sirt_iterations: int, rounds: int = 3, study: bool = False
) -> list[str]:
    truth, series = noisy_case(size, slices, counts)
    warm_up(series)
    candidates = [("sirt", {"iterations": sirt_iterations}), *CANDIDATES]
    errors: dict[int, list[float]] = {}
    runs: dict[int, list[np.ndarray]] = {}
    for _ in range(rounds):  # every solver once per round: all of them see the same spread of machine loads
        for k, (name, options) in enumerate(candidates):
            errors[k], times = run_to_quality(name, options, series, truth)
            runs.setdefault(k, []).append(times)
    clock = {k: np.median(np.stack(value), axis=0) for k, value in runs.items()}  # (iterations, wall/CPU)
    best = int(np.argmin(errors[0]))
    target = errors[0][best]
    levels = (target * (1 + 1e-9), 1.01 * target)
    sirt_at = [clock[0][_first(errors[0], level)] for level in levels]
    rows = [
        f"Target: SIRT's best error {target:.4f} (at n = {best + 1} of {sirt_iterations}); "
        f"{slices} slices of {size}², {len(ANGLES_DEG)} tilts, {len(LINES[:2])} lines, {counts:g} counts/pixel. "
        f"Times: wall (CPU) seconds, median of {rounds} rounds; speed-up: SIRT's time to the same level / "
        "the solver's.",
        "",
        "| solver | options | best error | iterations to target (to 1.01 × target) | time to target "
        "| speed-up vs SIRT | time to 1.01 × target | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, (name, options) in enumerate(candidates):
        cells = []
        for level, reference in zip(levels, sirt_at, strict=True):
            i = _first(errors[k], level)
            if i is None:
                cells.append(("—", "—", "—"))
            else:
                wall, cpu = clock[k][i]
                gain = f"{reference[0] / wall:.1f}× ({reference[1] / cpu:.1f}×)"
                cells.append((str(i + 1), f"{wall:.2f} ({cpu:.2f})", gain))
        (n0, t0, g0), (n1, t1, g1) = cells
        shown = ", ".join(f"{key}={value}" for key, value in options.items()) or "defaults"
        rows.append(f"| {name} | {shown} | {min(errors[k]):.4f} | {n0} ({n1}) | {t0} | {g0} | {t1} | {g1} |")
    if study:
        rows += ["", "### Passes to the target by subsets and ordering", "", *subset_study(series, truth, target)]
        rows += ["", "### Cost of a pass", "", *pass_costs(series, rounds)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="an earlier checkout to compare per-iteration times with")
    parser.add_argument("--repeats", type=int, default=3, help="alternations of the per-iteration runs")
    parser.add_argument("--timing-iterations", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--counts", type=float, default=20.0, help="Poisson counts per unit path length")
    parser.add_argument("--sirt-iterations", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the time-to-quality runs (median)")
    parser.add_argument("--subsets-study", action="store_true", help="also OS-SART's passes by subsets and ordering")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info}; load average {os.getloadavg()}")
    if args.baseline is not None:
        print("\n## Per iteration, case (b)\n")
        print("\n".join(per_iteration(args.baseline, args.repeats, args.timing_iterations)))
    print("\n## Time to quality\n")
    rows = time_to_quality(args.size, args.slices, args.counts, args.sirt_iterations, args.rounds, args.subsets_study)
    print("\n".join(rows))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
