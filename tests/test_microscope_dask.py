"""The real-data pipeline on a Dask cluster gives the in-process volumes and maps (synthetic tilt series).

The series is a two-element particle (Fe-rich core, S-rich shell) projected at
7 tilts, 16 positions and 9 slices, with a HAADF channel made from the lines'
response ratios, so both reconstructions (EDS-only SIRT and HEBT) run.
"""

from __future__ import annotations

import json
from pathlib import Path

import edstomo as et
import numpy as np
import pytest
from edstomo.cli import main
from edstomo.data import TiltSeries
from edstomo.operators import ParallelBeamProjector
from edstomo_microscope import pipeline
from edstomo_microscope.pipeline import DaskOptions, PipelineOptions, run_pipeline

pytest.importorskip("distributed")

LINES = ["Fe_Ka", "S_Ka"]
ANGLES = np.arange(-60.0, 61.0, 20.0)
POSITIONS, SLICES = 16, 9
PHYSICS = {
    "dataset": None,
    "values": {
        "Fe_Ka": {"sigma_ion": "318 b", "omega": 0.336, "p": 0.892, "sigma_ela": "2.1e6 b"},
        "S_Ka": {"sigma_ion": "1213 b", "omega": 0.077, "p": 0.955, "sigma_ela": "1.1e6 b"},
    },
}
OPTIONS = dict(
    series="none",
    axis="none",
    physics="table",
    physics_options=PHYSICS,
    solver_options={"sirt": {"iterations": 15}, "hebt-sirt": {"iterations": 20}},
)


@pytest.fixture(scope="module")
def series() -> TiltSeries:
    z, x = np.meshgrid(np.arange(POSITIONS) - 7.5, np.arange(POSITIONS) - 7.5, indexing="ij")
    fe = np.zeros((POSITIONS, POSITIONS, SLICES))
    s = np.zeros_like(fe)
    for k in range(SLICES):
        radius = 5.5 - 0.4 * abs(k - SLICES // 2)
        disk, core = x**2 + z**2 <= radius**2, x**2 + z**2 <= (radius / 2) ** 2
        fe[:, :, k] = np.where(core, 40.0, 8.0) * disk
        s[:, :, k] = np.where(core, 5.0, 30.0) * disk
    projector = ParallelBeamProjector(np.deg2rad(ANGLES), (POSITIONS, POSITIONS), dtype="float64")
    eds = np.stack([projector.forward(fe), projector.forward(s)])
    haadf = 900.0 * eds[0] + 400.0 * eds[1]
    experiment = et.Experiment(
        beam_energy="200 keV",
        lines=LINES,
        tilts=et.ureg.Quantity(ANGLES, "deg"),
        scan=et.Scan(positions=POSITIONS, pixel_size="2 nm", slices=SLICES),
        eds=et.EDSDetector(probe_current="1 nA", dwell_time="1 ms", solid_angle="0.7 sr"),
    )
    return TiltSeries(
        np.concatenate([haadf[None], eds]),
        ["HAADF", *LINES],
        et.ureg.Quantity(ANGLES, "deg"),
        "2 nm",
        experiment=experiment,
    )


@pytest.fixture(scope="module")
def in_process(series):
    return run_pipeline(series, PipelineOptions(**OPTIONS), pictures=False)


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker LocalCluster of threads, given to the pipeline by its scheduler address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        yield local


def _assert_same_results(a, b):
    assert set(a.volumes) == set(b.volumes) == {"sirt", "hebt-sirt"}
    for method in a.volumes:
        assert a.volumes[method].channels == b.volumes[method].channels
        np.testing.assert_array_equal(a.volumes[method].data, b.volumes[method].data)
        np.testing.assert_array_equal(a.maps[method].weight_fractions, b.maps[method].weight_fractions)
        assert a.maps[method].threshold == b.maps[method].threshold


def test_a_local_two_worker_cluster_gives_the_in_process_volumes(series, in_process, tmp_path):
    dask = DaskOptions(chunk_slices=4, workers=2, processes=False)
    chunked = run_pipeline(series, PipelineOptions(**OPTIONS), out=tmp_path, pictures=False, dask=dask)
    _assert_same_results(chunked, in_process)
    assert in_process.volumes["sirt"].data.max() > 0 and in_process.maps["hebt-sirt"].mask.any()
    # HEBT ran with the ratios fitted once to the whole series, not per chunk
    hebt = next(s for s in chunked.volumes["hebt-sirt"].provenance if s["action"] == "reconstruct")
    assert hebt["parameters"]["ratios_used"] == pytest.approx(chunked.ratios.ratios, rel=1e-15)
    assert "ratios_estimated" not in hebt["parameters"]
    steps = [s["action"] for s in chunked.volumes["sirt"].provenance]
    assert steps[-3:] == ["reconstruct", "distributed", "crop_to_field"]
    assert chunked.volumes["sirt"].provenance[-2]["parameters"]["chunks"] == 3  # 9 slices in chunks of 4
    # the solver input is kept; the padded intermediate volumes are not
    padded = et.load(tmp_path / "tilt_series_padded.h5")
    width = round(0.25 * POSITIONS)
    assert padded.shape == (3, len(ANGLES), POSITIONS + 2 * width, SLICES)
    assert str(tmp_path / "tilt_series_padded.h5") in chunked.files
    assert not list(tmp_path.glob("volume_*_padded.h5"))
    np.testing.assert_array_equal(et.load(tmp_path / "volume_hebt-sirt.h5").data, in_process.volumes["hebt-sirt"].data)
    assert any("Dask" in note for note in chunked.notes)


def test_a_running_scheduler_gives_the_in_process_volumes(series, in_process, cluster, tmp_path):
    dask = DaskOptions(scheduler=cluster.scheduler_address, chunk_slices=2)
    chunked = run_pipeline(series, PipelineOptions(**OPTIONS), out=tmp_path, pictures=False, dask=dask)
    _assert_same_results(chunked, in_process)
    assert chunked.volumes["hebt-sirt"].provenance[-2]["parameters"]["chunks"] == 5


def test_dask_needs_an_output_folder_and_valid_options(series):
    with pytest.raises(ValueError, match="out: solving on a Dask cluster needs an output folder"):
        run_pipeline(series, PipelineOptions(**OPTIONS), dask=DaskOptions())
    with pytest.raises(ValueError, match="chunk_slices: 0 must be a positive integer"):
        DaskOptions(chunk_slices=0)
    with pytest.raises(ValueError, match="workers: 1.5 must be a positive integer"):
        DaskOptions(workers=1.5)
    with pytest.raises(TypeError, match="dask: expected DaskOptions"):
        run_pipeline(series, PipelineOptions(**OPTIONS), dask={"workers": 2})


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], None),
        (["--chunk-slices", "8"], DaskOptions(chunk_slices=8)),
        (["--workers", "2"], DaskOptions(workers=2)),
        (["--scheduler", "tcp://h:8786"], DaskOptions(scheduler="tcp://h:8786")),
    ],
)
def test_command_line_dask_options_reach_the_pipeline(monkeypatch, tmp_path, arguments, expected):
    seen = {}

    def recorder(source, options, **keywords):
        seen.update(keywords)
        raise ValueError("stop here")

    monkeypatch.setattr(pipeline, "run_pipeline", recorder)
    for command in ("reconstruct", "quantify"):
        seen.clear()
        assert main([command, str(tmp_path), "--out", str(tmp_path / "out"), *arguments]) == 1
        assert seen["dask"] == expected


@pytest.mark.filterwarnings("ignore::edstomo_plugins.physics.elastic.ModelRangeWarning")  # mcxray at 200 keV
def test_quantifying_saved_volumes_with_dask_options_is_an_error(in_process, tmp_path, capsys):
    in_process.volumes["sirt"].save(tmp_path / "volume_sirt.h5")
    assert main(["quantify", str(tmp_path), "--out", str(tmp_path / "q"), "--scheduler", "tcp://h:8786"]) == 1
    assert "quantifying them solves nothing" in capsys.readouterr().err
    assert not Path(tmp_path / "q" / "quantify_summary.json").exists()
    assert main(["quantify", str(tmp_path), "--out", str(tmp_path / "q"), "--no-figures"]) == 0
    summary = json.loads((tmp_path / "q" / "quantify_summary.json").read_text())
    assert list(summary["thresholds"]) == ["sirt"]


def test_the_pipeline_thresholds_with_the_quantifiers_otsu_fallback(in_process):
    for method, maps in in_process.maps.items():
        step = maps.provenance[-1]["parameters"]
        assert step["fallback"] == "otsu" and step["threshold"] == maps.threshold
        noted = [note for note in in_process.notes if note.startswith(f"{method}: ESF")]
        assert bool(noted) == (step["threshold_method"] == "otsu")


def _close(a, b, rtol=1e-12):
    """Nested summaries equal to ``rtol`` (NaN equals NaN)."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _close(a[key], b[key], rtol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y, rtol)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=rtol, abs=1e-300, nan_ok=True)
    else:
        assert a == b


def _steps(record):
    """Provenance steps without the times they record (when, and how many seconds a choice took)."""
    if isinstance(record, dict):
        return {k: _steps(v) for k, v in record.items() if k not in ("time", "seconds")}
    if isinstance(record, list):
        return [_steps(v) for v in record]
    return record


def test_pieces_in_files_give_the_whole_in_memory_results(series, in_process, tmp_path, monkeypatch):
    """Solved, cropped, quantified and summarised 4 slices at a time through files = all 9 slices at once in memory."""
    from edstomo.stored import Stored

    assert in_process.options.chunk_slices >= SLICES  # the reference: one piece, nothing written
    options = PipelineOptions(**OPTIONS, chunk_slices=4)
    pieces = run_pipeline(series, options, out=tmp_path, pictures=False)
    with monkeypatch.context() as patch:  # the summary reads the maps' thresholds, not the maps
        patch.setattr(Stored, "load", lambda self: pytest.fail(f"{self.path} was loaded whole"))
        assert pieces.summary()["thresholds"] == {m: in_process.maps[m].threshold for m in in_process.maps}
    assert pieces.volumes.path("sirt") == tmp_path / "volume_sirt.h5"  # kept in its file, not in memory
    assert pieces.maps.path("hebt-sirt") == tmp_path / "maps_hebt-sirt.h5"
    _assert_same_results(pieces, in_process)
    for method in in_process.maps:
        np.testing.assert_array_equal(pieces.maps[method].mask, in_process.maps[method].mask)
        assert _steps(pieces.maps[method].provenance) == _steps(in_process.maps[method].provenance)
    assert _steps(pieces.volumes["sirt"].provenance) == _steps(in_process.volumes["sirt"].provenance)
    _close(pieces.comparison, in_process.comparison)
    _close(pieces.findings, in_process.findings)
    assert pieces.findings["sirt"]["elements"]["Fe"]["rich_region"]["voxels"] > 0
    # quantifying the saved volumes again (read a range of slices at a time) gives the same maps
    again = pipeline.quantify_saved(
        [tmp_path / "volume_sirt.h5", tmp_path / "volume_hebt-sirt.h5"],
        tmp_path / "again",
        physics="table",
        physics_options=PHYSICS,
        pictures=False,
    )
    _close(again["findings"], in_process.findings)
    for method in in_process.maps:
        maps = et.load(tmp_path / "again" / f"maps_{method}.h5")
        np.testing.assert_array_equal(maps.weight_fractions, in_process.maps[method].weight_fractions)


@pytest.mark.parametrize("dask", [None, DaskOptions(chunk_slices=4, workers=2, processes=False)])
def test_hebt_at_alpha_zero_is_made_from_the_sirt_volume_not_solved_again(series, tmp_path, monkeypatch, dask):
    """With α = 0 and SIRT's iterations, HEBT's volume is r_A × SIRT's (written from it, not solved), with the
    same maps as solving it; with anything else it is solved."""
    from edstomo_plugins.solvers.hebt import HEBTSolver

    solvers = {"sirt": {"iterations": 15}, "hebt-sirt": {"iterations": 15, "alpha": 0.0}}
    options = PipelineOptions(**{**OPTIONS, "solver_options": solvers, "chunk_slices": 4})
    reused = run_pipeline(series, options, out=tmp_path / "reused", pictures=False, dask=dask)
    with monkeypatch.context() as patch:
        patch.setattr(HEBTSolver, "equivalent", lambda self: None)
        solved = run_pipeline(series, options, out=tmp_path / "solved", pictures=False)
    hebt, sirt = reused.volumes["hebt-sirt"], reused.volumes["sirt"]
    ratios = _steps(hebt.provenance)[-2]["parameters"]["equivalent"]["scales"]
    assert ratios == pytest.approx(reused.ratios.ratios, rel=1e-15)
    for k, line in enumerate(LINES):
        np.testing.assert_array_equal(hebt.data[k], sirt.data[k] * np.float32(ratios[line]))
    np.testing.assert_allclose(hebt.data, solved.volumes["hebt-sirt"].data, rtol=1e-4, atol=1e-6 * hebt.data.max())
    np.testing.assert_allclose(
        reused.maps["hebt-sirt"].weight_fractions, solved.maps["hebt-sirt"].weight_fractions, atol=1e-5
    )
    assert [s["action"] for s in hebt.provenance][-2:] == ["reconstruct", "crop_to_field"]
    assert any("hebt-sirt: not solved again (alpha = 0" in note for note in reused.notes)
    assert not any("not solved again" in note for note in solved.notes)
    assert (tmp_path / "reused" / "volume_hebt-sirt.h5").is_file()
    other = PipelineOptions(**{**OPTIONS, "solver_options": {**solvers, "hebt-sirt": {"iterations": 14, "alpha": 0.0}}})
    assert not any("not solved again" in note for note in run_pipeline(series, other, pictures=False).notes)
