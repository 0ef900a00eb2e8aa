"""Export of tilt series, volumes and maps (edstomo_microscope.export): HDF5, .hspy read back by HyperSpy, TIFF.

The etspy round trips are in test_microscope_etspy.py.
"""

from __future__ import annotations

import logging

import edstomo as et
import numpy as np
import pytest
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo.experiment import EDSDetector, Experiment, HAADFDetector, Scan, TiltScheme
from edstomo_microscope.alignment import Alignment, apply_alignment
from edstomo_microscope.export import (
    export_all,
    format_size,
    output_size,
    quantity_of,
    save_hdf5,
    save_hspy,
    stacks,
)
from edstomo_microscope.pipeline import normalise

ANGLES = et.ureg.Quantity([-20.0, 0.0, 20.0], "deg")


def experiment(positions: int, slices: int) -> Experiment:
    return Experiment(
        beam_energy="200 keV",
        lines=["Fe_Ka", "S_Ka"],
        tilts=TiltScheme(angles=ANGLES),
        scan=Scan(positions=positions, pixel_size="2 nm", slices=slices),
        haadf=HAADFDetector(probe_current="150 pA", dwell_time="2 ms"),
        eds=EDSDetector(probe_current="150 pA", dwell_time="2 ms", solid_angle="0.7 sr"),
    )


def aligned_series() -> TiltSeries:
    rng = np.random.default_rng(0)
    data = rng.uniform(1, 2, (3, 3, 10, 8))  # (channels, tilts, positions, slices)
    series = TiltSeries(data, ["HAADF", "Fe_Ka", "S_Ka"], ANGLES, "2 nm", experiment=experiment(10, 8))
    shifts = np.array([[1.0, -1.0], [0.0, 0.0], [-1.0, 2.0]])
    return apply_alignment(series, Alignment.from_shifts(ANGLES, shifts, "2 nm", axis_rotation=0.5, axis_shift=1.5))


def maps() -> CompositionMaps:
    rng = np.random.default_rng(1)
    fe = rng.uniform(0, 1, (6, 6, 4))
    return CompositionMaps(np.stack([fe, 1 - fe]), ["Fe", "S"], "3 nm", mask=np.ones((6, 6, 4), bool))


def test_stacks_have_etspy_orientation():
    series = aligned_series()
    images = stacks(series)
    # (tilts, rows = positions across the tilt axis, columns = slices along it): etspy reconstructs column by column
    assert images["Fe_Ka"].shape == (3, series.n_positions, series.n_slices)
    np.testing.assert_array_equal(images["Fe_Ka"][1], series.channel("Fe_Ka")[1])
    composition = maps()
    assert stacks(composition)["S"].shape == (4, 6, 6)  # (slices, z, x)
    # z reversed: etspy's reconstruction of the same series runs the other way along z
    np.testing.assert_array_equal(stacks(composition)["Fe"][2], composition.fraction("Fe")[::-1, :, 2])


def test_hdf5_is_float32_by_default_and_round_trips(tmp_path):
    import h5py

    series = aligned_series()
    path = save_hdf5(series, tmp_path / "series.h5")
    with h5py.File(path) as file:
        assert file["data"].dtype == np.float32
    loaded = et.load(path)
    np.testing.assert_allclose(loaded.data, series.data, rtol=1e-7)
    assert [step["action"] for step in loaded.provenance] == ["align"]
    composition = maps()
    back = et.load(save_hdf5(composition, tmp_path / "maps.h5"))
    np.testing.assert_allclose(back.weight_fractions, composition.weight_fractions, rtol=1e-7)
    exact = et.load(save_hdf5(series, tmp_path / "exact.h5", dtype=np.float64))
    np.testing.assert_array_equal(exact.data, series.data)
    with pytest.raises(ValueError, match="dtype"):
        save_hdf5(series, tmp_path / "int.h5", dtype=np.int16)


def test_hyperspy_does_not_try_to_read_edstomo_hdf5(tmp_path, caplog):
    """Several RosettaSciIO readers claim ``.h5``: hs.load stops and asks, without reading or logging an error."""
    hs = pytest.importorskip("hyperspy.api")
    path = save_hdf5(aligned_series(), tmp_path / "tilt_series_aligned.h5")
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="multiple file readers"):
        hs.load(path)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_hspy_tilt_series_metadata_read_back_by_hyperspy(tmp_path):
    hs = pytest.importorskip("hyperspy.api")
    series = aligned_series()
    paths = save_hspy(series, tmp_path, "tilts")
    assert sorted(p.name for p in paths) == ["tilts_Fe_Ka.hspy", "tilts_HAADF.hspy", "tilts_S_Ka.hspy"]
    signal = hs.load(tmp_path / "tilts_Fe_Ka.hspy")
    assert signal.metadata.Signal.signal_type == "TomoStack"
    assert signal.data.dtype == np.float32
    navigation, rows, columns = signal.axes_manager[0], signal.axes_manager.signal_axes[1], signal.axes_manager[1]
    assert (navigation.name, navigation.units, navigation.size) == ("Projections", "degrees", 3)
    np.testing.assert_allclose(navigation.axis, [-20.0, 0.0, 20.0])
    assert (rows.name, rows.size, columns.name, columns.size) == ("y", series.n_positions, "x", series.n_slices)
    assert rows.units == columns.units == "nm" and rows.scale == pytest.approx(2.0)
    tomography = signal.metadata.Tomography

    def values(item):  # with etspy these are TomoTilts / TomoShifts signals, without it arrays
        return np.asarray(item.data if hasattr(item, "axes_manager") else item)

    np.testing.assert_allclose(values(tomography.tilts).ravel(), [-20.0, 0.0, 20.0])
    shifts = values(tomography.shifts)
    np.testing.assert_allclose(shifts, [[1.0, -1.0], [0.0, 0.0], [-1.0, 2.0]])  # (across, along) the tilt axis
    assert tomography.tiltaxis == pytest.approx(0.5) and tomography.yshift == pytest.approx(1.5) and tomography.cropped
    np.testing.assert_allclose(signal.data, series.channel("Fe_Ka"), rtol=1e-6)
    assert signal.metadata.Sample.elements == ["Fe", "S"] and signal.metadata.Sample.xray_lines == ["Fe_Ka"]
    tem = signal.metadata.Acquisition_instrument.TEM
    assert tem.beam_energy == pytest.approx(200.0) and tem.beam_current == pytest.approx(0.15)
    assert tem.Detector.EDS.live_time == pytest.approx(2e-3)
    assert signal.metadata.Signal.quantity == "Counts"
    assert '"action": "align"' in signal.metadata.edstomo.provenance
    haadf = hs.load(tmp_path / "tilts_HAADF.hspy")
    assert haadf.metadata.Signal.quantity == "HAADF intensity" and not haadf.metadata.has_item("Sample.xray_lines")


def test_normalised_series_are_not_labelled_counts():
    series = aligned_series()
    assert quantity_of(normalise(series, "equal"), "Fe_Ka") == "Normalised counts"
    assert quantity_of(normalise(series, "equal"), "HAADF") == "Normalised HAADF intensity"
    assert quantity_of(series, "Fe_Ka") == "Counts"


def test_hspy_maps_and_volumes(tmp_path):
    hs = pytest.importorskip("hyperspy.api")
    composition = maps()
    save_hspy(composition, tmp_path, "maps")
    signal = hs.load(tmp_path / "maps_Fe.hspy")
    np.testing.assert_allclose(signal.data, stacks(composition)["Fe"], rtol=1e-6)
    assert signal.metadata.Signal.quantity == "Weight fraction"
    assert signal.metadata.Signal.signal_type == "RecStack"
    assert [a.name for a in signal.axes_manager._axes] == ["x", "z", "y"]
    assert all(a.units == "nm" and a.scale == pytest.approx(3.0) for a in signal.axes_manager._axes)
    volume = Volume(np.ones((1, 4, 4, 2)), ["Fe_Ka"], "1 nm", quantity="X_A", unit="arbitrary")
    save_hspy(volume, tmp_path, "volume_eds")
    assert hs.load(tmp_path / "volume_eds_Fe_Ka.hspy").metadata.Signal.quantity == "X_A (arbitrary)"


def test_tiff_and_hspy_stacks_are_optional_and_sizes_are_reported(tmp_path):
    pytest.importorskip("hyperspy.api")
    import tifffile

    series = aligned_series()
    volume = Volume(np.ones((2, 10, 10, 8)), ["Fe_Ka", "S_Ka"], "2 nm", provenance=[{"action": "reconstruct"}])
    without = export_all(tmp_path / "a", raw=series, series=series, volumes={"eds": volume}, maps={"eds": maps()})
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in without)
    assert "tiff" not in {n.split("/")[0] for n in names}
    assert {"tilt_series_raw.h5", "tilt_series_aligned.h5", "volume_eds.h5", "maps_eds.h5"} <= set(names)
    assert "hspy/tilts_HAADF.hspy" in names and not any(n.startswith(("hspy/volume", "hspy/maps")) for n in names)
    with_hspy = export_all(tmp_path / "c", volumes={"eds": volume}, maps={"eds": maps()}, hspy=True)
    names = {p.relative_to(tmp_path / "c").as_posix() for p in with_hspy}
    assert {"hspy/volume_eds_Fe_Ka.hspy", "hspy/maps_eds_S.hspy", "volume_eds.h5", "maps_eds.h5"} <= names
    with_tiff = export_all(tmp_path / "b", volumes={"eds": volume}, maps={"eds": maps()}, tiff=True)
    [fe] = [p for p in with_tiff if p.name == "maps_eds_Fe.tif"]
    with tifffile.TiffFile(fe) as tif:
        np.testing.assert_allclose(tif.asarray(), stacks(maps())["Fe"], rtol=1e-6)
        assert tif.imagej_metadata["spacing"] == pytest.approx(3.0) and tif.imagej_metadata["unit"] == "nm"
    total = output_size(without)
    assert total == sum(p.stat().st_size for p in without) > 0
    assert output_size([*without, without[0]]) == total  # each file counted once
    assert format_size(1234567) == "1.2 MB" and format_size(999) == "999 B"
    with pytest.raises(ValueError, match="size"):
        format_size(-1)


def test_exported_stacks_read_by_hyperspy_import_back(tmp_path):
    """hs.load gives TomoStacks with etspy installed and plain Signal2D stacks without; both import back."""
    hs = pytest.importorskip("hyperspy.api")
    from edstomo_microscope.interop import from_image_stacks

    series = aligned_series()
    save_hspy(series, tmp_path, "tilts")
    loaded = {c: hs.load(tmp_path / f"tilts_{c}.hspy") for c in series.channels}
    back = from_image_stacks(loaded, solid_angle="0.7 sr")
    assert back.channels == series.channels
    np.testing.assert_allclose(back.data, series.data, rtol=1e-6)
    np.testing.assert_allclose(back.angles.m_as("deg"), [-20.0, 0.0, 20.0])
    assert back.experiment.beam_energy.m_as("keV") == pytest.approx(200.0)
    assert back.experiment.eds.dwell_time.m_as("ms") == pytest.approx(2.0)


def test_uncertainty_is_exported_beside_the_maps(tmp_path):
    """σ stacks ``<element>_sigma`` in .hspy and TIFF (quantity named), and in the float32 HDF5."""
    hs = pytest.importorskip("hyperspy.api")
    import tifffile

    plain = maps()
    sigma = 0.01 + 0.1 * plain.weight_fractions
    composition = plain.replace(uncertainty=sigma)
    assert set(stacks(composition)) == {"Fe", "S", "Fe_sigma", "S_sigma"}
    np.testing.assert_array_equal(stacks(composition)["Fe_sigma"], stacks(plain.replace(weight_fractions=sigma))["Fe"])
    written = export_all(tmp_path, maps={"hebt-sirt": composition}, tiff=True, hspy=True)
    names = {p.name for p in written}
    assert {"maps_hebt-sirt_Fe_sigma.hspy", "maps_hebt-sirt_Fe_sigma.tif", "maps_hebt-sirt.h5"} <= names
    signal = hs.load(tmp_path / "hspy" / "maps_hebt-sirt_S_sigma.hspy")
    assert signal.metadata.Signal.quantity == "Weight fraction uncertainty (1 sigma)"
    np.testing.assert_allclose(signal.data, stacks(composition)["S_sigma"], rtol=1e-6)
    with tifffile.TiffFile(tmp_path / "tiff" / "maps_hebt-sirt_Fe_sigma.tif") as tif:
        np.testing.assert_allclose(tif.asarray(), stacks(composition)["Fe_sigma"], rtol=1e-6)
    back = et.load(tmp_path / "maps_hebt-sirt.h5")
    np.testing.assert_allclose(back.uncertainty, sigma, rtol=1e-6)
    assert quantity_of(composition, "Fe") == "Weight fraction"
