import subprocess
import sys

import numpy as np
import pytest
from edstomo import TiltSeries
from edstomo.cli import main
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment


def test_simulate_with_the_built_in_default(tmp_path, capsys):
    out = tmp_path / "data.h5"
    assert main(["simulate", "--out", str(out), "--seed", "3"]) == 0
    series = TiltSeries.load(out)
    assert series.shape == (3, 31, 97, 1)
    assert series.experiment.name == "yuan2020-phantom"
    assert "wrote" in capsys.readouterr().out


def test_simulate_from_a_yaml_file_is_reproducible(tmp_path):
    exp = yuan2020_phantom_experiment().model_copy(update={"name": "mine"})
    path = exp.save(tmp_path / "exp.yaml")
    for name in ("a.h5", "b.h5"):
        assert main(["simulate", str(path), "--out", str(tmp_path / name), "--seed", "1"]) == 0
    a, b = TiltSeries.load(tmp_path / "a.h5"), TiltSeries.load(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.data, b.data)
    assert a.experiment.name == "mine"


def test_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x.h5")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yuan2020_phantom_experiment().to_yaml().replace("100.0 keV", "100"))
    assert main(["simulate", str(bad), "--out", str(tmp_path / "x.h5")]) == 1
    assert "beam_energy: 100 has no unit; expected a quantity in keV" in capsys.readouterr().err
    assert main(["simulate", "--phantom", "nope", "--out", str(tmp_path / "x.h5")]) == 1
    assert "available: " in capsys.readouterr().err


def test_plugins_lists_kind_name_and_description():
    out = subprocess.run([sys.executable, "-m", "edstomo.cli", "plugins"], capture_output=True, text=True, check=True)
    rows = [line.replace(" * ", " ").split(None, 2) for line in out.stdout.splitlines()[:-1]]
    assert ["forward", "thin-film"] == rows[[r[1] for r in rows].index("thin-film")][:2]
    assert all(len(r) == 3 for r in rows)
    assert out.stdout.splitlines()[-1] == "(* the default of its kind)"
    assert any(line.startswith("solver") and " * sirt " in line for line in out.stdout.splitlines())


def test_plugins_shows_the_options_of_one_plugin():
    out = subprocess.run(
        [sys.executable, "-m", "edstomo.cli", "plugins", "solver", "hebt-sirt"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "alpha : float (>= 0, < 1) | 'auto' = 0.8" in out.stdout
    assert "ratios : dict[str, float (> 0)] | None = None" in out.stdout


@pytest.mark.parametrize("argv", [["--version"], ["plugins", "--help"]])
def test_help_and_version(argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
