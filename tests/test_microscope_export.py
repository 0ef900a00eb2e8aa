"""Export of tilt series, volumes and maps (edstomo_microscope.export): HDF5, .hspy (etspy metadata), TIFF."""

from __future__ import annotations

import edstomo as et
import numpy as np
import pytest
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo_microscope.alignment import Alignment, apply_alignment
from edstomo_microscope.export import save_hdf5, save_hspy, save_tiff, stacks

ANGLES = et.ureg.Quantity([-20.0, 0.0, 20.0], "deg")


def aligned_series() -> TiltSeries:
    rng = np.random.default_rng(0)
    data = rng.uniform(1, 2, (2, 3, 10, 8))  # (channels, tilts, positions, slices)
    series = TiltSeries(data, ["HAADF", "Fe_Ka"], ANGLES, "2 nm")
    shifts = np.array([[1.0, -1.0], [0.0, 0.0], [-1.0, 2.0]])
    return apply_alignment(series, Alignment.from_shifts(ANGLES, shifts, "2 nm", axis_rotation=0.5))


def maps() -> CompositionMaps:
    rng = np.random.default_rng(1)
    fe = rng.uniform(0, 1, (6, 6, 4))
    return CompositionMaps(np.stack([fe, 1 - fe]), ["Fe", "S"], "3 nm", mask=np.ones((6, 6, 4), bool))


def test_stacks_have_the_documented_orientation():
    series = aligned_series()
    images = stacks(series)
    assert images["Fe_Ka"].shape == (3, series.n_slices, series.n_positions)  # (tilts, rows = slices, columns)
    np.testing.assert_array_equal(images["Fe_Ka"][1], series.channel("Fe_Ka")[1].T)
    composition = maps()
    assert stacks(composition)["S"].shape == (4, 6, 6)  # (slices, nz, nx)
    np.testing.assert_array_equal(stacks(composition)["Fe"][2], composition.fraction("Fe")[:, :, 2])


def test_hdf5_round_trip_keeps_provenance(tmp_path):
    series = aligned_series()
    path = save_hdf5(series, tmp_path / "series.h5")
    loaded = et.load(path)
    np.testing.assert_array_equal(loaded.data, series.data)
    assert [step["action"] for step in loaded.provenance] == ["align"]
    volume = Volume(np.ones((1, 4, 4, 2)), ["Fe_Ka"], "1 nm", provenance=[{"action": "reconstruct"}])
    assert et.load(save_hdf5(volume, tmp_path / "v.h5")).provenance == volume.provenance


def test_hspy_tilt_series_carries_etspy_tomography_metadata(tmp_path):
    hs = pytest.importorskip("hyperspy.api")
    series = aligned_series()
    paths = save_hspy(series, tmp_path, "tilts")
    assert sorted(p.name for p in paths) == ["tilts_Fe_Ka.hspy", "tilts_HAADF.hspy"]
    signal = hs.load(tmp_path / "tilts_Fe_Ka.hspy")
    assert signal.axes_manager.navigation_shape == (3,)
    assert signal.axes_manager[0].name == "Tilt" and signal.axes_manager[0].units == "degrees"
    tomography = signal.metadata.Tomography
    np.testing.assert_array_equal(tomography.tilts, [-20.0, 0.0, 20.0])
    np.testing.assert_array_equal(tomography.shifts, [[-1.0, 1.0], [0.0, 0.0], [2.0, -1.0]])  # (rows, columns)
    assert tomography.tiltaxis == pytest.approx(0.5) and tomography.cropped
    np.testing.assert_allclose(signal.data, stacks(series)["Fe_Ka"], rtol=1e-6)
    assert signal.axes_manager[1].scale == pytest.approx(2.0) and signal.axes_manager[1].units == "nm"
    assert '"action": "align"' in signal.metadata.edstomo.provenance


def test_hspy_and_tiff_maps(tmp_path):
    pytest.importorskip("hyperspy.api")
    import hyperspy.api as hs
    import tifffile

    composition = maps()
    save_hspy(composition, tmp_path, "maps")
    signal = hs.load(tmp_path / "maps_Fe.hspy")
    np.testing.assert_allclose(signal.data, stacks(composition)["Fe"], rtol=1e-6)
    assert signal.metadata.Signal.quantity == "Weight fraction"
    [fe, s] = save_tiff(composition, tmp_path, "maps")
    with tifffile.TiffFile(fe) as tif:
        np.testing.assert_allclose(tif.asarray(), stacks(composition)["Fe"], rtol=1e-6)
        assert tif.imagej_metadata["spacing"] == pytest.approx(3.0) and tif.imagej_metadata["unit"] == "nm"
    assert s.name == "maps_S.tif"
