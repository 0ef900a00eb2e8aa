"""Acceptance: overlapping line families, end to end through ``edstomo quantify``, fitting against windows.

A synthetic spectrum-image tilt series (edstomo_microscope.synthetic) of a 3-D
core–shell particle at 80 keV: a Co 60 / Ni 30 / Zn 10 wt% core (Co Kβ at
7.649 keV sits 170 eV above Ni Kα) inside a Ba 50 / Ti 30 / Ni 20 wt% shell
(Ba Lα at 4.466 keV lies 45 eV below Ti Kα; Ti Kβ among Ba's Lβ lines). Every
K, L and M family with its relative intensities, a continuum, Poisson noise;
40 × 40 × 40 voxels of 2 nm, 29 tilts from −70° to 70°, one HyperSpy file per
tilt. Alignment is switched off (the files are aligned) and EDS-only SIRT runs
200 iterations: on noise-free line counts this reconstruction alone puts the
interior means within 0.1 wt% of the truth, so what remains is the line
intensities' doing. Interior: farther than 3 voxels from every surface and
interface.

Measured (``python benchmarks/line_intensities.py``, 2 cores, load average 3):
window integration is off by up to 19.5 wt% in the shell (Ba counted as Ti)
and by 1.4 wt% in the core (Co −1.41, Ni +1.45: the Co Kβ tail counted as
Ni — at this size less than the 1.5 wt% the issue measured, hence the Ba/Ti
shell); fitting is within 0.2 wt% everywhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("hyperspy")
pytest.importorskip("exspy")

from edstomo.cli import main
from edstomo.data import load
from edstomo_microscope.metadata import MetadataWarning
from edstomo_microscope.synthetic import Region, core_shell_labels, region_means, write_spectrum_series

LINES = ["Ti_Ka", "Co_Ka", "Ni_Ka", "Zn_Ka", "Ba_La"]
REGIONS = {
    1: Region("core", {"Co": 0.6, "Ni": 0.3, "Zn": 0.1}, density=8.9),
    2: Region("shell", {"Ba": 0.5, "Ti": 0.3, "Ni": 0.2}, density=6.0),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    labels = core_shell_labels(40, 40, core_radius=9, shell_radius=17)
    folder = tmp_path_factory.mktemp("overlaps") / "tilts"
    return write_spectrum_series(
        folder, labels, REGIONS, LINES, angles_deg=np.arange(-70, 71, 5), electrons_per_pixel=5e8, seed=4
    )


def quantify(synthetic, out, *options):
    arguments = ["quantify", str(synthetic.files[0].parent), "--out", str(out), "--lines", ",".join(LINES)]
    arguments += ["--rebin", "1", "--series", "none", "--axis", "none", "--set", "sirt.iterations=200", "--no-figures"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        assert main([*arguments, *options]) == 0
    means = region_means(load(out / "maps_sirt.h5"), synthetic.labels, margin=3)
    counts = next(s for s in load(out / "tilt_series_raw.h5").provenance if s["action"] == "load")
    ratios = {line: sum(counts["parameters"]["line_counts"][line]) / synthetic.line_counts[line] for line in LINES}
    errors = {
        label: {element: means[label][element] - truth for element, truth in synthetic.truth[label].items()}
        for label in synthetic.truth
    }
    return errors, ratios


def test_fitting_recovers_interior_means_within_half_a_weight_percent(synthetic, tmp_path):
    errors, ratios = quantify(synthetic, tmp_path / "fit")  # --intensities fit is the default
    worst = max(abs(e) for region in errors.values() for e in region.values())
    assert worst < 0.005, errors
    # the line counts of the whole series, against the noise-free truth (Zn, absent from the shell,
    # keeps the positive bias of the non-negativity: about 1 %)
    assert all(abs(ratio - 1) < 0.02 for ratio in ratios.values()), ratios


def test_window_integration_is_off_by_more_than_one_and_a_half_weight_percent(synthetic, tmp_path):
    errors, ratios = quantify(synthetic, tmp_path / "window", "--intensities", "window")
    assert ratios["Ba_La"] > 2 and ratios["Ti_Ka"] > 1.2, ratios  # each window holds both peaks
    assert errors[2]["Ti"] < -0.015 and errors[2]["Ba"] > 0.015, errors  # Ba Lα counted as Ti Kα
    assert errors[1]["Ni"] > 0.005 and errors[1]["Co"] < -0.005, errors  # Co Kβ counted as Ni Kα
