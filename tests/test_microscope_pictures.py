"""Pictures of tilt series and weight-fraction volumes (edstomo_microscope.pictures), checked panel by panel."""

from __future__ import annotations

import importlib.util

import edstomo as et
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from edstomo import figures
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo_microscope.pictures import (
    COLOURS,
    colour_composite,
    colour_limits,
    composite_figure,
    figures_from_folder,
    orthoslice_figure,
    pipeline_figures,
    plane_indices,
    view3d,
    volume_figure,
    volume_orthoslice_figure,
)


@pytest.fixture
def maps() -> CompositionMaps:
    z, x, y = np.indices((16, 16, 10))
    ball = (z - 5) ** 2 + (x - 11) ** 2 + (y - 6) ** 2 < 9  # an Fe-rich ball off centre
    mask = (z >= 3) & (z < 13)
    fe = np.where(ball, 0.8, 0.1) * mask
    return CompositionMaps(np.stack([fe, mask - fe]), ["Fe", "Si"], "2 nm", mask=mask)


def series() -> TiltSeries:
    rng = np.random.default_rng(0)
    angles = et.ureg.Quantity(np.linspace(-40, 40, 5), "deg")
    return TiltSeries(rng.uniform(0, 5, (3, 5, 16, 10)), ["HAADF", "Fe_Ka", "Si_Ka"], angles, "2 nm")


def test_plane_indices_find_the_section_and_the_rich_region(maps):
    # the first depth of the (uniform) section, the centre of mass across (7.5) and along (4.5) the axis
    assert plane_indices(maps) == (3, 8, 4)
    assert plane_indices(maps, "Fe") == (5, 11, 6)


def test_colour_composite_adds_scaled_colours():
    red = np.array([[0.0, 2.0], [1.0, 2.0]])
    green = np.array([[4.0, 0.0], [4.0, 0.0]])
    rgb = colour_composite([red, green], [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], percentile=100)
    np.testing.assert_allclose(rgb[..., 0], red / 2)
    np.testing.assert_allclose(rgb[..., 1], green / 4)
    assert rgb.min() >= 0 and rgb.max() <= 1 and not rgb[..., 2].any()
    shared = colour_composite([red, green], [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)], tops=[1.0, 8.0])
    np.testing.assert_allclose(shared[..., 0], np.clip(red, 0, 1))
    np.testing.assert_allclose(shared[..., 1], green / 8)
    with pytest.raises(ValueError, match="colours"):
        colour_composite([red] * (len(COLOURS) + 1))


def test_colour_limits_are_shared_and_stated(maps):
    other = maps.replace(weight_fractions=maps.weight_fractions * np.array([0.5, 1.0])[:, None, None, None])
    limits = colour_limits([maps, other], ["Fe", "Si"])
    inside = np.concatenate([maps.fraction("Fe")[maps.mask], other.fraction("Fe")[other.mask]])
    assert limits["Fe"][1] == pytest.approx(np.percentile(inside, 99.5))
    assert "99.5th percentile" in limits["Fe"][2] and "maximum 0.8" in limits["Fe"][2]
    full = colour_limits([maps], ["Fe"], percentile=None)
    assert full["Fe"][1] == pytest.approx(0.8) and "full range" in full["Fe"][2]


def _checked(path) -> dict:
    description, dpi = figures.read_description(path)
    assert figures.problems(description, dpi=dpi) == [], path.name
    assert dpi >= 150
    return description


def test_every_pipeline_figure_has_scales_colour_bars_and_150_dpi(maps, tmp_path):
    hebt = maps.replace(weight_fractions=maps.weight_fractions * 0.9)
    paths = pipeline_figures(tmp_path, series=series(), maps={"eds": maps, "hebt": hebt}, formats=("svg",))
    names = sorted(p.name for p in paths)
    assert names == [
        "composite_eds.png",
        "composite_hebt.png",
        "orthoslices_eds.png",
        "orthoslices_hebt.png",
        "tilts.png",
        "volume_hebt.png",
    ]
    described = {p.name: _checked(p) for p in paths}
    assert all(p.with_suffix(".svg").is_file() for p in paths)
    # methods side by side: the same planes and the same colour limits
    eds, hebt_panels = described["orthoslices_eds.png"]["panels"], described["orthoslices_hebt.png"]["panels"]
    assert [p["title"] for p in eds] == [p["title"] for p in hebt_panels]
    assert [p["limits"] for p in eds] == [p["limits"] for p in hebt_panels]
    assert {p["colorbar"] for p in eds} == {"Fe weight fraction", "Si weight fraction"}
    tilts = described["tilts.png"]["panels"]
    assert len(tilts) == 3 * 3 and {p["colorbar"] for p in tilts} == {
        "HAADF intensity (arb. units)",
        "Counts per pixel",
    }


def test_figures_without_scalebar_package_have_nm_axes(maps, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "has_scalebar_package", lambda: False)
    description = _checked(orthoslice_figure(maps, title="test", path=tmp_path / "ortho.png"))
    assert {p["scale"] for p in description["panels"]} == {"axes"}
    assert all(p["axis_units"] == ["length", "length"] for p in description["panels"])


@pytest.mark.skipif(not figures.has_scalebar_package(), reason="matplotlib-scalebar is not installed")
def test_figures_with_scalebar_package_draw_scale_bars(maps, tmp_path):
    description = _checked(composite_figure(maps, ["Fe", "Si"], path=tmp_path / "composite.png"))
    assert {p["scale"] for p in description["panels"]} == {"scale bar"}


def test_problems_name_what_a_figure_lacks(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(np.ones((4, 4)))
    path = figures.save(fig, tmp_path / "bare.png")
    description, _ = figures.read_description(path)
    found = figures.problems(description, dpi=80)
    assert any("dpi" in p for p in found)
    assert any("scale bar" in p for p in found) and any("colour bar" in p for p in found)
    with pytest.raises(ValueError, match="dpi"):
        figures.save(plt.figure(), tmp_path / "coarse.png", dpi=80)
    with pytest.raises(ValueError, match="limits"):
        figures.image_panel(plt.figure().add_subplot(), np.ones((2, 2)), 1.0)


def test_volume_figures_and_folders(maps, tmp_path):
    _checked(volume_figure(maps, ["Fe"], levels=[0.5], step=1, path=tmp_path / "volume.png"))
    volume = Volume(np.stack([maps.fraction("Fe"), -0.1 * maps.fraction("Si")]), ["Fe_Ka", "Si_Ka"], "2 nm")
    description = _checked(volume_orthoslice_figure(volume, path=tmp_path / "v.png"))
    assert description["panels"][3]["limits"][0] < 0  # negative values of a reconstruction are shown
    (tmp_path / "run").mkdir()
    maps.save(tmp_path / "run" / "maps_hebt.h5")
    written = figures_from_folder(tmp_path / "run", formats=("pdf",))
    assert sorted(p.name for p in written) == ["composite_hebt.png", "orthoslices_hebt.png", "volume_hebt.png"]
    assert all(p.with_suffix(".pdf").is_file() for p in written)


@pytest.mark.skipif(importlib.util.find_spec("pyvista") is not None, reason="pyvista is installed")
def test_missing_viewer_is_named(maps):
    with pytest.raises(ImportError, match="pyvista"):
        view3d(maps, backend="pyvista")
    with pytest.raises(ValueError, match="backend"):
        view3d(maps, backend="napari")
