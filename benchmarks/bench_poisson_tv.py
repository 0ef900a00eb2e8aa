"""Seconds per iteration of poisson-tv and fused beside SIRT and HEBT-SIRT, on bench_sirt.py's data, one run.

Run from the repository root::

    python benchmarks/bench_poisson_tv.py            # case (b): 256 slices × 256² pixels × 31 tilts, 4 lines
    python benchmarks/bench_poisson_tv.py --case a   # the paper's 2-D geometry
    python benchmarks/bench_poisson_tv.py --profile  # also the pieces of a poisson-tv iteration

Every solver gets the same float32 tilt series (``bench_sirt.make_case``: the
core–shell phantom, 4 lines with Poisson noise, HAADF = Σ r_A I_A); the EDS
sinograms are multiplied back to integer counts so that the Poisson solvers
accept them (the cost of an iteration does not depend on the values).  After a
warm-up solve of each (projector built, kernels compiled, operator norms) and
one wait for the other processes to use < 10 % of the CPUs
(``bench_sirt.wait_for_quiet``), the solvers run in interleaved rounds, so that
a change of load on a shared machine hits every solver alike; each row is the
median over rounds of the median interval between iteration callbacks, in wall
time and in CPU time of the process (all its threads; less sensitive to other
processes on a shared machine).  The ratio columns divide by SIRT on the same
4 lines, the issue's target being ≤ 3× for both new solvers.  ``--profile``
then times each piece of a ``poisson-tv`` iteration (wall and CPU seconds per
call, mean over the iterations) by wrapping the functions PDHG calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import bench_sirt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(bench_sirt.CASES), default="b")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per solver and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all solvers, interleaved")
    parser.add_argument("--profile", action="store_true", help="time the pieces of a poisson-tv iteration too")
    args = parser.parse_args()
    data = bench_sirt.make_case(args.case)
    counts = np.round(data["eds"] * bench_sirt.COUNTS).astype(np.float32)
    haadf = sum(bench_sirt.RATIOS[line] * counts[e] for e, line in enumerate(bench_sirt.LINES)).astype(np.float32)
    ratios = {line: float(r) for line, r in bench_sirt.RATIOS.items()}
    with_haadf = bench_sirt.tilt_series(counts, haadf, bench_sirt.LINES)
    lines_only = bench_sirt.tilt_series(counts, None, bench_sirt.LINES)
    plans = (
        ("sirt (4 lines)", "sirt", lines_only, {}),
        ("hebt-sirt (4 lines + HAADF)", "hebt-sirt", with_haadf, {"alpha": 0.8, "ratios": ratios}),
        ("poisson-tv (4 lines, joint 2-D TV)", "poisson-tv", lines_only, {}),
        ("fused (4 lines + HAADF, joint 2-D TV)", "fused", with_haadf, {"ratios": ratios}),
    )
    import edstomo as et

    for _, solver, series, options in plans:  # warm-up: projector, kernels, operator norms
        et.plugins.solver(solver)(iterations=2, **options).solve(series)
    bench_sirt.wait_for_quiet()
    samples: dict[str, list[float]] = {label: [] for label, *_ in plans}
    cpu: dict[str, list[float]] = {label: [] for label, *_ in plans}
    for _ in range(args.rounds):  # interleaved, so that a change of load hits every solver alike
        for label, solver, series, options in plans:
            stamps: list[tuple[float, float]] = []
            et.plugins.solver(solver)(iterations=args.iterations, **options).solve(
                series,
                callbacks=lambda state, stamps=stamps: stamps.append((time.perf_counter(), time.process_time())),
            )
            wall, used = np.array(stamps).T
            samples[label].append(statistics.median(np.diff(wall)))
            cpu[label].append(statistics.median(np.diff(used)))
    rows = {label: statistics.median(values) for label, values in samples.items()}
    cpu_rows = {label: statistics.median(values) for label, values in cpu.items()}
    sirt = rows["sirt (4 lines)"]
    n, slices = bench_sirt.CASES[args.case]
    print(f"### Case ({args.case}): {slices} slices × {n}² pixels × {len(bench_sirt.ANGLES_DEG)} tilts, 4 lines\n")
    sirt_cpu = cpu_rows["sirt (4 lines)"]
    print("| solver | s/iteration | × SIRT (4 lines) | CPU s/iteration | × SIRT (CPU) |")
    print("|---|---|---|---|---|")
    for label, seconds in rows.items():
        used = cpu_rows[label]
        print(f"| {label} | {seconds:.4f} | {seconds / sirt:.2f} | {used:.4f} | {used / sirt_cpu:.2f} |")
    info = bench_sirt.machine()
    print(f"\nquiet waits: {bench_sirt.QUIET['waits']}, timed out: {bench_sirt.QUIET['timeouts']}")
    print(f"load average at the end: {os.getloadavg()}")
    print(json.dumps({"machine": info, "seconds_per_iteration": rows, "cpu_seconds": cpu_rows}, default=str))
    if args.profile:
        profile(lines_only, args.iterations)


@contextmanager
def timed_pieces(timers: dict[str, list[float]]) -> Iterator[None]:
    """Wrap the functions a poisson-tv iteration calls so that each adds (wall, CPU, calls) to ``timers``."""
    from edstomo.algorithms import pdhg, pdhg_kernels
    from edstomo_plugins.solvers import poisson

    def wrapped(function: Any, label: str) -> Any:
        def timed(*arguments: Any, **keywords: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            result = function(*arguments, **keywords)
            entry = timers.setdefault(label, [0.0, 0.0, 0])
            entry[0] += time.perf_counter() - wall
            entry[1] += time.process_time() - cpu
            entry[2] += 1
            return result

        return timed

    pieces = [
        (pdhg.ProxTerm, "ascend", "forward projection + KL dual update"),
        (poisson, "kl_dual_prox", "  of which the KL dual prox"),
        (pdhg, "add_adjoint", "back projection (added in place)"),
        (pdhg_kernels, "tv2d_ascend", "TV dual update"),
        (pdhg_kernels, "tv2d_adjoint", "TV adjoint"),
        (pdhg_kernels, "primal_step", "primal update"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in pieces]
    try:
        for owner, name, label in pieces:
            setattr(owner, name, wrapped(getattr(owner, name), label))
        yield
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def profile(series: Any, iterations: int) -> None:
    """Print the wall and CPU time of each piece of a poisson-tv iteration (mean per call)."""
    import edstomo as et

    timers: dict[str, list[float]] = {}
    stamps: list[tuple[float, float]] = []
    with timed_pieces(timers):
        et.plugins.solver("poisson-tv")(iterations=iterations).solve(
            series, callbacks=lambda state: stamps.append((time.perf_counter(), time.process_time()))
        )
    wall, used = np.array(stamps).T
    print(
        f"\n### Pieces of a poisson-tv iteration (median iteration {statistics.median(np.diff(wall)):.4f} s wall, "
        f"{statistics.median(np.diff(used)):.4f} s CPU; load average {os.getloadavg()})\n"
    )
    print("| piece | s wall per call | s CPU per call | calls |")
    print("|---|---|---|---|")
    order = ["forward projection + KL dual update", "  of which the KL dual prox"]
    for label in sorted(timers, key=lambda label: order.index(label) if label in order else len(order)):
        seconds, cpu_seconds, calls = timers[label]
        print(f"| {label} | {seconds / calls:.4f} | {cpu_seconds / calls:.4f} | {calls} |")


if __name__ == "__main__":
    main()
