"""Tests for edstomo.distributed: slice chunks on a Dask cluster equal the in-process solve, bit for bit."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import edstomo as et
import numpy as np
import pytest
from edstomo import distributed
from edstomo.data import TiltSeries

distributed_module = pytest.importorskip("distributed")

LINES = ["Ag_La", "Au_Ma"]
RATIOS = {"Ag_La": 800.0, "Au_Ma": 1000.0}


@pytest.fixture(scope="module")
def series() -> TiltSeries:
    """A small 3-D tilt series: HAADF + 2 lines, 13 tilts, 20 positions, 11 slices, noise-free phantom."""
    from edstomo.operators import ParallelBeamProjector

    angles = np.arange(-60.0, 61.0, 10.0)
    proj = ParallelBeamProjector(np.deg2rad(angles), (20, 20), dtype="float64")
    z, x = np.meshgrid(np.arange(20) - 9.5, np.arange(20) - 9.5, indexing="ij")
    maps = []
    for element in range(2):
        volume = np.zeros((20, 20, 11))
        for s in range(11):
            radius = 7.0 - 0.3 * abs(s - 5)
            disk = x**2 + z**2 <= radius**2
            core = x**2 + z**2 <= (0.5 * radius) ** 2
            volume[:, :, s] = np.where(core, 0.8, 0.2) * disk if element == 0 else np.where(core, 0.2, 0.8) * disk
        maps.append(volume)
    eds = np.stack([proj.forward(m) * 50.0 for m in maps])
    haadf = RATIOS["Ag_La"] * eds[0] + RATIOS["Au_Ma"] * eds[1]
    data = np.concatenate([haadf[None], eds]).astype(np.float32)
    return TiltSeries(data, ["HAADF", *LINES], et.ureg.Quantity(angles, "deg"), et.ureg.Quantity(1.5, "nm"))


@pytest.fixture(scope="module")
def series_file(series, tmp_path_factory) -> Path:
    return series.save(tmp_path_factory.mktemp("series") / "series.h5")


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker LocalCluster of threads (fast to start; kernels are shared by the two workers)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        yield local


def _untimed(steps: list[dict]) -> list[dict]:
    """Provenance steps without their time stamps (the runs end in different seconds)."""
    return [{key: value for key, value in step.items() if key != "time"} for step in steps]


# ----------------------------------------------------------------------- chunks
def test_slice_chunks_cover_every_slice_once():
    assert distributed.slice_chunks(11, 3) == [(0, 3), (3, 6), (6, 9), (9, 11)]
    assert distributed.slice_chunks(4, 10) == [(0, 4)]
    assert distributed.slice_chunks(0, 5) == []
    for n, size in ((1, 1), (17, 4), (64, 16)):
        ranges = distributed.slice_chunks(n, size)
        covered = np.concatenate([np.arange(a, b) for a, b in ranges])
        np.testing.assert_array_equal(covered, np.arange(n))
        assert all(0 < b - a <= size for a, b in ranges)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_slice_chunks_rejects_a_bad_chunk_size(bad):
    with pytest.raises(ValueError, match="chunk_slices.*positive integer"):
        distributed.slice_chunks(10, bad)


def test_read_chunk_reads_only_its_slices(series, series_file):
    part = distributed.read_chunk(series_file, 3, 7)
    np.testing.assert_array_equal(part.data, series.data[..., 3:7])
    assert part.channels == series.channels
    np.testing.assert_array_equal(part.angles.m_as("deg"), series.angles.m_as("deg"))
    assert part.pixel_size == series.pixel_size
    assert distributed.series_shape(series_file) == series.shape


def test_read_chunk_errors(series_file, tmp_path):
    with pytest.raises(ValueError, match=r"slices: range 5:20 is not inside the series' 11 slices"):
        distributed.read_chunk(series_file, 5, 20)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distributed.read_chunk(tmp_path / "missing.h5", 0, 1)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        distributed.series_shape(tmp_path / "text.h5")


# -------------------------------------------------------------- equal results
@pytest.mark.parametrize(
    ("solver", "options", "chunk"),
    [
        ("sirt", {"iterations": 25}, 3),
        ("hebt-sirt", {"iterations": 25, "alpha": 0.8, "ratios": RATIOS}, 4),
    ],
)
def test_cluster_result_equals_in_process_solve(series, series_file, cluster, tmp_path, solver, options, chunk):
    cls = et.plugins.solver(solver)
    expected = cls(**options).solve(series)
    out = distributed.solve_file(
        cls(**options), series_file, tmp_path / "volume.h5", chunk_slices=chunk, scheduler=cluster.scheduler_address
    )
    result = et.load(out)
    np.testing.assert_array_equal(result.data, expected.data)  # bit for bit
    assert result.channels == expected.channels
    assert (result.quantity, result.unit) == (expected.quantity, expected.unit)
    assert result.pixel_size == expected.pixel_size
    assert _untimed(result.provenance[:-1]) == _untimed(expected.provenance)  # series steps + the solver's
    step = result.provenance[-1]
    assert step["action"] == "distributed" and step["plugin"] == "dask"
    assert step["parameters"]["chunks"] == len(distributed.slice_chunks(series.n_slices, chunk))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume.h5"]  # chunk files removed


def test_default_local_cluster_and_progress(series, series_file, tmp_path):
    calls = []
    out = distributed.solve_file(
        et.plugins.solver("sirt")(iterations=5),
        series_file,
        tmp_path / "sirt.h5",
        chunk_slices=4,
        workers=2,
        processes=False,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    expected = et.plugins.solver("sirt")(iterations=5).solve(series)
    np.testing.assert_array_equal(et.load(out).data, expected.data)


def test_a_failing_task_leaves_no_output_and_no_chunks(series_file, cluster, tmp_path):
    out = tmp_path / "volume.h5"
    with pytest.raises(ValueError, match="channels"):
        distributed.solve_file(
            et.plugins.solver("sirt")(iterations=2, channels=["Zn_Ka"]),
            series_file,
            out,
            chunk_slices=4,
            scheduler=cluster.scheduler_address,
        )
    assert list(tmp_path.iterdir()) == []


def test_options_estimated_from_data_are_fitted_once_on_the_whole_series(series, series_file, tmp_path):
    """hebt-sirt without ratios: one fit on the whole series, not one per chunk (which would differ)."""
    from edstomo.preprocessing import response_ratios

    out = distributed.solve_file(
        et.plugins.solver("hebt-sirt")(iterations=4), series_file, tmp_path / "v.h5", chunk_slices=3
    )
    fit = response_ratios(series)
    expected = et.plugins.solver("hebt-sirt")(iterations=4, ratios=fit.ratios).solve(series)
    volume = et.load(out)
    np.testing.assert_array_equal(volume.data, expected.data)
    assert volume.provenance[-2]["parameters"]["ratios"] == pytest.approx(fit.ratios)


def test_bad_options_are_errors(series_file, tmp_path):
    sirt = et.plugins.solver("sirt")(iterations=1)
    with pytest.raises(ValueError, match="chunk_slices"):
        distributed.solve_file(sirt, series_file, tmp_path / "v.h5", chunk_slices=0)
    with pytest.raises(ValueError, match="workers.*positive integer"):
        distributed.solve_file(sirt, series_file, tmp_path / "v.h5", workers=0)
    with pytest.raises(FileNotFoundError, match="folder"):
        distributed.solve_file(sirt, series_file, tmp_path / "missing" / "v.h5")
    with pytest.raises(ValueError, match="progress"):
        distributed.solve_file(sirt, series_file, tmp_path / "v.h5", progress="yes")
    assert not (tmp_path / "v.h5").exists()


def test_command_line_arguments():
    parser = argparse.ArgumentParser()
    distributed.add_distributed_arguments(parser)
    args = parser.parse_args(["--scheduler", "tcp://10.0.0.1:8786", "--chunk-slices", "32", "--workers", "3"])
    assert (args.scheduler, args.chunk_slices, args.workers) == ("tcp://10.0.0.1:8786", 32, 3)
    defaults = parser.parse_args([])
    assert (defaults.scheduler, defaults.chunk_slices, defaults.workers) == (None, 16, 1)


def test_worker_processes_give_the_same_result(series, series_file, tmp_path):
    """The solver is pickled to a separate worker process, which limits numba to its share of the cores."""
    out = distributed.solve_file(
        et.plugins.solver("sirt")(iterations=5), series_file, tmp_path / "sirt.h5", chunk_slices=6, workers=1
    )
    expected = et.plugins.solver("sirt")(iterations=5).solve(series)
    np.testing.assert_array_equal(et.load(out).data, expected.data)


# ------------------------------------------------------------------ command line
def test_cli_solve_writes_the_in_process_volume(series, series_file, tmp_path, capsys):
    from edstomo.cli import main

    out = tmp_path / "hebt.h5"
    options = ["--solver", "hebt-sirt", "--set", "iterations=6", "--set", "alpha=0.7"]
    options += ["--set", "ratios={Ag_La: 800, Au_Ma: 1000}"]
    code = main(["solve", str(series_file), "--out", str(out), *options, "--chunk-slices", "5", "--no-progress"])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    expected = et.plugins.solver("hebt-sirt")(iterations=6, alpha=0.7, ratios=RATIOS).solve(series)
    np.testing.assert_array_equal(et.load(out).data, expected.data)


def test_cli_solve_fits_hebt_ratios_to_the_whole_series(series, series_file, tmp_path, capsys):
    from edstomo.cli import main
    from edstomo.preprocessing import response_ratios

    out = tmp_path / "hebt.h5"
    assert main(["solve", str(series_file), "--out", str(out), "--solver", "hebt-sirt", "--set", "iterations=3"]) == 0
    fit = response_ratios(series)
    assert "estimated once on the whole series: ratios" in capsys.readouterr().out
    expected = et.plugins.solver("hebt-sirt")(iterations=3, ratios=fit.ratios).solve(series)
    np.testing.assert_array_equal(et.load(out).data, expected.data)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--solver", "hebt-sirt", "--set", "ratios=Ag_La:800"], r"option 'ratios' = 'Ag_La:800': expected dict"),
        (["--set", "alpha=0.5"], "option 'alpha' = 0.5: not an option of solver 'sirt'"),
        (["--solver", "nope"], "solver: unknown plugin 'nope'"),
        (["--set", "solver.iterations=-1"], r"option 'iterations' = -1: expected int \(>= 0"),
        (["--chunk-slices", "0"], "chunk_slices"),
    ],
)
def test_cli_solve_errors(series_file, tmp_path, capsys, extra, message):
    from edstomo.cli import main

    assert main(["solve", str(series_file), "--out", str(tmp_path / "v.h5"), "--no-progress", *extra]) == 1
    assert re.search(message, capsys.readouterr().err)
