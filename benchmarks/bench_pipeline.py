"""Time and memory of the whole real-data pipeline, step by step, each run in a fresh process.

Two cases:

* ``real``: ``edstomo quantify <the openNCEM folder> --out DIR --rebin R --no-figures`` on the
  shared series (``../shared/data`` beside the repository), for each ``--rebin``;
* ``large``: a synthetic series of ``--tilts`` tilts × ``--size``² pixels × 6 lines + HAADF
  (a core–shell particle of two phases projected with the thin-film forward model, Poisson noise,
  written as an edstomo tilt series), run through the whole pipeline on a local Dask cluster of
  ``--workers`` workers with a memory limit of ``--worker-memory`` each.

The run is watched from this process: the resident memory (RSS) of the run's process and of
every process it starts (file reader, Dask workers) is sampled every 50 ms; a step's peak is
the largest sum over the processes while the step ran (steps end where the run prints
``stage: n/n``), beside the largest peak of any single process (``ru_maxrss``) and, for the
large case, each Dask worker's peak. Wall times per step come from the run's own
``summary.json``; CPU time (user + system, all processes) from the operating system. The
machine's load (``/proc/loadavg``) is recorded before and after each run.

Usage::

    python benchmarks/bench_pipeline.py real --rebin 2 1
    python benchmarks/bench_pipeline.py large --size 512 --tilts 60 --iterations 10
    python benchmarks/bench_pipeline.py large --size 128 --tilts 30 --iterations 5  # a quick check
    python benchmarks/bench_pipeline.py large --alpha 0.8  # HEBT solved on the workers (α = 0 reuses SIRT's maps)

Results are printed as Markdown tables and written as JSON to ``--json`` (default
``bench_pipeline.json`` in the working folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "openNCEM_L2083-K-4-1_EDS_tilt_series"
LINES = ["C_Ka", "O_Ka", "Mg_Ka", "Si_Ka", "Fe_Ka", "Ni_Ka"]
SAMPLE_S = 0.05


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Watcher:
    """Samples the RSS of a process and its descendants; attributes it to the step running."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.step = "start"
        self.steps: dict[str, float] = {}
        self.processes: dict[int, tuple[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            total = 0
            try:
                family = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for process in family:
                try:
                    rss = process.memory_info().rss
                    name = " ".join(process.cmdline()[:3])[-80:]
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                previous = self.processes.get(process.pid, (name, 0.0))[1]
                self.processes[process.pid] = (name, max(previous, rss / 1e9))
            self.steps[self.step] = max(self.steps.get(self.step, 0.0), total / 1e9)
            time.sleep(SAMPLE_S)

    def finished(self, stage: str) -> None:
        """A ``stage: n/n`` line: the step that ran until now is ``stage``."""
        if stage in self.steps or stage == self.step:
            return
        self.steps[stage] = self.steps.pop(self.step, 0.0)
        self.step = f"after {stage}"

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def watched(command: list[str], summary: Path, workers_file: Path | None = None) -> dict[str, Any]:
    """Run ``command``, watching it; return wall time, CPU time, memory per step and the summary's timings."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = load_average()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    watcher = Watcher(process.pid)
    output = []
    for line in process.stdout:  # type: ignore[union-attr]
        output.append(line)
        stage, _, count = line.strip().rpartition(": ")
        done, _, total = count.partition("/")
        if stage and done.isdigit() and done == total:
            watcher.finished(stage)
    code = process.wait()
    wall = time.perf_counter() - start
    watcher.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        sys.stderr.write("".join(output[-40:]))
        raise SystemExit(f"the run failed with exit code {code}: {' '.join(command)}")
    result = json.loads(summary.read_text())
    workers = json.loads(workers_file.read_text()) if workers_file and workers_file.exists() else []
    return {
        "command": " ".join(command),
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "largest_process_gb": after.ru_maxrss / 1e6,
        "peak_gb_per_step": watcher.steps,
        "peak_gb": max(watcher.steps.values()),
        "process_peaks_gb": {str(pid): value for pid, value in watcher.processes.items()},
        "worker_peaks_gb": {str(pid): watcher.processes.get(pid, ("", float("nan")))[1] for pid in workers},
        "timings_s": result.get("timings_s", {}),
        "shape_aligned": result.get("shape_aligned"),
        "load_before": load_before,
        "load_after": load_average(),
        "output": "".join(output[-60:]),
    }


def real(rebin: int, folder: Path) -> dict[str, Any]:
    out = folder / f"real_rebin{rebin}"
    edstomo = str(Path(sys.executable).with_name("edstomo"))
    command = [edstomo, "quantify", str(DATA), "--out", str(out), "--rebin", str(rebin), "--no-figures"]
    run = watched(command, out / "summary.json")
    channels, tilts, positions, slices = run["shape_aligned"]
    run["data"] = {
        "series_mb": channels * tilts * positions * slices * 4 / 1e6,
        "volume_mb": (channels - 1) * positions * positions * slices * 4 / 1e6,
        "output_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6,
    }
    return run


def make_large(path: Path, size: int, tilts: int, seed: int = 0) -> None:
    """A core–shell particle of ``size``² × ``size`` voxels, projected slab by slab, written as a tilt series."""
    import numpy as np
    from edstomo.data import HAADF, CompositionMaps, TiltSeries
    from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
    from edstomo.registry import plugins
    from edstomo.units import ureg

    angles = np.linspace(-70.0, 70.0, tilts)
    detector = {"probe_current": "100 pA", "dwell_time": "20 us"}
    experiment = Experiment(
        name=f"synthetic {tilts}x{size}x{size}",
        beam_energy="200 keV",
        lines=LINES,
        tilts=TiltScheme(angles=ureg.Quantity(angles, "deg")),
        scan=Scan(positions=size, pixel_size="2 nm", slices=size),
        haadf=HAADFDetector(**detector),
        eds=EDSDetector(**detector, solid_angle="0.7 sr"),
    )
    factors = plugins.default("physics")().compute(experiment)
    elements = [line.split("_")[0] for line in LINES]
    shell = np.array([0.02, 0.45, 0.25, 0.20, 0.08, 0.0])  # olivine-like
    core = np.array([0.0, 0.05, 0.0, 0.0, 0.60, 0.35])  # Fe-Ni metal
    rng = np.random.default_rng(seed)
    data = np.empty((len(LINES) + 1, tilts, size, size), dtype=np.float32)
    z, x = np.meshgrid(np.arange(size) - size / 2, np.arange(size) - size / 2, indexing="ij")
    slab = 32
    for start in range(0, size, slab):
        stop = min(start + slab, size)
        y = (np.arange(start, stop) - size / 2)[None, None, :]
        r = np.sqrt(z[..., None] ** 2 + x[..., None] ** 2 + y**2)
        inside, centre = r < 0.4 * size, r < 0.2 * size
        fractions = np.where(centre[None], core[:, None, None, None], shell[:, None, None, None]) * inside[None]
        density = np.where(centre, 7.5, 3.3) * inside
        piece = experiment.model_copy(update={"scan": experiment.scan.model_copy(update={"slices": stop - start})})
        truth = CompositionMaps(fractions, elements, "2 nm", density=density)
        expected = plugins.forward("thin-film")(piece, factors).expected(truth)
        data[..., start:stop] = rng.poisson(np.clip(expected, 0, None)).astype(np.float32)
    TiltSeries(data, [HAADF, *LINES], ureg.Quantity(angles, "deg"), "2 nm", experiment=experiment).save(path)


DRIVER = """
import json, sys
from pathlib import Path
from distributed import Client, LocalCluster
from edstomo.data import TiltSeries
from edstomo.study import ProgressPrinter
from edstomo_microscope.pipeline import DaskOptions, PipelineOptions, run_pipeline
source, out, workers, memory, iterations, chunk, alpha = sys.argv[1:8]
if __name__ == "__main__":
    with LocalCluster(n_workers=int(workers), threads_per_worker=1, memory_limit=memory, dashboard_address=None) as c:
        with Client(c) as client:
            pids = list(client.run(lambda: __import__("os").getpid()).values())
            Path(out).mkdir(parents=True, exist_ok=True)
            Path(out, "workers.json").write_text(json.dumps(pids))
            solver_options = {s: {"iterations": int(iterations)} for s in ("sirt", "hebt-sirt")}
            if alpha != "auto":  # a given alpha > 0 makes HEBT solve on the workers (alpha = 0 reuses SIRT's maps)
                solver_options["hebt-sirt"]["alpha"] = float(alpha)
            options = PipelineOptions(series="none", axis="none", solver_options=solver_options)
            dask = DaskOptions(scheduler=c.scheduler_address, chunk_slices=int(chunk))
            series = TiltSeries.load(source)
            progress = ProgressPrinter(sys.stdout)
            run_pipeline(series, options, out=out, pictures=False, progress=progress, dask=dask)
"""


def large(
    size: int, tilts: int, workers: int, memory: str, iterations: int, chunk: int, alpha: str, folder: Path
) -> dict:
    source = folder / f"synthetic_{tilts}x{size}.h5"
    started = time.perf_counter()
    if not source.exists():
        make_large(source, size, tilts)
    made = time.perf_counter() - started
    out = folder / f"large_{tilts}x{size}"
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    arguments = [str(source), str(out), str(workers), memory, str(iterations), str(chunk), alpha]
    run = watched([sys.executable, str(driver), *arguments], out / "summary.json", out / "workers.json")
    channels, n_tilts, positions, slices = run["shape_aligned"]
    run["data"] = {
        "series_mb": channels * n_tilts * positions * slices * 4 / 1e6,
        "volume_mb": (channels - 1) * positions * positions * slices * 4 / 1e6,
        "padded_volume_mb": (channels - 1) * (1.5 * positions) ** 2 * slices * 4 / 1e6,
        "output_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6,
    }
    run["generation_s"] = made
    run["settings"] = {
        "workers": workers,
        "worker_memory": memory,
        "iterations": iterations,
        "chunk_slices": chunk,
        "hebt_alpha": alpha,
    }
    return run


def table(name: str, run: dict[str, Any]) -> str:
    steps = [k for k in run["timings_s"] if k != "reconstruct"]
    lines = [
        f"### {name}",
        "",
        f"`{run['command']}` — load {run['load_before']} before, {run['load_after']} after",
        "",
        "| step | wall s | peak GB (all processes) |",
        "|---|---|---|",
    ]
    for step in steps:
        lines.append(
            f"| {step} | {run['timings_s'][step]:.1f} | {run['peak_gb_per_step'].get(step, float('nan')):.2f} |"
        )
    lines.append(f"| **whole run** | **{run['wall_s']:.1f}** (CPU {run['cpu_s']:.1f}) | **{run['peak_gb']:.2f}** |")
    lines.append("")
    lines.append(
        f"largest single process: {run['largest_process_gb']:.2f} GB; data: "
        + ", ".join(f"{k} {v:.0f}" for k, v in run["data"].items())
    )
    if run.get("worker_peaks_gb"):
        lines.append("Dask workers' peaks (GB): " + ", ".join(f"{v:.2f}" for v in run["worker_peaks_gb"].values()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["real", "large"])
    parser.add_argument("--rebin", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tilts", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="4GB")
    parser.add_argument("--iterations", type=int, default=10, help="iterations of each solver (large case)")
    parser.add_argument("--chunk-slices", type=int, default=16, help="slices per Dask task (large case)")
    parser.add_argument("--alpha", default="auto", help="HEBT's alpha (large case): 'auto' (chosen) or a number")
    parser.add_argument("--folder", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=Path("bench_pipeline.json"))
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
        folder = Path(scratch)
        runs = {}
        if args.case == "real":
            for rebin in args.rebin:
                runs[f"real rebin {rebin}"] = real(rebin, folder)
        else:
            name = f"large {args.tilts} tilts x {args.size}^2 x {len(LINES)} lines + HAADF"
            runs[name] = large(
                args.size,
                args.tilts,
                args.workers,
                args.worker_memory,
                args.iterations,
                args.chunk_slices,
                args.alpha,
                folder,
            )
        for name, run in runs.items():
            print(table(name, run))
            print()
    args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
