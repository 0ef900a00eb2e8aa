"""Issue 10, "Silently empty results": thresholds per method, empty and collapsed masks, strict JSON.

Volumes: EDS-only SIRT and HEBT reconstructions of the small core-shell phantom (Ag La, Au Ma)
made by the real-data pipeline; the command-line cases run the real ``edstomo quantify``.
"""

from __future__ import annotations

import json
import math

import edstomo as et
import numpy as np
import pytest
from conftest import run_edstomo
from edstomo.data import TiltSeries
from edstomo.errors import InputError
from edstomo.provenance import strict, strict_json
from edstomo.threshold import MaskWarning

pytest.importorskip("hyperspy")
pipeline = pytest.importorskip("edstomo_microscope.pipeline")

OPTIONS = {
    "series": "none",
    "axis": "none",
    "physics": "table",
    "intensities": "window",
    "solver_options": {"sirt": {"iterations": 20}, "hebt-sirt": {"iterations": 20}},
}


def strict_load(path):
    """Parse JSON as a strict reader does: NaN, Infinity and -Infinity are errors."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def volumes(small_series_file):
    series = TiltSeries.load(small_series_file)
    result = pipeline.run_pipeline(series, pipeline.PipelineOptions(**OPTIONS), quantify=False)
    return result.volumes


@pytest.fixture
def saved(volumes, tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    for method, volume in volumes.items():
        volume.save(folder / f"volume_{method}.h5")
    return folder


def summed(volume):
    factors = et.plugins.physics("table")().compute(volume.experiment)
    return et.plugins.quantifier_for(volume.factor)(factors).summed(volume)


def test_one_threshold_for_both_methods_is_refused_before_quantifying(saved, tmp_path):
    result = run_edstomo("quantify", saved, "--out", tmp_path / "q", "--threshold", "1e30", "--physics", "table")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]  # after the progress lines
    assert "threshold: one value ('1e30') for the " in line and "different scales" in line
    assert "hebt-sirt=VALUE" in line and "--threshold sirt=VALUE" in line
    assert not (tmp_path / "q" / "quantify_summary.json").exists()


def test_a_threshold_that_leaves_no_voxel_is_an_error_not_zero_fractions(saved, volumes, tmp_path):
    result = run_edstomo("quantify", saved, "--out", tmp_path / "q", "--threshold", "sirt=1e30", "--physics", "table")
    assert result.returncode == 1
    top = summed(volumes["sirt"]).max()
    assert f"threshold: 1e+30 leaves no voxel in the particle: the summed map S = Σ X_A/f_A of these eds maps " \
        f"reaches {top:.4g}" in result.stderr  # fmt: skip
    assert not (tmp_path / "q" / "quantify_summary.json").exists()


def test_the_quantifier_refuses_an_empty_particle(volumes, small_experiment):
    factors = et.plugins.physics("table")().compute(small_experiment)
    top = summed(volumes["hebt-sirt"]).max()
    with pytest.raises(InputError, match="leaves no voxel"):
        et.plugins.quantifier("hebt")(factors, threshold=float(top)).quantify(volumes["hebt-sirt"])
    maps = et.plugins.quantifier("hebt")(factors, threshold=float(top) * 0.5).quantify(volumes["hebt-sirt"])
    assert maps.mask.any() and np.allclose(maps.weight_fractions.sum(axis=0)[maps.mask], 1.0)


def test_thresholds_are_given_per_method(saved, volumes, tmp_path):
    """A threshold for HEBT only: its maps use it, the EDS-only maps keep the automatic threshold."""
    s = summed(volumes["hebt-sirt"])
    value = float(np.quantile(s, 0.5))
    result = run_edstomo("quantify", saved, "--out", tmp_path / "q", "--threshold", f"hebt-sirt={value!r}",
                         "--physics", "table", "--no-figures")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = strict_load(tmp_path / "q" / "quantify_summary.json")
    assert summary["thresholds"]["hebt-sirt"] == value
    assert summary["thresholds"]["sirt"] != value and summary["thresholds"]["sirt"] > 0


def test_a_mask_that_collapses_is_a_warning_in_the_summary(saved, volumes, tmp_path):
    s = summed(volumes["hebt-sirt"])
    value = float(np.sort(s.ravel())[-3])  # keeps 2 voxels: orders of magnitude fewer than the automatic mask
    result = run_edstomo("quantify", saved, "--out", tmp_path / "q", "--threshold", f"hebt-sirt={value!r}",
                         "--physics", "table", "--no-figures")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = strict_load(tmp_path / "q" / "quantify_summary.json")
    (warning,) = summary["warnings"]
    assert warning.startswith(f"hebt-sirt: the given threshold {value:g} keeps 2 voxels, ")
    assert "fewer than the automatic" in warning
    assert summary["findings"]["hebt-sirt"]["particle_voxels"] == 2
    assert f"WARNING: {warning}" in result.stdout


def test_the_quantifier_warns_when_a_given_threshold_collapses_the_mask(volumes, small_experiment):
    factors = et.plugins.physics("table")().compute(small_experiment)
    s = summed(volumes["sirt"])
    with pytest.warns(MaskWarning, match="fewer than the automatic"):
        maps = et.plugins.quantifier("eds")(factors, threshold=float(np.sort(s.ravel())[-5])).quantify(volumes["sirt"])
    step = maps.provenance[-1]["parameters"]
    assert step["mask_voxels"] == 4 and step["automatic_mask_voxels"] >= 40
    reasonable = et.plugins.quantifier("eds")(factors, threshold=step["automatic_threshold"]).quantify(volumes["sirt"])
    assert "mask_warning" not in reasonable.provenance[-1]["parameters"]


def test_summaries_are_strict_json_with_null_and_a_note_for_undefined_values(saved, volumes, tmp_path):
    """An element with no signal in one volume makes its correlation undefined (NaN): written as null."""
    eds = volumes["sirt"]
    data = eds.data.copy()
    data[eds.channels.index("Au_Ma")] = 0.0
    eds.replace(data=data).save(saved / "volume_sirt.h5")
    result = run_edstomo("quantify", saved, "--out", tmp_path / "q", "--physics", "table", "--no-figures")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "q" / "quantify_summary.json").read_text()
    summary = strict_load(tmp_path / "q" / "quantify_summary.json")
    assert ": NaN" not in text  # the strict parse above would have failed on it too
    assert summary["comparison"]["per_element"]["Au"]["pearson"] is None
    assert any("comparison.per_element.Au.pearson" in note and "null" in note for note in summary["notes"])


def test_strict_replaces_every_non_finite_number_and_says_where():
    value = {"a": [1.0, math.nan], "b": {"c": math.inf, "d": "text"}, "e": np.float64(-np.inf), "f": 2}
    cleaned, undefined = strict(value)
    assert cleaned == {"a": [1.0, None], "b": {"c": None, "d": "text"}, "e": None, "f": 2}
    assert undefined == ["a[1]", "b.c", "e"]
    text = strict_json({"x": math.nan, "notes": ["kept"]}, note_key="notes")
    assert json.loads(text)["notes"][0] == "kept" and "x" in json.loads(text)["notes"][1]
