"""The solver engine: per-iteration time against an earlier checkout, and time to quality of every solver.

Run from the repository root::

    python benchmarks/bench_engine.py                          # time to quality only (~2 minutes on 2 cores)
    python benchmarks/bench_engine.py --baseline ../old-checkout  # plus per-iteration times, old vs new

Tables
------
Per iteration (``--baseline``): SIRT and HEBT-SIRT on ``bench_sirt.py``'s case (b)
(256 slices of 256² pixels, 31 tilts, 4 lines), median interval between
iteration callbacks after set-up, each solve in a fresh subprocess, the two
checkouts alternated ``--repeats`` times so that both see the same machine load.

Time to quality: a noisy case (``--slices`` slices of ``--size``² pixels, 31
tilts from −75° to 75°, a core–shell sphere per line, Poisson noise at
``--counts`` counts per unit path length).  SIRT runs ``--sirt-iterations``
iterations; its best relative error ‖x − truth‖/‖truth‖ over the iterations
is the target (chosen with the truth: this is a benchmark, not a parameter
choice).  For each solver the wall time from the call to ``solve`` until the
first iteration whose error reaches the target, with the time spent computing
errors in the callbacks subtracted; "—" when it never does.  Because ordered
subsets add noise of their own, their best error can stay a little above
SIRT's best on very noisy data; the last columns therefore also give the time
to come within 1 % of the target (and SIRT's own time to that level).
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
cls(iterations=iterations, **options).solve(series, **{keyword: lambda state: stamps.append(time.perf_counter())})
print(json.dumps(float(np.median(np.diff(stamps)))))
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
    rows.append("| solver | before (s/iteration) | now (s/iteration) | now / before |")
    rows.append("|---|---|---|---|")
    for solver in ("sirt", "hebt-sirt"):
        before, now = (statistics.median(times[(solver, label)]) for label in ("before", "now"))
        rows.append(f"| {solver} | {before:.4f} | {now:.4f} | {now / before:.3f} |")
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


def run_to_quality(name: str, options: dict, series, truth: np.ndarray) -> tuple[list[float], list[float]]:
    """Errors after each iteration and the wall time at each (callback time subtracted)."""
    import edstomo as et

    norm = np.linalg.norm(truth)
    errors, stamps, spent = [], [], [0.0]

    def watch(state) -> None:
        mark = time.perf_counter()
        errors.append(float(np.linalg.norm(state.estimate - truth) / norm))
        stamps.append(mark - spent[0])
        spent[0] += time.perf_counter() - mark

    start = time.perf_counter()
    et.plugins.solver(name)(**options).solve(series, callbacks=watch)
    return errors, [s - start for s in stamps]


def time_to_quality(size: int, slices: int, counts: float, sirt_iterations: int) -> list[str]:
    truth, series = noisy_case(size, slices, counts)
    sirt_errors, sirt_times = run_to_quality("sirt", {"iterations": sirt_iterations}, series, truth)
    best = int(np.argmin(sirt_errors))
    target = sirt_errors[best]
    candidates = [
        ("sirt", {"iterations": sirt_iterations}),
        ("sart", {"iterations": 40, "subsets": 4}),
        ("sart", {"iterations": 30, "subsets": 8}),
        ("sart", {"iterations": 20, "subsets": 16}),
        ("sart", {"iterations": 20, "subsets": 31}),
        ("cgls", {"iterations": 40}),
        ("fbp", {"filter": "hann"}),
    ]
    rows = [
        f"Target: SIRT's best error {target:.4f} (at n = {best + 1} of {sirt_iterations}); "
        f"{slices} slices of {size}², {len(ANGLES_DEG)} tilts, {len(LINES[:2])} lines, {counts:g} counts/pixel.",
        "",
        "| solver | options | best error | iterations to target (to 1.01 × target) | time to target (s) "
        "| speed-up vs SIRT | time to 1.01 × target (s) | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sirt_time = sirt_times[best]
    near = [i for i, e in enumerate(sirt_errors) if e <= 1.01 * target]
    sirt_near = sirt_times[near[0]]
    for name, options in candidates:
        if name == "sirt":
            errors, times = sirt_errors, sirt_times
        else:
            errors, times = run_to_quality(name, options, series, truth)
        reached = [i for i, e in enumerate(errors) if e <= target * (1 + 1e-9)]
        close = [i for i, e in enumerate(errors) if e <= 1.01 * target]
        shown = ", ".join(f"{k}={v}" for k, v in options.items())
        strict = (
            (f"{reached[0] + 1}", f"{times[reached[0]]:.2f}", f"{sirt_time / times[reached[0]]:.1f}×")
            if reached
            else ("—", "—", "—")
        )
        loose = (
            (f"{close[0] + 1}", f"{times[close[0]]:.2f}", f"{sirt_near / times[close[0]]:.1f}×")
            if close
            else ("—",) * 3
        )
        rows.append(
            f"| {name} | {shown} | {min(errors):.4f} | {strict[0]} ({loose[0]}) | {strict[1]} | {strict[2]} "
            f"| {loose[1]} | {loose[2]} |"
        )
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
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info}; load average {os.getloadavg()}")
    if args.baseline is not None:
        print("\n## Per iteration, case (b)\n")
        print("\n".join(per_iteration(args.baseline, args.repeats, args.timing_iterations)))
    print("\n## Time to quality\n")
    print("\n".join(time_to_quality(args.size, args.slices, args.counts, args.sirt_iterations)))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
