"""Issue 10, "Tracebacks and unclear messages": each case the issue lists gives one clear line (exit 1)
through the real ``edstomo`` command, or is accepted where it should be ("200 kV")."""

from __future__ import annotations

import json
import os
import warnings

import pytest
from conftest import run_edstomo
from edstomo.cli import main
from edstomo.experiment import Experiment, ExperimentError
from edstomo.units import UnitNote


def one_line(result, command):
    """The single stderr line of a failed command (after any progress lines), checked for the usual form."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "<Quantity(" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"edstomo {command}: error: "), line
    return line.removeprefix(f"edstomo {command}: error: ")


def test_an_unknown_unit_in_a_mapping_names_the_field(small_experiment, tmp_path):
    path = tmp_path / "exp.json"
    definition = small_experiment.to_dict() | {"beam_energy": {"magnitude": 100, "units": "zzz"}}
    path.write_text(json.dumps(definition))
    message = one_line(run_edstomo("simulate", path, "--out", tmp_path / "S.h5"), "simulate")
    assert message == (
        f"experiment file {str(path)!r}: beam_energy: cannot read the units 'zzz' ('zzz' is not defined in the unit "
        "registry); expected a quantity in keV"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.yaml", "beam_energy: [100 keV\nlines: x\n", "not valid YAML/JSON (while parsing a flow sequence"),
        ("tag.yaml", "!!python/object:os.system {}\n", "not valid YAML/JSON (could not determine a constructor"),
        ("empty.json", "", "not valid JSON (Expecting value at line 1 column 1)"),
        ("empty.yaml", "", "the file is empty"),
        ("list.json", "[1, 2]", "expected a mapping of sections, got list"),
        ("binary.yaml", "\udcff", "is not UTF-8 text"),
    ],
)
def test_malformed_and_empty_experiment_files_are_named(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    message = one_line(run_edstomo("simulate", path, "--out", tmp_path / "S.h5"), "simulate")
    assert str(path) in message and expected in message


def test_an_existing_folder_at_out_is_refused_before_solving(small_series_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "V.h5").mkdir()
    message = one_line(run_edstomo("solve", small_series_file, "--out", tmp_path / "V.h5"), "solve")
    assert message == f"--out: {str(tmp_path / 'V.h5')!r} is a folder; expected a regular file name"
    import edstomo.distributed

    monkeypatch.setattr(edstomo.distributed, "solve_file", lambda *a, **k: pytest.fail("solved before the check"))
    assert main(["solve", str(small_series_file), "--out", str(tmp_path / "V.h5")]) == 1


def test_a_folder_that_cannot_be_written_is_refused_before_computing(small_experiment, tmp_path):
    experiment = small_experiment.save(tmp_path / "exp.yaml")
    if os.geteuid() == 0:  # permission bits do not stop root; a kernel file system does
        folder = "/proc"
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    message = one_line(run_edstomo("simulate", experiment, "--out", f"{folder}/S.h5"), "simulate")
    assert message.startswith(f"--out: folder {str(folder)!r} is not writable (")
    assert message.endswith("so 'S.h5' cannot be written")
    study = one_line(run_edstomo("study", "yuan2020-phantom", "--out", f"{folder}/run", "--set", "quick=true"), "study")
    assert "is not writable" in study


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--set", "hebt-sirt.alpha=1.0", "solver 'hebt-sirt': option 'alpha' = 1.0: "),
        ("--pixel-size", "-1 nm", "pixel_size: '-1 nm' must be one positive, finite value (in nm)"),
        ("--solid-angle", "30 deg", "solid_angle: '30 deg' is not a solid angle (sr, msr)"),
        ("--beam-energy", "200 V/m", "beam_energy: '200 V/m' has unit"),
    ],
)
def test_reconstruct_options_are_checked_before_any_file_is_read(tmp_path, monkeypatch, option, value, expected):
    folder = tmp_path / "tilts"
    folder.mkdir()
    (folder / "0.bcf").write_bytes(b"not read: the options are checked first")
    message = one_line(run_edstomo("reconstruct", folder, "--out", tmp_path / "run", option, value), "reconstruct")
    assert message.startswith(expected), message
    pipeline = pytest.importorskip("edstomo_microscope.pipeline")
    monkeypatch.setattr(pipeline, "load_tilt_series", lambda *a, **k: pytest.fail("read before the options checks"))
    assert main(["reconstruct", str(folder), "--out", str(tmp_path / "run"), option, value]) == 1


def test_an_unknown_plugin_kind_is_named():
    result = run_edstomo("plugins", "nope")
    assert result.returncode == 2  # a usage error: the kinds are the argument's choices
    assert "argument kind: invalid choice: 'nope' (choose from 'physics', 'phantom', 'forward'" in result.stderr
    unknown = run_edstomo("plugins", "solver", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("edstomo plugins: error: solver: unknown plugin 'nope'")


@pytest.mark.parametrize(
    ("eds", "pixel", "field"),
    [
        ({"probe_current": "1e300 pA", "dwell_time": "1e300 s"}, "6 nm", "eds"),  # overflow: inf electrons
        ({"fluence": "1e-300 e/Å**2"}, "1e-300 nm", "(haadf|eds)"),  # underflow: 0 electrons
        ({"electrons_per_pixel": "1e300 e"}, "1e-300 nm", "(haadf|eds)"),  # division by an underflowed area
        ({"fluence": "1e300 e/Å**2"}, "1e300 nm", "(haadf|eds)"),  # (the HAADF dose meets that pixel size too)
    ],
)
def test_doses_derived_from_extreme_values_are_refused_with_the_field(small_experiment, tmp_path, eds, pixel, field):
    definition = small_experiment.to_dict()
    definition["eds"] = {**eds, "solid_angle": "0.7 sr"}
    definition["scan"]["pixel_size"] = pixel
    with pytest.raises(ExperimentError, match=rf"^{field}: the (electrons per pixel|fluence) derived from the dose"):
        Experiment.model_validate(definition)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(definition))
    message = one_line(run_edstomo("simulate", path, "--out", tmp_path / "S.h5"), "simulate")
    assert "outside any physical range" in message


def test_200_kv_is_accepted_as_the_beam_energy_with_a_note(small_experiment, tmp_path):
    definition = small_experiment.to_dict() | {"beam_energy": "100 kV"}
    with pytest.warns(UnitNote, match=r"beam_energy: '100 kV' is an accelerating voltage; read as .* 100 keV"):
        experiment = Experiment.model_validate(definition)
    assert experiment.beam_energy.m_as("keV") == pytest.approx(100.0)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(definition))
    result = run_edstomo("simulate", path, "--out", tmp_path / "S.h5")
    assert result.returncode == 0, result.stderr
    assert "edstomo simulate: note: beam_energy: '100 kV' is an accelerating voltage" in result.stderr
    physics = run_edstomo("physics", "--beam-energy", "200 kV", "Fe_Ka", "--format", "json")
    assert physics.returncode == 0, physics.stderr
    assert json.loads(physics.stdout)["beam_energy"] == "200.0 keV"
    assert "note: --beam-energy: '200 kV' is an accelerating voltage" in physics.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitNote)
        assert Experiment.model_validate(small_experiment.to_dict()).beam_energy.m_as("keV") == 100.0  # no note


def test_usage_errors_keep_exit_code_2(tmp_path):
    result = run_edstomo("simulate", "--out", tmp_path / "S.h5", "--seed", "abc")
    assert result.returncode == 2 and "invalid int value: 'abc'" in result.stderr
