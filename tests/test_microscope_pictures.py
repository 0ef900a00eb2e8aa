"""Pictures of weight-fraction volumes (edstomo_microscope.pictures)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from edstomo.data import CompositionMaps
from edstomo_microscope.pictures import (
    COLOURS,
    colour_composite,
    composite_figure,
    orthoslice_figure,
    plane_indices,
    view3d,
    volume_figure,
)


@pytest.fixture
def maps() -> CompositionMaps:
    z, x, y = np.indices((16, 16, 10))
    ball = (z - 5) ** 2 + (x - 11) ** 2 + (y - 6) ** 2 < 9  # an Fe-rich ball off centre
    mask = (z >= 3) & (z < 13)
    fe = np.where(ball, 0.8, 0.1) * mask
    return CompositionMaps(np.stack([fe, mask - fe]), ["Fe", "Si"], "2 nm", mask=mask)


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
    with pytest.raises(ValueError, match="colours"):
        colour_composite([red] * (len(COLOURS) + 1))


def test_figures_are_written(maps, tmp_path):
    paths = [
        orthoslice_figure(maps, title="test", path=tmp_path / "ortho.png"),
        composite_figure(maps, ["Fe", "Si"], path=tmp_path / "composite.png"),
        volume_figure(maps, ["Fe"], levels=[0.5], step=1, path=tmp_path / "volume.png"),
    ]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(importlib.util.find_spec("napari") is not None, reason="napari is installed")
def test_missing_viewer_is_named(maps):
    with pytest.raises(ImportError, match="napari"):
        view3d(maps, backend="napari")
    with pytest.raises(ValueError, match="backend"):
        view3d(maps, backend="vtk")
