"""Issue 10, "No size guard": memory estimated before allocating, absurd iteration counts refused.

The subprocess runs get an address-space limit, so that a guard that failed would end in a
MemoryError instead of exhausting the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import tracemalloc

import edstomo as et
import numpy as np
import pytest
from conftest import edstomo_command
from edstomo import resources
from edstomo.errors import EdstomoError
from edstomo.operators import ParallelBeamProjector
from edstomo.resources import ResourceError

LIMIT = 6 << 30  # bytes of address space for a command that must refuse to run


def run_limited(*args, cwd=None):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    return subprocess.run(
        [*edstomo_command(), *map(str, args)], capture_output=True, text=True, timeout=600, check=False,
        preexec_fn=limit, cwd=cwd, env={k: v for k, v in os.environ.items() if k != resources.ALLOW_ENV},
    )  # fmt: skip


def experiment_file(small_experiment, path, **changes):
    definition = small_experiment.to_dict()
    for key, value in changes.items():
        definition[key] = value
    path.write_text(json.dumps(definition))
    return path


def test_simulate_with_20000_positions_is_refused_with_the_numbers(small_experiment, tmp_path):
    scan = {"positions": 20000, "pixel_size": "1.5 nm", "slices": 1}
    path = experiment_file(small_experiment, tmp_path / "big.json", scan=scan)
    parts = resources.simulation_bytes(2, 3, 7, 20000, 1)
    needed = sum(parts.values())
    if (resources.available_memory() or 0) > needed:
        pytest.skip("this machine has the memory to run it")
    result = run_limited("simulate", path, "--out", tmp_path / "S.h5")
    assert result.returncode == 1, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("edstomo simulate: error: simulate: experiment 'small' (7 tilts, 20000 positions, 1 slices)")
    phantom = f"phantom {resources.format_bytes(parts['phantom'])}"  # 20000² voxels × 11 arrays × 8 bytes
    total = f"needs about {resources.format_bytes(needed)}"
    for part in (total, phantom, "projector", "is available", "--allow-large"):
        assert part in line, part
    assert not (tmp_path / "S.h5").exists()


def test_a_million_tilts_are_refused_before_the_projector_is_built(small_experiment, tmp_path):
    angles = {"magnitude": np.linspace(-80.0, 80.0, 1_000_000).tolist(), "units": "deg"}
    path = experiment_file(small_experiment, tmp_path / "tilts.json", tilts={"angles": angles})
    result = run_limited("simulate", path, "--out", tmp_path / "S.h5")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "(1000000 tilts, 24 positions, 2 slices): needs about" in result.stderr
    assert "projector" in result.stderr


def test_the_phantom_is_guarded_in_the_library_too(small_experiment, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 10_000)
    monkeypatch.delenv(resources.ALLOW_ENV, raising=False)
    with pytest.raises(ResourceError, match=r"phantom: grid of 24 × 24 × 2 voxels: needs about 99 KiB .* 9.77 KiB"):
        et.plugins.phantom("core-shell")().generate(small_experiment)
    monkeypatch.setenv(resources.ALLOW_ENV, "1")
    assert et.plugins.phantom("core-shell")().generate(small_experiment).shape == (24, 24, 2)


def test_a_solve_that_would_not_fit_is_refused_before_allocating(small_series_file, monkeypatch):
    series = et.TiltSeries.load(small_series_file)
    monkeypatch.setattr(resources, "available_memory", lambda: 10_000)
    monkeypatch.delenv(resources.ALLOW_ENV, raising=False)
    with pytest.raises(ResourceError, match=r"solve: sirt of 2 channels, 7 tilts, 24 positions, 2 slices: needs"):
        et.plugins.solver("sirt")(iterations=1).solve(series)
    monkeypatch.setenv(resources.ALLOW_ENV, "1")
    assert et.plugins.solver("sirt")(iterations=1).solve(series).shape == (2, 24, 24, 2)


def test_absurd_iteration_counts_need_a_flag(small_series_file, tmp_path):
    refused = run_limited("solve", small_series_file, "--out", tmp_path / "V.h5", "--set", "iterations=1e8")
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("edstomo solve: error: solver 'sirt': option 'iterations' = 100000000")
    assert "100000000 iterations is more than 100000" in line and "--allow-large" in line
    assert not (tmp_path / "V.h5").exists()
    with pytest.raises(EdstomoError, match="iterations: 200000 iterations is more than 100000"):
        et.plugins.solver("sirt")(iterations=200_000)
    resources.check_iterations(200_000, allow=True)  # the flag lifts it
    os.environ[resources.ALLOW_ENV] = "1"
    try:
        assert et.plugins.solver("sirt")(iterations=200_000).options.iterations == 200_000
    finally:
        del os.environ[resources.ALLOW_ENV]


def test_reconstruct_refuses_absurd_iterations_before_reading_files(tmp_path):
    (tmp_path / "tilts").mkdir()
    (tmp_path / "tilts" / "0.bcf").write_bytes(b"never read")
    argv = ["reconstruct", tmp_path / "tilts", "--out", tmp_path / "run", "--set", "hebt-sirt.iterations=1000000"]
    result = run_limited(*argv)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("edstomo reconstruct: error: solver 'hebt-sirt': option 'iterations' = 1000000: ")
    assert "more than 100000" in line


@pytest.mark.parametrize("model", ["strip", "joseph"])
@pytest.mark.parametrize(("n_angles", "n"), [(31, 97), (90, 64), (7, 150)])
def test_the_projector_estimate_bounds_the_real_matrix(model, n_angles, n):
    projector = ParallelBeamProjector(np.linspace(-1.3, 1.3, n_angles), (n, n), model=model, dtype="float32")
    matrix = projector._matrix_t
    real = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    estimate = resources.projector_bytes(n_angles, n, n, itemsize=4)
    assert real <= estimate <= 3 * real


def test_the_phantom_estimate_bounds_the_measured_peak(small_experiment):
    scan = small_experiment.scan.model_copy(update={"positions": 400, "slices": 1})
    experiment = small_experiment.model_copy(update={"scan": scan})
    tracemalloc.start()
    try:
        et.plugins.phantom("core-shell")().generate(experiment)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = resources.simulation_bytes(2, 3, 7, 400, 1)["phantom"]
    assert peak <= estimate <= 2 * peak


def test_the_memory_check_reports_parts_and_can_be_lifted(monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 2 << 30)
    monkeypatch.delenv(resources.ALLOW_ENV, raising=False)
    parts = {"data": 1 << 30, "volume": 3 << 29}
    with pytest.raises(ResourceError, match=r"x: needs about 2.5 GiB of memory \(data 1 GiB, volume 1.5 GiB\) but 2"):
        resources.check_memory(parts, "x")
    resources.check_memory(parts, "x", allow=True)
    monkeypatch.setenv(resources.ALLOW_ENV, "yes")
    resources.check_memory(parts, "x")
    resources.check_memory({"data": 1 << 30}, "x", allow=False)  # fits
