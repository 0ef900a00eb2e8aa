"""edstomo SIRT / HEBT against astra-toolbox's CPU SIRT (and etspy's, when installed), same data, one run.

Run from the repository root::

    python benchmarks/bench_sirt.py                 # both cases, ~3 minutes on 2 cores
    python benchmarks/bench_sirt.py --case a        # the paper's 2-D geometry only
    python benchmarks/bench_sirt.py --astra-slices 0  # ASTRA's 100-iteration error on all 256 slices (slow)

Cases
-----
(a) the paper's 2-D geometry: one slice of 97 × 97 pixels, 31 tilts from −75° to 75°;
(b) 256 slices of 256 × 256 pixels, 31 tilts.

Data: a core–shell phantom (disk in (a), sphere in (b)) projected with edstomo's
strip projector, with Poisson noise (seeded), in float32; every method gets
these very arrays.  ASTRA runs its CPU ``SIRT`` with the ``strip`` projector and
``MinConstraint = 0`` (its R/C normalisation is SIRT's), slice by slice in as
many Python threads as there are cores (its 2-D calls release the GIL); only
2-D CPU calls are made.  Our angles θ are ASTRA's −θ (see docs/projector.md).

Columns
-------
s/iteration
    Wall time per iteration, all slices, after set-up (matrix build, data
    staging); edstomo: median interval between iteration callbacks; ASTRA:
    time spent in ``astra.algorithm.run`` by the busiest thread / iterations.
error
    Relative RMS error ‖x − truth‖ / ‖truth‖ after ``--iterations`` (100)
    iterations.  For ASTRA in case (b) on ``--astra-slices`` evenly spread
    slices (16 by default; 0 = all), and edstomo's error on the same slices is
    printed beside it; ``max |Δ|`` is the largest difference between the two
    reconstructions relative to the truth's maximum.
peak MB
    Peak resident memory above the interpreter's own, measured in a fresh
    subprocess: the peak RSS (``VmHWM``, reset after the imports and a warm-up
    that loads the compiled kernels) minus the RSS at that point, for the whole
    solve including building the projection matrix and the result ``Volume``.
budget
    peak / (data + volume + projection operator), the issue's memory target (≤ 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ANGLES_DEG = np.arange(-75.0, 76.0, 5.0)
CASES = {"a": (97, 1), "b": (256, 256)}  # (pixels, slices)
LINES = ["Ag_La", "Au_Ma", "Co_Ka", "Zn_Ka"]
RATIOS = {"Ag_La": 805.0, "Au_Ma": 987.0, "Co_Ka": 520.0, "Zn_Ka": 610.0}
COUNTS = 200.0  # mean counts per unit of projected path length (sets the Poisson noise)


# ------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    """CPU model and cores, library versions, compiled-kernel settings."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from edstomo.operators import kernels

    info: dict[str, Any] = {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "kernels": kernels.describe(),
        "load average": os.getloadavg(),
    }
    try:
        import astra

        info["astra"] = astra.__version__
    except ImportError:
        info["astra"] = None
    return info


# ------------------------------------------------------------------------ quiet
def _busy_fraction(seconds: float = 0.5) -> float:
    """Share of all CPU time used by any process over ``seconds`` (this one is asleep meanwhile)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


QUIET = {"waits": 0, "timeouts": 0}


def wait_for_quiet(threshold: float = 0.1, timeout: float = 120.0) -> None:
    """Wait until other processes use less than ``threshold`` of the CPUs (Linux; no-op elsewhere).

    Timings on a shared machine are only comparable when nothing else runs;
    the run reports how often the wait timed out.
    """
    if not Path("/proc/stat").exists():
        return
    QUIET["waits"] += 1
    start = time.monotonic()
    while _busy_fraction() >= threshold:
        if time.monotonic() - start > timeout:
            QUIET["timeouts"] += 1
            return


# ---------------------------------------------------------------------- phantoms
def phantom(n: int, slices: int, element: int = 0) -> np.ndarray:
    """A core–shell disk (one slice) or sphere, shape (n, n, slices), float32.

    ``element`` 0…3 gives four different maps (for HEBT): shell-rich, core-rich,
    and two off-centre inclusions.
    """
    c = (n - 1) / 2
    z, x = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    y = (np.arange(slices) - (slices - 1) / 2) if slices > 1 else np.zeros(1)
    r_out, r_in = 0.36 * n, 0.2 * n
    volume = np.zeros((n, n, slices), dtype=np.float32)
    for s, ys in enumerate(y):
        r2 = x**2 + z**2 + ys**2
        shell = (r2 <= r_out**2) & (r2 > r_in**2)
        core = r2 <= r_in**2
        if element == 0:
            volume[:, :, s] = 0.8 * shell + 0.2 * core
        elif element == 1:
            volume[:, :, s] = 0.2 * shell + 0.8 * core
        else:
            sign = 1 if element == 2 else -1
            blob = (x - sign * 0.15 * n) ** 2 + (z + sign * 0.1 * n) ** 2 + ys**2 <= (0.08 * n) ** 2
            volume[:, :, s] = 0.5 * blob
    return volume


def make_case(case: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Truth maps (4 elements), noisy EDS sinograms, and the HAADF sinogram Σ r_A I_A."""
    from edstomo.operators import ParallelBeamProjector

    n, slices = CASES[case]
    proj = ParallelBeamProjector(np.deg2rad(ANGLES_DEG), (n, n))
    rng = np.random.default_rng(seed)
    truth = np.stack([phantom(n, slices, e) for e in range(len(LINES))])
    eds = np.empty((len(LINES), len(ANGLES_DEG), n, slices), dtype=np.float32)
    for e in range(len(LINES)):
        mean = proj.forward(truth[e]).astype(np.float64) * COUNTS
        eds[e] = rng.poisson(mean) / COUNTS
    haadf = sum(RATIOS[line] * eds[e] for e, line in enumerate(LINES)).astype(np.float32)
    return {"truth": truth, "eds": eds, "haadf": haadf, "matrix_bytes": _matrix_bytes(proj)}


def _matrix_bytes(proj: Any) -> int:
    m = proj.matrix_t
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def tilt_series(eds: np.ndarray, haadf: np.ndarray | None, lines: list[str]) -> Any:
    import edstomo as et
    from edstomo.data import TiltSeries

    data = eds if haadf is None else np.concatenate([haadf[None], eds])
    channels = lines if haadf is None else ["HAADF", *lines]
    return TiltSeries(data, channels, et.ureg.Quantity(ANGLES_DEG, "deg"), et.ureg.Quantity(1.5, "nm"))


def rel_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


# ---------------------------------------------------------------------- edstomo
def edstomo_solve(series: Any, solver: str, iterations: int, **options: Any) -> tuple[np.ndarray, float]:
    """Reconstruction (channels, nz, nx, slices) and median seconds per iteration."""
    import edstomo as et

    stamps: list[float] = []
    cls = et.plugins.solver(solver)
    cls(iterations=1, **options).solve(series)  # build and cache the projector, load the kernels
    wait_for_quiet()
    volume = cls(iterations=iterations, **options).solve(series, callbacks=lambda s: stamps.append(time.perf_counter()))
    return volume.data, statistics.median(np.diff(stamps))


def edstomo_steps(series: Any, iterations: int = 8) -> dict[str, float]:
    """Seconds per SIRT iteration of the implementation steps, on the projector directly."""
    from edstomo.operators import ParallelBeamProjector

    sino = np.ascontiguousarray(series.data[0], dtype=np.float32)  # (tilts, n, slices)
    n = sino.shape[1]
    results = {}
    for label, kernel, fused in (
        ("scipy.sparse: CSR gather, CSC scatter, NumPy update", "scipy", False),
        ("compiled kernels for both products, NumPy update", "numba", False),
        ("compiled update (back projection + update + clip) + forward", "numba", True),
    ):
        proj = ParallelBeamProjector(np.deg2rad(ANGLES_DEG), (n, n), kernel=kernel)
        r = (1.0 / np.maximum(proj.row_sums(), 1e-6)).reshape(proj.range_shape)[..., None]
        c = (1.0 / np.maximum(proj.col_sums(), 1e-6)).reshape(proj.domain_shape)
        x = np.zeros((n, n, sino.shape[2]), dtype=np.float32)
        projection = proj.forward(x)
        wait_for_quiet()
        stamps = []
        for _ in range(iterations):
            u = r * (sino - projection)
            if fused:
                projection = proj.update(x, u, c)
            else:
                x += c[..., None] * proj.adjoint(u)
                np.maximum(x, 0, out=x)
                projection = proj.forward(x)
            stamps.append(time.perf_counter())
        results[label] = statistics.median(np.diff(stamps))
    return results


# ------------------------------------------------------------------------ ASTRA
def astra_sirt(sino: np.ndarray, iterations: int, slices: list[int], threads: int) -> tuple[np.ndarray, float] | None:
    """ASTRA CPU SIRT (strip, MinConstraint 0) of the given slices; (volume, seconds per iteration).

    Returns None when astra-toolbox is not installed.
    """
    try:
        import astra
    except ImportError:
        return None
    n = sino.shape[1]
    vol_geom = astra.create_vol_geom(n, n)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n, -np.deg2rad(ANGLES_DEG))
    out = np.zeros((n, n, len(slices)), dtype=np.float32)
    run_seconds = [0.0] * threads

    def work(worker: int) -> None:
        projector = astra.create_projector("strip", proj_geom, vol_geom)
        for index in range(worker, len(slices), threads):
            sino_id = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(sino[:, :, slices[index]]))
            rec_id = astra.data2d.create("-vol", vol_geom, 0.0)
            cfg = astra.astra_dict("SIRT")
            cfg.update(ProjectorId=projector, ProjectionDataId=sino_id, ReconstructionDataId=rec_id)
            cfg["option"] = {"MinConstraint": 0.0}
            alg = astra.algorithm.create(cfg)
            start = time.perf_counter()
            astra.algorithm.run(alg, iterations)
            run_seconds[worker] += time.perf_counter() - start
            out[:, :, index] = astra.data2d.get(rec_id)
            astra.algorithm.delete(alg)
            astra.data2d.delete([sino_id, rec_id])
        astra.projector.delete(projector)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    wait_for_quiet()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return out, max(run_seconds) / iterations  # the threads run side by side: the slowest one counts


def etspy_sirt(sino: np.ndarray, iterations: int) -> tuple[np.ndarray, float] | None:
    """etspy's CPU SIRT (``etspy.recon.run``), when etspy is installed; else None.

    etspy passes θ to ASTRA, so its image rows run opposite to ours (flipped back here).
    """
    try:
        from etspy import recon
    except ImportError:
        return None
    stack = np.ascontiguousarray(sino)  # (tilts, positions, slices) is etspy's (nangles, ny, nx)
    start = time.perf_counter()
    rec = recon.run(
        stack, ANGLES_DEG, "SIRT", niterations=iterations, constrain=True, thresh=0, cuda=False,
        show_progressbar=False, verbose=False,
    )  # fmt: skip
    seconds = (time.perf_counter() - start) / iterations
    return np.moveaxis(np.asarray(rec)[:, ::-1, :], 0, 2), seconds


# ----------------------------------------------------------------------- memory
def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB, or None off Linux."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return None


def _start_peak() -> float:
    """Reset the peak-RSS mark to the current RSS (Linux) and return the baseline in MiB.

    ``ru_maxrss`` cannot be used in a child: Linux carries the parent's high-water
    mark across ``exec``.  Writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM``.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return float(_status_mb("VmRSS"))
    except (OSError, TypeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb() -> float:
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method: str, data_file: str, iterations: int) -> None:
    """Subprocess: peak memory of one method above the warmed-up interpreter (prints JSON)."""
    import edstomo as et  # importing is part of the interpreter's own memory

    tiny = tilt_series(np.ones((1, len(ANGLES_DEG), 8, 2), dtype=np.float32), None, LINES[:1])
    et.plugins.solver("sirt")(iterations=2).solve(tiny)  # load the compiled kernels
    if method == "astra":
        astra_sirt(np.ones((len(ANGLES_DEG), 8, 1), dtype=np.float32), 1, [0], 1)
    from edstomo.operators.projector import _cached_projector

    _cached_projector.cache_clear()
    base = _start_peak()
    with np.load(data_file) as stored:
        eds, haadf = stored["eds"], stored["haadf"]
    if method == "sirt":
        et.plugins.solver("sirt")(iterations=iterations).solve(tilt_series(eds[:1], None, LINES[:1]))
    elif method == "hebt":
        series = tilt_series(eds, haadf, LINES)
        del eds, haadf
        et.plugins.solver("hebt-sirt")(iterations=iterations, alpha=0.8, ratios=RATIOS).solve(series)
    else:
        astra_sirt(eds[0], iterations, list(range(eds.shape[-1])), os.cpu_count() or 1)
    print(json.dumps({"peak_mb": _peak_mb() - base}))


def peak_memory(method: str, data_file: str, iterations: int = 3) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--data", data_file, "--iterations", str(iterations)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"])


# ------------------------------------------------------------------------ table
def run_case(case: str, iterations: int, astra_slices: int, timing_iterations: int, memory: bool) -> list[str]:
    n, slices = CASES[case]
    data = make_case(case)
    truth, eds, haadf = data["truth"], data["eds"], data["haadf"]
    single = tilt_series(eds[:1], None, LINES[:1])
    mb = 1 / 2**20
    budget_sirt = (eds[:1].nbytes + truth[:1].nbytes + data["matrix_bytes"]) * mb
    budget_hebt = (eds.nbytes + haadf.nbytes + truth.nbytes + data["matrix_bytes"]) * mb
    threads = os.cpu_count() or 1

    recon, t_sirt = edstomo_solve(single, "sirt", iterations)
    err_sirt = rel_error(recon[0], truth[0])
    hebt_iterations = min(iterations, 20)
    _, t_hebt = edstomo_solve(tilt_series(eds, haadf, LINES), "hebt-sirt", hebt_iterations, alpha=0.8, ratios=RATIOS)

    if astra_slices <= 0 or astra_slices >= slices:
        picked = list(range(slices))
    else:
        picked = np.rint(np.linspace(0, slices - 1, astra_slices)).astype(int).tolist()
    astra_err = astra_time = None
    agree = None
    astra = astra_sirt(eds[0], iterations, picked, threads)
    if astra is not None:
        astra_vol, astra_time = astra
        astra_err = rel_error(astra_vol, truth[0][:, :, picked])
        agree = float(np.abs(astra_vol - recon[0][:, :, picked]).max() / truth[0].max())
        if len(picked) < slices:  # time ASTRA on every slice with fewer iterations
            _, astra_time = astra_sirt(eds[0], timing_iterations, list(range(slices)), threads)
    etspy = etspy_sirt(eds[0], iterations)

    memory_mb: dict[str, float | None] = {"sirt": None, "hebt": None, "astra": None}
    if memory:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"case_{case}.npz")
            np.savez(path, eds=eds, haadf=haadf)
            for method in ("sirt", "hebt") + (("astra",) if astra is not None else ()):
                memory_mb[method] = peak_memory(method, path)

    def fmt(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else format(value, pattern)

    err_same = rel_error(recon[0][:, :, picked], truth[0][:, :, picked])
    rows = [
        f"### Case ({case}): {slices} slice{'s' if slices > 1 else ''} × {n}² pixels × {len(ANGLES_DEG)} tilts",
        "",
        "| method | s/iteration | × faster than ASTRA | error after "
        f"{iterations} it. | peak MB | peak / (data+volume+operator) |",
        "|---|---|---|---|---|---|",
    ]
    ratio = None if astra_time is None else astra_time / t_sirt
    rows.append(
        f"| edstomo SIRT (1 channel) | {t_sirt:.4f} | {fmt(ratio, '.1f')} | {err_sirt:.4f}"
        f"{'' if len(picked) == slices else f' (on ASTRA slices: {err_same:.4f})'} | "
        f"{fmt(memory_mb['sirt'], '.0f')} | {fmt(None if memory_mb['sirt'] is None else memory_mb['sirt'] / budget_sirt, '.2f')} |"  # noqa: E501
    )
    rows.append(
        f"| edstomo HEBT (4 elements + HAADF) | {t_hebt:.4f} ({t_hebt / t_sirt:.1f}× SIRT) | "
        f"{fmt(None if astra_time is None else astra_time / t_hebt, '.1f')} | – | {fmt(memory_mb['hebt'], '.0f')} | "
        f"{fmt(None if memory_mb['hebt'] is None else memory_mb['hebt'] / budget_hebt, '.2f')} |"
    )
    if astra is None:
        rows.append("| astra-toolbox CPU SIRT | not installed | | | | |")
    else:
        note = "" if len(picked) == slices else f" (on {len(picked)} slices)"
        rows.append(
            f"| astra-toolbox CPU SIRT ({threads} threads) | {astra_time:.4f} | 1.0 | {astra_err:.4f}{note} | "
            f"{fmt(memory_mb['astra'], '.0f')} | "
            f"{fmt(None if memory_mb['astra'] is None else memory_mb['astra'] / budget_sirt, '.2f')} |"
        )
    if etspy is None:
        rows.append("| etspy SIRT | not installed | | | | |")
    else:
        etspy_vol, etspy_time = etspy
        rows.append(
            f"| etspy SIRT (CPU) | {etspy_time:.4f} | {fmt(None if astra_time is None else astra_time / etspy_time, '.2f')} | "  # noqa: E501
            f"{rel_error(etspy_vol, truth[0]):.4f} | | |"
        )
    rows.append("")
    if agree is not None:
        rows.append(f"edstomo vs ASTRA after {iterations} iterations: max |Δ| / max(truth) = {agree:.2e}.")
    rows.append(
        f"Sizes: data {eds[:1].nbytes * mb:.1f} MB per channel, volume {truth[:1].nbytes * mb:.1f} MB per channel, "
        f"operator {data['matrix_bytes'] * mb:.1f} MB; budget SIRT {budget_sirt:.0f} MB, HEBT {budget_hebt:.0f} MB."
    )
    rows.append("")
    rows.append("Implementation steps (SIRT iteration on the projector, same data):")
    rows.append("")
    rows.append("| step | s/iteration |")
    rows.append("|---|---|")
    for label, seconds in edstomo_steps(single).items():
        rows.append(f"| {label} | {seconds:.4f} |")
    rows.append("")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["a", "b", "all"], default="all")
    parser.add_argument("--iterations", type=int, default=100, help="iterations for the error column (100)")
    parser.add_argument("--astra-slices", type=int, default=16, help="case (b): slices for ASTRA's error (0 = all)")
    parser.add_argument(
        "--timing-iterations", type=int, default=5, help="case (b): ASTRA iterations timed on all slices"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurements")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.iterations)
        return
    info = machine()
    print(
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, NumPy {info['numpy']}, "
        f"astra-toolbox {info['astra']}, kernels {info['kernels']}; load average before {info['load average']}"
    )
    print()
    for case in ("a", "b") if args.case == "all" else (args.case,):
        print("\n".join(run_case(case, args.iterations, args.astra_slices, args.timing_iterations, not args.no_memory)))
    from edstomo.operators import kernels

    print(f"compiled kernels after the runs: {kernels.describe()}")
    print(
        f"load average after: {os.getloadavg()}; waited for a quiet machine {QUIET['waits']} times, "
        f"{QUIET['timeouts']} waits timed out (their timings may include other processes' load)"
    )


if __name__ == "__main__":
    main()
