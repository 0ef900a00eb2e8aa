"""The documentation: the Sphinx build passes with warnings as errors, the gallery runs, the API reference covers
every public name of edstomo, the CLI reference every command, and the tutorial's commands work as written.

Skipped only when the docs tools (extra ``docs``, part of ``tests``) are absent.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import edstomo as et
import pytest

pytest.importorskip("sphinx")
pytest.importorskip("numpydoc")
pytest.importorskip("sphinx_gallery")
pytest.importorskip("myst_parser")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
from edstomo_reference import PACKAGES, public_modules  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The HTML site, built from a copy of docs/ and examples/ (the source tree stays clean)."""
    work = tmp_path_factory.mktemp("docs")
    generated = shutil.ignore_patterns("_build", "_generated", "auto_examples", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT / "docs", work / "docs", ignore=generated)
    shutil.copytree(ROOT / "examples", work / "examples", ignore=generated)
    out = work / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(work / "docs"), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=work)
    assert done.returncode == 0, f"sphinx failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return out


def _inventory(built: Path) -> set[str]:
    from sphinx.util.inventory import InventoryFile

    with open(built / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    return (
        {name for group in inventory.values() for name in group}
        if isinstance(inventory, dict)
        else set(
            item.name
            for item in inventory  # pragma: no cover - newer Sphinx
        )
    )


def test_build_passes_with_warnings_as_errors_and_runs_the_gallery(built):
    assert (built / "index.html").is_file()
    for page in ("install", "tutorial", "real-data", "files", "plugins", "physics", "method", "performance"):
        assert (built / f"{page}.html").is_file(), page
    examples = sorted((built / "auto_examples").glob("plot_*.html"))
    assert len(examples) >= 3
    assert list((built / "_images").glob("sphx_glr_plot_01_quickstart_*.png")), "the gallery did not run"


def test_api_reference_covers_every_public_name_of_edstomo(built):
    documented = _inventory(built)
    import edstomo

    missing = [f"edstomo.{name}" for name in edstomo.__all__ if f"edstomo.{name}" not in documented]
    for package in PACKAGES:
        for module_name in public_modules(package):
            if module_name not in documented:
                missing.append(module_name)
                continue
            module = importlib.import_module(module_name)
            for name in getattr(module, "__all__", []):
                if f"{module_name}.{name}" not in documented:
                    missing.append(f"{module_name}.{name}")
    assert missing == []


def test_cli_reference_shows_every_command_and_its_defaults(built):
    from edstomo.cli import build_parser

    page = (built / "_generated" / "cli.html").read_text(encoding="utf-8")
    [commands] = [a.choices for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
    assert {"simulate", "solve", "reconstruct", "quantify", "view"} <= set(commands)
    for name in commands:
        assert f"edstomo {name}" in page, name
    assert "(default: 2)" in page  # --rebin of reconstruct: defaults are printed


def test_tutorial_commands_run_as_written(tmp_path):
    """The YAML and every shell command of docs/tutorial.md, run in an empty folder."""
    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    [experiment] = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    (tmp_path / "my-experiment.yaml").write_text(experiment, encoding="utf-8")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()]
    commands = [c.split("#")[0].strip() for c in commands if c.strip() and not c.startswith("#")]
    assert commands[0].startswith("edstomo simulate my-experiment.yaml")
    edstomo = str(Path(sys.executable).with_name("edstomo"))
    for command in commands:
        if command.startswith("edstomo "):
            command = edstomo + command.removeprefix("edstomo")
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    summary = json.loads((tmp_path / "maps" / "quantify_summary.json").read_text(encoding="utf-8"))
    assert set(summary["thresholds"]) == {"sirt", "hebt-sirt"}
    assert (tmp_path / "maps" / "hspy" / "maps_hebt-sirt_Ni.hspy").is_file()
    # the user's own elements and phantom, the default physics (mcxray), weight fractions between the regions'
    series = et.load(tmp_path / "series.h5")
    assert series.channels == ["HAADF", "Fe_Ka", "Ni_Ka"] and series.provenance[0]["plugin"] == "mcxray"
    phantom = next(s for s in series.provenance[-1]["parameters"]["phantom_provenance"] if s["action"] == "phantom")
    assert phantom["plugin"] == "shapes"
    for method in ("sirt", "hebt-sirt"):
        mean_ni = summary["findings"][method]["elements"]["Ni"]["mean_weight_fraction"]
        assert 0.25 < mean_ni < 0.5  # mostly the 75/25 Fe/Ni body, some of the 25/75 inclusion
    assert (tmp_path / "maps" / "view").is_dir() or (tmp_path / "maps" / "figures").is_dir()


def test_plugin_how_tos_run(tmp_path):
    """Every Python block of docs/plugins.md after "How-to", run in order as one script (in its own process, so
    the plugins it registers stay out of the other tests)."""
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    how_to = text[text.index("## How-to, one per kind") :]
    blocks = re.findall(r"```python\n(.*?)```", how_to, flags=re.S)
    assert len(blocks) >= 9  # the shared experiment, one per kind, and the command
    checks = """
assert measured.parameters["Au_Ma"].omega == 0.025 and factors.parameters["Au_Ma"].omega != 0.025
assert volume.channels == ["Ag_La", "Au_Ma"] and maps.elements == ["Ag", "Au"]
print("how-tos ran")
"""
    script = tmp_path / "how_to.py"
    script.write_text("\n\n".join(blocks) + checks, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "how-tos ran" in done.stdout
