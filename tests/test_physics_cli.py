"""``edstomo physics``: the Table-2-like table, JSON output, options and error messages."""

from __future__ import annotations

import json

import pytest
from edstomo.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["physics", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_has_the_rows_of_table2_and_the_factors(capsys):
    code, out, _ = run(capsys, "--beam-energy", "80 keV", "Co_Ka", "Zn_Ka", "--efficiency", "0.96")
    assert code == 0
    for row in (
        "Elastic cross-section (barn)",
        "Ionization cross-section (barn)",
        "Fluorescence yield",
        "Relative intensity",
        "Detector efficiency",
        "f_A (b·mol/g)",
        "z_A (b·mol/g)",
    ):
        assert row in out
    f_row = next(line for line in out.splitlines() if line.startswith("f_A"))
    assert f_row.split()[-2:] == ["2.248", "1.836"]
    assert "(model: mcxray)" in out


def test_json_has_the_documented_keys_and_values(capsys):
    code, out, _ = run(capsys, "--beam-energy", "80 keV", "Co_Ka", "Zn_Ka", "--efficiency", "0.96", "--format", "json")
    assert code == 0
    lines = json.loads(out)["lines"]
    keys = {"sigma_ion_barn", "omega", "p", "epsilon", "sigma_ela_barn", "atomic_weight", "f", "z"}
    assert keys <= set(lines["Co_Ka"]) and keys <= set(lines["Zn_Ka"])
    assert lines["Co_Ka"]["f"] == pytest.approx(2.25, rel=5e-3)
    assert lines["Zn_Ka"]["z"] == pytest.approx(9.96e4, rel=5e-3)
    assert lines["Co_Ka"]["epsilon"] == 0.96


def test_options_reach_the_model(capsys):
    argv = ["--beam-energy", "100 keV", "Ag_La", "Au_Ma", "--format", "json"]
    _, out, _ = run(
        capsys,
        *argv,
        "--set",
        "overrides={Au_Ma: {p: 0.999, sigma_ion: 7460 b}}",
        "--set",
        "yields=xraylib",
        "--set",
        "cascade=coster-kronig",
    )
    lines = json.loads(out)["lines"]
    assert lines["Au_Ma"]["p"] == 0.999 and lines["Au_Ma"]["sigma_ion_barn"] == 7460
    assert lines["Ag_La"]["omega"] == pytest.approx(0.052)
    assert lines["Ag_La"]["sigma_ion_barn"] == pytest.approx(1.27 * 2443.8, rel=1e-3)
    _, out, _ = run(capsys, *argv, "--set", "elastic=wentzel-annular", "--haadf-inner", "50 mrad")
    wide = json.loads(out)["lines"]["Ag_La"]["sigma_ela_barn"]
    _, out, _ = run(capsys, *argv, "--set", "elastic=wentzel-annular")
    assert json.loads(out)["lines"]["Ag_La"]["sigma_ela_barn"] < wide
    _, out, _ = run(capsys, *argv, "--set", "efficiency=si3n4-window-sdd")
    assert 0.9 < json.loads(out)["lines"]["Ag_La"]["epsilon"] < 1


def test_table_model_is_selectable(capsys):
    code, out, _ = run(capsys, "--beam-energy", "80 keV", "Co_Ka", "--physics", "table")
    assert code == 0 and "(model: table)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--beam-energy", "-80 keV", "Co_Ka"], "--beam-energy: '-80 keV' must be a positive energy"),
        (["--beam-energy", "0 keV", "Co_Ka"], "--beam-energy: '0 keV' must be a positive energy"),
        (["--beam-energy", "80", "Co_Ka"], "--beam-energy: '80' has no unit"),
        (["--beam-energy", "80 keV", "Xx_Ka"], "unknown element symbol 'Xx'"),
        (["--beam-energy", "80 keV", "Co_Kz"], "'Co_Kz' has unknown family 'Kz'"),
        (["--beam-energy", "60 keV", "Au_Ka"], "Au_Ka cannot be excited: the K edge of Au is at 80.96 keV"),
        (["--beam-energy", "80 keV", "Co_Ka", "--efficiency", "1.5"], "--efficiency: 1.5 must lie in (0, 1]"),
        (["--beam-energy", "80 keV", "Co_Ka", "--set", "Co_Ka"], "expected KEY=VALUE"),
        (
            ["--beam-energy", "80 keV", "Co_Ka", "--physics", "table", "--set", "yields=eadl"],
            "physics 'table': option 'yields' = 'eadl': not an option of physics 'table'",
        ),
        (["--beam-energy", "80 keV", "Co_Ka", "--physics", "nope"], "unknown plugin 'nope'"),
        (
            ["--beam-energy", "80 keV", "Co_Ka", "--set", "overrides={Co_Ka: {p: 1.5}}"],
            "overrides['Co_Ka'].p: 1.5 must be a number in (0, 1]",
        ),
        (["--beam-energy", "80 keV", "Co_Ka", "--set", "cascade=1"], "option 'cascade' = 1: expected 'none'"),
        (["--beam-energy", "80 keV", "Co_Ka", "--haadf-inner", "700 mrad"], "must exceed inner_angle 700 mrad"),
    ],
)
def test_errors_are_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("edstomo physics: error: ") and len(err.strip().splitlines()) == 1
    assert message in err
