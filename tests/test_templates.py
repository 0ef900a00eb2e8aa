"""The plugin templates in examples/ install as third-party packages and work everywhere a built-in does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import edstomo as et
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "openNCEM_L2083-K-4-1_EDS_tilt_series"


def _install(template: str, target: Path) -> dict[str, str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(ROOT / "examples" / template)],
        check=True,
    )  # fmt: skip
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def _edstomo(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edstomo.cli", *argv], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def solver_env(tmp_path_factory):
    return _install("solver-template", tmp_path_factory.mktemp("site"))


def test_solver_template_is_short():
    lines = (ROOT / "examples" / "solver-template" / "src" / "edstomo_landweber" / "solver.py").read_text().splitlines()
    assert len(lines) <= 80


def test_solver_template_passes_the_conformance_suite_and_is_listed(solver_env):
    code = (
        "from edstomo.testing import check_solver\n"
        "from edstomo_landweber.solver import LandweberSolver\n"
        "check_solver(LandweberSolver, iterations=5)\n"
        "import edstomo as et\n"
        "print(et.plugins.solver('landweber') is LandweberSolver)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=solver_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    listing = _edstomo(solver_env, "plugins", "solver", "landweber")
    assert "step : float (> 0, < 2) = 1.0" in listing.stdout and "iterations : int" in listing.stdout


def test_solver_template_solves_on_dask_with_progress_and_provenance(solver_env, tmp_path):
    series = tmp_path / "s.h5"
    assert _edstomo(solver_env, "simulate", "--out", str(series), "--physics", "table").returncode == 0
    out = tmp_path / "v.h5"
    run = _edstomo(
        solver_env, "solve", str(series), "--out", str(out), "--solver", "landweber", "--set", "iterations=4",
        "--chunk-slices", "1", "--workers", "1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    volume = et.load(out)
    step = next(s for s in volume.provenance if s["action"] == "reconstruct")
    assert step["plugin"] == "landweber" and step["parameters"]["iterations_run"] == 4
    assert volume.factor == "f_A" and volume.provenance[-1]["action"] == "distributed"
    code = (
        "import edstomo as et, numpy as np, sys\n"
        "v = et.plugins.solver('landweber')(iterations=4).solve(et.load(sys.argv[1]))\n"
        "np.save(sys.argv[2], v.data)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(series), str(tmp_path / "x.npy")], check=True, env=solver_env)
    np.testing.assert_allclose(volume.data, np.load(tmp_path / "x.npy"), rtol=1e-5, atol=1e-6 * volume.data.max())
    quiet = _edstomo(solver_env, "solve", str(series), "--out", str(tmp_path / "w.h5"), "--solver", "landweber",
                     "--set", "iterations=2", "--set", "step=3")  # fmt: skip
    assert quiet.returncode != 0 and "option 'step' = 3" in quiet.stderr


@pytest.mark.skipif(not DATA.is_dir(), reason="the shared openNCEM data set is not available")
def test_solver_template_reconstructs_and_quantifies_real_data(solver_env, tmp_path):
    pytest.importorskip("hyperspy")
    files = [str(DATA / f"{angle}.bcf") for angle in (-40, -20, 0, 20)]
    run = _edstomo(
        solver_env, "reconstruct", *files, "--out", str(tmp_path / "rec"), "--rebin", "16", "--no-figures",
        "--solver", "landweber", "--set", "landweber.iterations=5", "--axis", "none",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "reconstruct-landweber" in run.stderr
    run = _edstomo(solver_env, "quantify", str(tmp_path / "rec"), "--out", str(tmp_path / "q"), "--no-figures")
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "q" / "quantify_summary.json").read_text())
    assert list(summary["thresholds"]) == ["landweber"]
    maps = et.load(tmp_path / "q" / "maps_landweber.h5")
    assert maps.provenance[-1]["plugin"] == et.plugins.quantifier_for("f_A").name
    np.testing.assert_allclose(maps.weight_fractions.sum(axis=0)[maps.particle_mask], 1.0, rtol=1e-6)
