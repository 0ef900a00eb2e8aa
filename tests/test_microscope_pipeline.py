"""The real-data pipeline on the shared openNCEM tilt series, at reduced size, and its command line.

Skipped when ``../shared`` (the folder beside the repository) or HyperSpy/exSpy/RosettaSciIO are absent.
Reduced run: 8 of the 16 tilts (-40° to 30° in 10° steps), 8 × 8 rebinning (32 × 32 pixels of 105 nm),
30 EDS-only and 60 HEBT iterations.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hyperspy")
pytest.importorskip("exspy")
pytest.importorskip("rsciio")

from edstomo.cli import main
from edstomo_microscope.metadata import MetadataWarning
from edstomo_microscope.pipeline import PipelineOptions, run_pipeline

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data" / "openNCEM_L2083-K-4-1_EDS_tilt_series"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="the shared openNCEM data set is not available")

REDUCED = [DATA / f"{angle}.bcf" for angle in range(-40, 40, 10)]


@pytest.fixture(scope="module")
def result():
    options = PipelineOptions(rebin=8, solver_options={"sirt": {"iterations": 30}, "hebt-sirt": {"iterations": 60}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_pipeline(REDUCED, options)
    outcome.caught = [w for w in caught if issubclass(w.category, MetadataWarning)]
    return outcome


def test_loading_reads_angles_from_names_and_reports_assumptions(result):
    raw = result.raw
    assert raw.channels == ["HAADF", "C_Ka", "O_Ka", "Mg_Ka", "Si_Ka", "S_Ka", "Fe_Ka", "Ni_Ka", "Pt_La"]
    assert raw.shape == (9, 8, 32, 32)
    assert raw.angles.m_as("deg").tolist() == [-40.0, -30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0]
    load = raw.provenance[0]["parameters"]
    assert load["angle_source"] == "file names"
    assert load["values"]["origins"]["beam_energy"] == "metadata"
    assert raw.experiment.beam_energy.m_as("keV") == 200.0
    assert raw.pixel_size.m_as("nm") == pytest.approx(8 * 13.0814, rel=1e-4)
    assert {"probe_current", "solid_angle"} <= {k for k, v in load["values"]["origins"].items() if v == "assumed"}
    assert result.caught and "probe_current" in str(result.caught[0].message)


def test_shapes_and_finiteness(result):
    series = result.series
    n = series.n_positions
    assert series.shape[:2] == (9, 8) and n <= 32 and series.n_slices <= 32
    for name, volume in result.volumes.items():
        assert volume.shape == (8, n, n, series.n_slices), name
        assert np.all(np.isfinite(volume.data)), name
    for name, maps in result.maps.items():
        assert maps.weight_fractions.shape == (8, n, n, series.n_slices), name
        assert np.all(np.isfinite(maps.weight_fractions)) and maps.weight_fractions.min() >= 0, name


def test_weight_fractions_sum_to_one_inside_the_particle(result):
    for name, maps in result.maps.items():
        assert maps.weight_fractions.dtype == np.float32, name  # float32 end to end
        total = maps.weight_fractions.sum(axis=0, dtype=np.float64)
        assert maps.mask.sum() > 0.05 * maps.mask.size, name
        np.testing.assert_allclose(total[maps.mask], 1.0, atol=8 * 2**-24)  # 8 elements, each rounded to float32
        assert not total[~maps.mask].any(), name


def test_fe_rich_regions_of_eds_only_and_hebt_agree(result):
    comparison = result.comparison
    print("EDS-only vs HEBT weight fractions:", json.dumps(comparison, indent=1))  # the note's numbers
    assert comparison["Fe"]["pearson"] > 0.7
    assert comparison["Fe"]["dice_rich"] > 0.8
    for element in ("S", "Ni"):  # weak lines: reported, positively correlated
        assert comparison[element]["pearson"] > 0.0


def test_physics_ratios_explain_most_of_the_haadf_signal(result):
    fits = result.ratio_fits
    assert 0.6 < fits["physics"]["r_squared"] <= 1.0
    ratios = fits["physics"]["ratios"]
    assert ratios["Pt_La"] > ratios["Fe_Ka"] > ratios["Si_Ka"]  # heavier elements scatter more per X-ray


def test_command_line_reconstruct_then_quantify(tmp_path, capsys):
    files = [str(p) for p in REDUCED[::2]]
    common = ["--rebin", "16", "--set", "sirt.iterations=10", "--set", "hebt-sirt.iterations=20", "--no-figures"]
    assert main(["reconstruct", *files, "--out", str(tmp_path / "rec"), *common]) == 0
    assert (tmp_path / "rec" / "volume_hebt-sirt.h5").is_file() and (tmp_path / "rec" / "alignment.json").is_file()
    err = capsys.readouterr().err
    assert "load: 4/4" in err and "Warning" not in err  # assumed values are notes, deprecations hidden
    assert not (tmp_path / "rec" / "tiff").exists()  # TIFF only when asked for
    assert main(["quantify", str(tmp_path / "rec"), "--out", str(tmp_path / "q"), "--no-figures", "--tiff"]) == 0
    summary = json.loads((tmp_path / "q" / "quantify_summary.json").read_text())
    assert set(summary["thresholds"]) == {"sirt", "hebt-sirt"}
    assert (tmp_path / "q" / "maps_hebt-sirt.h5").is_file() and (tmp_path / "q" / "tiff" / "maps_sirt_Fe.tif").is_file()
    assert any(note.startswith("output: ") and ("MB" in note or "kB" in note) for note in summary["notes"])
    assert main(["quantify", str(DATA / "-45.bcf"), "--out", str(tmp_path / "x")]) == 1
    assert "-45.bcf" in capsys.readouterr().err


def test_quantify_with_uncertainty_prints_means_with_error_bars_and_writes_sigma(tmp_path, capsys):
    """``edstomo quantify SOURCE --out DIR --uncertainty N``: automatic parameters, bootstrap, intervals, σ files."""
    files = [str(p) for p in REDUCED[::2]]
    common = ["--rebin", "16", "--solver", "sirt", "--set", "sirt.selection={max_iterations: 40}", "--no-figures"]
    assert main(["quantify", *files, "--out", str(tmp_path), *common, "--uncertainty", "3", "--tiff", "--hspy"]) == 0
    out = capsys.readouterr().out
    assert "sirt: mean weight fractions in the particle: C " in out and " ± " in out and "wt%" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    chosen = summary["automatic"]["sirt"]["chosen"]["iterations"]
    assert 1 <= chosen <= 40 and summary["automatic"]["sirt"]["exact_counts"] is False
    fe = summary["uncertainty"]["sirt"]["particle"]["Fe"]
    assert fe["low"] < fe["mean"] < fe["high"] and fe["error"] > 0
    assert summary["uncertainty"]["sirt"]["record"]["replicas"] == 3
    from edstomo import load

    maps = load(tmp_path / "maps_sirt.h5")
    assert maps.uncertainty is not None and maps.uncertainty.shape == maps.weight_fractions.shape
    assert (tmp_path / "hspy" / "maps_sirt_Fe_sigma.hspy").is_file() and (
        tmp_path / "tiff" / "maps_sirt_Fe_sigma.tif"
    ).is_file()
    bad = ["quantify", *files, "--out", str(tmp_path / "bad"), *common, "--uncertainty", "1"]
    assert main(bad) == 1  # a user error
    assert "uncertainty: 1 replicas; give 0 (none) or at least 2" in capsys.readouterr().err


def test_error_bars_after_an_absorption_correction_are_those_of_the_corrected_maps():
    """With absorption and uncertainty the method's (corrected) maps carry the error bars, the uncorrected none."""
    options = PipelineOptions(
        rebin=16,
        solvers=["sirt"],
        solver_options={"sirt": {"selection": {"max_iterations": 40}}},
        absorption={"density": 3.3, "max_iterations": 2},
        uncertainty=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        result = run_pipeline(REDUCED[::2], options)
    corrected, uncorrected = result.maps["sirt"], result.maps["sirt-uncorrected"]
    assert corrected.uncertainty is not None and uncorrected.uncertainty is None
    summary = result.summary()
    assert set(summary["uncertainty"]) == {"sirt"}
    assert summary["uncertainty"]["sirt"]["record"]["transmission"].startswith("fixed")
    o = summary["uncertainty"]["sirt"]["particle"]["O"]
    inside = corrected.particle_mask
    assert o["mean"] == pytest.approx(float(corrected.fraction("O")[inside].mean()), abs=1e-6)  # of the corrected maps
    assert abs(o["mean"] - float(uncorrected.fraction("O")[uncorrected.particle_mask].mean())) > 1e-4
    assert o["low"] < o["mean"] < o["high"]
    assert any("error bars of the absorption-corrected maps of sirt" in note for note in summary["notes"])
    assert "uncertainty" in summary["timings_s"] and "absorption" in summary["timings_s"]
