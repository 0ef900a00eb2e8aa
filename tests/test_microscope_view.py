"""``edstomo view``: napari layers (element names, colour maps, voxel size) or figures when headless."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from edstomo.cli import main
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo_microscope.viewer import NAPARI_COLOURMAPS, find_results, layers, open_napari, view

pytest.importorskip("matplotlib")


def maps(scale: float = 1.0) -> CompositionMaps:
    z, x, _ = np.indices((12, 12, 6))
    mask = (z >= 2) & (z < 10)
    fe = np.where((z - 5) ** 2 + (x - 7) ** 2 < 9, 0.8, 0.2) * mask * scale
    return CompositionMaps(np.stack([fe, mask - fe]), ["Fe", "S"], "3 nm", mask=mask)


@pytest.fixture
def result(tmp_path):
    maps().save(tmp_path / "maps_eds.h5")
    maps(0.9).save(tmp_path / "maps_hebt.h5")
    Volume(np.ones((2, 12, 12, 6)), ["Fe_Ka", "S_Ka"], "3 nm").save(tmp_path / "volume_eds.h5")
    return tmp_path


def test_results_prefer_maps_and_layers_carry_names_colours_and_voxel_size(result):
    found = find_results(result)
    assert sorted(found) == ["eds", "hebt"] and all(isinstance(v, CompositionMaps) for v in found.values())
    made = layers(found)
    assert [layer["name"] for layer in made] == ["Fe (eds)", "S (eds)", "Fe (hebt)", "S (hebt)"]
    assert [layer["colormap"] for layer in made] == list(NAPARI_COLOURMAPS[:4])
    assert all(layer["scale"] == (3.0, 3.0, 3.0) and layer["contrast_limits"] == (0.0, 1.0) for layer in made)
    np.testing.assert_array_equal(made[2]["data"], maps(0.9).fraction("Fe").astype(np.float32))
    only = layers(found, elements=["S"])
    assert [layer["name"] for layer in only] == ["S (eds)", "S (hebt)"]
    with pytest.raises(ValueError, match="elements"):
        layers(found, elements=["Pt"])
    volume = find_results(result / "volume_eds.h5")
    assert [layer["name"] for layer in layers(volume)] == ["Fe_Ka (eds)", "S_Ka (eds)"]


def test_results_that_cannot_be_viewed_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no"):
        find_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_results(tmp_path / "missing")
    series = TiltSeries(np.ones((1, 3, 4, 2)), ["Fe_Ka"], ["0 deg", "10 deg", "20 deg"], "1 nm")
    with pytest.raises(ValueError, match="TiltSeries"):
        find_results(series.save(tmp_path / "series.h5"))


def test_napari_viewer_gets_one_layer_per_element(result, monkeypatch):
    calls = []

    class Viewer:
        def __init__(self, **options):
            calls.append(("viewer", options))
            self.dims = types.SimpleNamespace(axis_labels=None)
            self.scale_bar = types.SimpleNamespace(visible=False, unit=None)

        def add_image(self, data, **options):
            calls.append(("image", data.shape, options))

    monkeypatch.setitem(sys.modules, "napari", types.SimpleNamespace(Viewer=Viewer, run=lambda: None))
    viewer = open_napari(find_results(result), elements=["Fe"])
    assert calls[0] == ("viewer", {"ndisplay": 3, "title": "edstomo"})
    images = [c for c in calls if c[0] == "image"]
    assert [c[2]["name"] for c in images] == ["Fe (eds)", "Fe (hebt)"]
    assert all(c[1] == (12, 12, 6) and c[2]["scale"] == (3.0, 3.0, 3.0) for c in images)
    assert images[0][2]["colormap"] != images[1][2]["colormap"]
    assert viewer.dims.axis_labels == ("z", "x", "y") and viewer.scale_bar.unit == "nm"


def test_headless_view_writes_the_figures(result, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    outcome = view(result)
    assert outcome.mode == "figures"
    assert any(word in outcome.reason for word in ("no display", "not installed"))
    assert {p.name for p in outcome.files} >= {"orthoslices_eds.png", "orthoslices_hebt.png", "volume_hebt.png"}
    assert all(p.parent == result / "view" for p in outcome.files)
    assert main(["view", str(result / "volume_eds.h5"), "--out", str(result / "v"), "--figure-format", "pdf"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 figure(s)" in printed and (result / "v" / "volume_eds.pdf").is_file()
    assert main(["view", str(result / "nothing")]) == 1
