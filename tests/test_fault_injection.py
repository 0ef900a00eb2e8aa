"""Fault injection (issue 10): ``kill -9`` and Ctrl-C (SIGINT) at random points of ``simulate``, ``solve``
(on a local Dask cluster) and ``reconstruct``, run as real ``edstomo`` commands in subprocesses.

For every interrupted run: the exit is non-zero (-9, or 130 with one line on stderr and no
traceback) unless the run had already finished; every old output is still there, byte for
byte, or — when the signal came after its final rename — a complete new one; after Ctrl-C no
temporary is left; after ``kill -9`` the next run of the same output leaves none. The run's
child processes (Dask workers, the fork server, the file reader) end with it.

The random points are drawn from a seeded generator (``EDSTOMO_FAULT_SEED``, printed on failure;
``EDSTOMO_FAULT=long`` sends five signals of each kind instead of two)
between 5 % and 95 % of the time the uninterrupted run took on this machine, one in each of
as many equal parts of that span (so that start-up, computation and writing are all hit). (Temporaries a
``kill -9`` left may still be there after a Ctrl-C that came before the next run reached its
output check; the clean run at the end removes them.)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import edstomo_command

SEED = int(os.environ.get("EDSTOMO_FAULT_SEED", "20261203"))
#: Signals of each kind per command: two in the normal test command (one in each half of the run),
#: ``EDSTOMO_FAULT=long`` for five (start-up, computation and writing each hit more than once).
SIGNALS = 5 if os.environ.get("EDSTOMO_FAULT", "").lower() == "long" else 2


def digests(folder: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names if (folder / n).is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*edstomo-*"))


def group_ends(group: int, seconds: float = 30.0) -> bool:
    """Whether every process of a process group has ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def run(argv: list[str], cwd: Path) -> tuple[int, float]:
    start = time.monotonic()
    result = subprocess.run([*edstomo_command(), *argv], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.returncode, time.monotonic() - start


def interrupted(argv: list[str], cwd: Path, delay: float, sig: int) -> subprocess.CompletedProcess:
    """Run ``edstomo argv`` in its own process group and send ``sig`` after ``delay`` seconds.

    SIGINT goes to the whole group, as a terminal's Ctrl-C does; SIGKILL to the command's process only.
    """
    process = subprocess.Popen(
        [*edstomo_command(), *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    time.sleep(delay)
    if sig == signal.SIGKILL:
        process.kill()
    else:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass  # it had finished
    out, err = process.communicate(timeout=900)
    assert group_ends(process.pid), f"processes of the interrupted run are still alive ({argv})"
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def check_outcome(result, sig, folder, old, complete, what, stale):
    """The exit code, the message and the outputs of one interrupted run (``stale``: leftovers of earlier kills)."""
    context = f"{what}, seed {SEED}: exit {result.returncode}, stderr {result.stderr[-1500:]!r}"
    now = digests(folder, list(old))
    if sig == signal.SIGKILL:
        assert result.returncode in (-signal.SIGKILL, 0), context
    else:
        assert result.returncode in (130, 0), context
        assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, context
        endings = (
            "interrupted; unfinished outputs were not written, old files are unchanged",
            "edstomo: interrupted while starting; nothing was written",
        )
        if result.returncode == 130:
            assert result.stderr.strip().splitlines()[-1].endswith(endings), context
        assert set(leftovers(folder)) <= set(stale), context  # none of its own
    for name in old:
        assert name in now, f"{name} disappeared ({context})"
        assert now[name] == old[name] or complete(folder / name), f"{name} is neither the old file nor complete"


def delays(rng: random.Random, duration: float, count: int) -> list[float]:
    """``count`` random times, one in each of ``count`` equal parts of [5 %, 95 %] of ``duration``."""
    width = 0.9 * duration / count
    return [0.05 * duration + (k + rng.random()) * width for k in range(count)]


def complete_h5(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as file:
            key = "data" if "data" in file else "weight_fractions"
            return file.attrs["format"] == "edstomo" and bool(np.isfinite(file[key][()]).all())
    except (OSError, KeyError):
        return False


def complete_any(path: Path) -> bool:
    if path.suffix == ".h5":
        return complete_h5(path)
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except ValueError:
            return False
    return path.stat().st_size > 0


def inject(argv: list[str], cwd: Path, outputs: list[str], complete, what: str, kills: int, interrupts: int) -> None:
    """The uninterrupted run, then ``kills`` kill -9 and ``interrupts`` Ctrl-C at random points, then a clean run."""
    rng = random.Random(f"{SEED}-{what}")
    _, duration = run(argv, cwd)
    old = digests(cwd, outputs)
    assert set(old) == set(outputs)
    plan = [(d, signal.SIGKILL) for d in delays(rng, duration, kills)]
    plan += [(d, signal.SIGINT) for d in delays(rng, duration, interrupts)]
    for delay, sig in plan:
        stale = leftovers(cwd)
        result = interrupted([*argv, "--overwrite"], cwd, delay, sig)
        name = f"{what} {signal.Signals(sig).name} after {delay:.2f} s"
        check_outcome(result, sig, cwd, old, complete, name, stale)
        print(f"{name} (run of {duration:.1f} s): exit {result.returncode}")  # shown with pytest -s
        old = digests(cwd, outputs)  # a run that completed is the new old output
    run([*argv, "--overwrite"], cwd)
    assert leftovers(cwd) == [], f"{what}: the next run left temporaries (seed {SEED})"


def test_simulate_survives_kill_9_and_ctrl_c(tmp_path):
    from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment

    base = yuan2020_phantom_experiment()
    experiment = base.model_copy(update={"scan": base.scan.model_copy(update={"slices": 120})})
    experiment.save(tmp_path / "exp.yaml")
    inject(["simulate", "exp.yaml", "--out", "S.h5"], tmp_path, ["S.h5"], complete_h5, "simulate", SIGNALS, SIGNALS)


def test_solve_on_dask_survives_kill_9_and_ctrl_c(small_series_file, tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "S.h5").write_bytes(small_series_file.read_bytes())
    argv = ["solve", "S.h5", "--out", "V.h5", "--set", "iterations=300", "--chunk-slices", "1", "--no-progress"]
    inject(argv, tmp_path, ["V.h5", "S.h5"], complete_h5, "solve", SIGNALS, SIGNALS)


def write_tilts(folder: Path) -> None:
    """Three EDS spectrum images (16 × 16 pixels of 5 nm, 400 channels) of a disk with Fe Kα counts."""
    exspy = pytest.importorskip("exspy")
    folder.mkdir()
    rng = np.random.default_rng(7)
    y, x = np.mgrid[:16, :16]
    energy = np.arange(400) * 0.025
    peak = np.exp(-0.5 * ((energy - 6.40) / 0.06) ** 2)
    for angle in (-30, 0, 30):
        disk = ((x - 7.5 - angle / 30) ** 2 + (y - 7.5) ** 2 < 30).astype(float)
        signal_ = exspy.signals.EDSTEMSpectrum(rng.poisson(0.2 + 40 * disk[..., None] * peak).astype(float))
        axis = signal_.axes_manager.signal_axes[0]
        axis.scale, axis.units, axis.name = 0.025, "keV", "Energy"
        for nav, name in zip(signal_.axes_manager.navigation_axes, ("x", "y")):
            nav.scale, nav.units, nav.name = 5.0, "nm", name
        signal_.set_microscope_parameters(beam_energy=200.0, live_time=10.0)
        signal_.save(folder / f"{angle}.hspy")


def test_reconstruct_survives_kill_9_and_ctrl_c(tmp_path):
    pytest.importorskip("hyperspy")
    write_tilts(tmp_path / "tilts")
    argv = ["reconstruct", "tilts", "--out", "run", "--lines", "Fe_Ka", "--rebin", "1", "--set", "sirt.iterations=10"]
    argv += ["--series", "none", "--axis", "none", "--intensities", "window", "--no-figures"]
    names = ["volume_sirt.h5", "tilt_series_raw.h5", "tilt_series_aligned.h5", "alignment.json", "summary.json"]
    inputs = ["tilts/-30.hspy", "tilts/0.hspy", "tilts/30.hspy"]
    inject(argv, tmp_path, [f"run/{n}" for n in names] + inputs, complete_any, "reconstruct", SIGNALS, SIGNALS)
