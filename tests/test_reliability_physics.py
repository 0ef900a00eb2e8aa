"""Issue 10, "Silently wrong physics": units of the right kind, sane ranges, data that agrees with its experiment,
and no value for a line that is not used. The command-line cases run the real ``edstomo`` command."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import run_edstomo
from edstomo.data import CompositionMaps, TiltSeries, Volume, load
from edstomo.errors import EdstomoError, InputError
from edstomo.experiment import EDSDetector, Experiment, ExperimentError, HAADFDetector, Scan, TiltScheme
from edstomo.registry import plugins
from edstomo.units import UnitError, as_quantity, ureg


# ----- solid angles and plane angles ------------------------------------------------------
@pytest.mark.parametrize("value", ["1 deg", "17.45 mrad", "1 rad", "1", "5 percent", "1 dimensionless"])
def test_a_solid_angle_must_be_in_steradians(value):
    with pytest.raises(ExperimentError, match=r"solid_angle"):
        EDSDetector(electrons_per_pixel="1 e", solid_angle=value)


@pytest.mark.parametrize(
    ("value", "sr"), [("0.7 sr", 0.7), ("120 msr", 0.12), ("1000 deg**2", 1000 * (np.pi / 180) ** 2)]
)
def test_solid_angles_in_sr_msr_and_square_degrees_are_accepted(value, sr):
    assert EDSDetector(electrons_per_pixel="1 e", solid_angle=value).solid_angle.m_as("sr") == pytest.approx(sr)


@pytest.mark.parametrize("value", ["13 sr", "1e5 msr"])
def test_a_solid_angle_beyond_the_sphere_is_refused(value):
    with pytest.raises(ExperimentError, match=r"solid_angle: .* exceeds 12\.5664 sr"):
        EDSDetector(electrons_per_pixel="1 e", solid_angle=value)


def test_a_tilt_given_as_a_solid_angle_is_refused_not_read_as_57_degrees():
    with pytest.raises(ExperimentError, match=r"angles: '1 sr' is not a plane angle"):
        TiltScheme(angles=["1 sr"])
    with pytest.raises(UnitError, match="is not a plane angle"):
        as_quantity("1 sr", "deg", "tilt")
    assert TiltScheme(angles=["1 rad"]).values.m_as("deg")[0] == pytest.approx(57.29577951308232)
    with pytest.raises(InputError, match="angles"):
        TiltSeries(np.ones((1, 1, 4, 1)), ["Ag_La"], ureg.Quantity([1.0], "sr"), "1 nm")


@pytest.mark.parametrize(
    "tilts",
    [
        {"angles": ["-70 deg", "1000 deg"]},
        {"start": "-1e4 deg", "stop": "0 deg", "step": "10 deg"},
        {"start": "-70 deg", "stop": "70 deg", "step": "1e-6 deg"},  # 1.4e8 tilts
    ],
)
def test_tilt_angles_outside_a_sane_range_are_refused(tilts, small_experiment):
    definition = small_experiment.to_dict() | {"tilts": tilts}
    with pytest.raises(ExperimentError, match=r"tilts"):
        Experiment.model_validate(definition)


def test_a_tilt_series_with_absurd_angles_is_refused():
    with pytest.raises(InputError, match=r"angles: .* within ±360 deg"):
        TiltSeries(np.ones((1, 2, 4, 1)), ["Ag_La"], ureg.Quantity([0.0, 5000.0], "deg"), "1 nm")


@pytest.mark.parametrize(("field", "value"), [("outer_angle", "10 rad"), ("inner_angle", "2000 mrad")])
def test_haadf_angles_beyond_90_degrees_are_refused(field, value):
    with pytest.raises(ExperimentError, match=rf"{field}: '{value}' exceeds 1570\.8 mrad"):
        HAADFDetector(electrons_per_pixel="1 e", **{field: value})


def test_a_haadf_angle_of_10_rad_is_refused_by_simulate(small_experiment, tmp_path):
    definition = small_experiment.to_dict()
    definition["haadf"]["outer_angle"] = "10 rad"
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(definition))
    result = run_edstomo("simulate", path, "--out", tmp_path / "S.h5")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"edstomo simulate: error: experiment file {str(path)!r}: haadf.outer_angle: '10 rad' exceeds 1570.8 mrad "
        "in magnitude (90°: a transmission detector collects below it)"
    ]


# ----- infinite pixel sizes -----------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf nm", "-inf nm", "nan nm", "1e400 nm", "0 nm", "-1 nm"])
def test_a_pixel_size_must_be_positive_and_finite_everywhere(value):
    with pytest.raises(ExperimentError, match="pixel_size"):
        Scan(positions=4, pixel_size=value)
    with pytest.raises(InputError, match="pixel_size: .* must be positive and finite"):
        TiltSeries(np.ones((1, 1, 4, 1)), ["Ag_La"], ["0 deg"], value)
    with pytest.raises(InputError, match="pixel_size: .* must be positive and finite"):
        Volume(np.ones((1, 4, 4, 1)), ["Ag_La"], value)
    with pytest.raises(InputError, match="pixel_size: .* must be positive and finite"):
        CompositionMaps(np.zeros((1, 4, 4, 1)), ["Ag"], value)


# ----- data that contradicts its stored experiment --------------------------------------------
def rewrite_experiment(path, change):
    """Change the experiment stored in an edstomo file (as a hand-edited or mixed-up file would have)."""
    with h5py.File(path, "r+") as file:
        definition = json.loads(file["experiment"][()])
        change(definition)
        del file["experiment"]
        file.create_dataset("experiment", data=json.dumps(definition), dtype=h5py.string_dtype("utf-8"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["scan"].update(positions=30), "positions 24 in the data, 30 positions in the experiment"),
        (lambda d: d["scan"].update(pixel_size="7 nm"), "pixel size 6 nm in the data, 7 nm in the experiment"),
        (lambda d: d.update(tilts={"start": "-60 deg", "stop": "60 deg", "step": "10 deg"}), "7 tilt angles in the "),
        (lambda d: d.update(tilts={"start": "-70 deg", "stop": "50 deg", "step": "20 deg"}), "tilt 0 is -60 deg in"),
        (lambda d: d.update(lines=["Ag_La", "Cu_Ka"]), "lines ['Au_Ma'] in the data are not among"),
    ],
)
def test_a_file_whose_experiment_contradicts_its_data_fails_to_load(small_series_file, tmp_path, change, message):
    path = tmp_path / "S.h5"
    path.write_bytes(small_series_file.read_bytes())
    rewrite_experiment(path, change)
    with pytest.raises(InputError, match="the stored experiment does not describe the data") as caught:
        load(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_solve_refuses_a_file_whose_experiment_contradicts_its_data(small_series_file, tmp_path):
    path = tmp_path / "S.h5"
    path.write_bytes(small_series_file.read_bytes())
    rewrite_experiment(path, lambda d: d["scan"].update(positions=30))
    result = run_edstomo("solve", path, "--out", tmp_path / "V.h5", "--set", "iterations=2", "--no-progress")
    assert result.returncode == 1
    assert "the stored experiment does not describe the data: positions 24 in the data, 30" in result.stderr
    assert not (tmp_path / "V.h5").exists()


def test_a_contradiction_is_refused_when_saving_too(small_series_file, small_experiment, tmp_path):
    series = TiltSeries.load(small_series_file)
    wrong = small_experiment.model_copy(update={"scan": small_experiment.scan.model_copy(update={"positions": 30})})
    with pytest.raises(InputError, match="positions 24 in the data, 30 positions"):
        series.replace(experiment=wrong).save(tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


# ----- values for lines that are not used -------------------------------------------------
def test_a_ratio_for_a_line_that_is_not_reconstructed_is_an_error(small_series_file, tmp_path):
    result = run_edstomo(
        "solve", small_series_file, "--out", tmp_path / "V.h5", "--solver", "hebt-sirt", "--set", "iterations=2",
        "--set", "ratios={Ag_La: 800, Au_Ma: 1000, Cu_Ka: 5}", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "edstomo solve: error: ratios: given for ['Ag_La', 'Au_Ma', 'Cu_Ka'], but the reconstructed lines are "
        "['Ag_La', 'Au_Ma'] (missing [], not used ['Cu_Ka'])"
    )  # checked before any Dask task, so no worker traceback either
    assert not (tmp_path / "V.h5").exists()
    series = TiltSeries.load(small_series_file)
    solver = plugins.solver("hebt-sirt")(iterations=1, ratios={"Ag_La": 800, "Au_Ma": 1000}, channels=["Ag_La"])
    with pytest.raises(InputError, match=r"not used \['Au_Ma'\]"):
        solver.solve(series)


def test_a_physics_override_for_a_line_that_is_not_used_is_an_error(small_experiment):
    result = run_edstomo(
        "physics", "--beam-energy", "80 keV", "Co_Ka", "--physics", "mcxray", "--set", "overrides={Zn_Ka: {p: 0.9}}"
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "edstomo physics: error: overrides: lines ['Zn_Ka'] are not among the experiment's lines ['Co_Ka']; "
        "an override of a line that is not used would be ignored"
    )
    model = plugins.physics("mcxray")(overrides={"Cu_Ka": {"p": 0.9}})
    with pytest.raises(EdstomoError, match=r"overrides: lines \['Cu_Ka'\] are not among the experiment's lines"):
        model.compute(small_experiment)
    used = plugins.physics("mcxray")(overrides={"Ag_La": {"p": 0.9}}).compute(small_experiment)
    assert used.parameters["Ag_La"].p == 0.9
