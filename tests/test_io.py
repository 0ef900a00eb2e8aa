import h5py
import numpy as np
import pytest
from edstomo import data, io
from edstomo.data import CompositionMaps, TiltSeries, Volume
from edstomo.units import ureg


@pytest.fixture
def series(paper_experiment):
    rng = np.random.default_rng(1)
    return TiltSeries(
        data=rng.poisson(5.0, size=(3, 31, 97, 2)).astype(float),
        channels=["HAADF", "Ag_La", "Au_Ma"],
        angles=paper_experiment.angles,
        pixel_size="1.5 nm",
        experiment=paper_experiment,
        provenance=[{"action": "test"}],
    )


def test_tilt_series_round_trip(tmp_path, series):
    path = series.save(tmp_path / "s.h5")
    back = TiltSeries.load(path)
    np.testing.assert_array_equal(back.data, series.data)
    assert back.channels == series.channels
    np.testing.assert_array_equal(back.angles.m_as("deg"), series.angles.m_as("deg"))
    assert back.pixel_size == ureg.Quantity(1.5, "nm")
    assert back.experiment.to_dict() == series.experiment.to_dict()
    assert back.provenance == series.provenance
    record = io.read_provenance(path)
    assert record["versions"]["numpy"] == np.__version__


def test_volume_and_composition_round_trips(tmp_path, paper_truth):
    volume = Volume(np.random.default_rng(0).random((2, 4, 4, 3)), ["Ag_La", "Au_Ma"], "2 nm", quantity="X_A")
    back = data.load(volume.save(tmp_path / "v.h5"))
    np.testing.assert_array_equal(back.data, volume.data)
    assert (back.quantity, back.channels) == ("X_A", ["Ag_La", "Au_Ma"])
    maps = paper_truth.replace(mask=paper_truth.density > 0, threshold=0.5)
    back = data.load(maps.save(tmp_path / "c.h5"))
    assert isinstance(back, CompositionMaps)
    np.testing.assert_array_equal(back.weight_fractions, maps.weight_fractions)
    np.testing.assert_array_equal(back.density, maps.density)
    np.testing.assert_array_equal(back.mask, maps.mask)
    assert back.threshold == 0.5
    assert back.experiment.to_dict() == maps.experiment.to_dict()


def test_files_get_the_usual_permissions(tmp_path, series):
    path = series.save(tmp_path / "s.h5")
    assert path.stat().st_mode & 0o777 == 0o666 & ~io._UMASK


def test_layout_is_as_documented(tmp_path, series):
    path = series.save(tmp_path / "s.h5")
    with h5py.File(path) as file:
        assert file.attrs["format"] == "edstomo"
        assert file.attrs["object"] == "TiltSeries"
        assert file["data"].attrs["axes"] == "channels,tilts,positions,slices"
        assert file["angles"].attrs["units"] == "deg"
        assert set(file) == {"data", "channels", "angles", "experiment", "provenance"}


def test_interrupted_write_leaves_the_old_file_intact(tmp_path, series, monkeypatch):
    path = series.save(tmp_path / "s.h5")
    before = path.read_bytes()

    def crash(file, obj, compression):
        file.create_dataset("data", data=np.zeros(10))
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(data, "_write_tilt_series", crash)
    with pytest.raises(KeyboardInterrupt):
        data.save(series, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]  # no temporary file left behind


def test_interrupted_first_write_leaves_nothing(tmp_path, series, monkeypatch):
    monkeypatch.setattr(data, "_write_tilt_series", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        data.save(series, tmp_path / "new.h5")
    assert list(tmp_path.iterdir()) == []


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        data.load(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(ValueError, match="junk.h5.*not a readable HDF5"):
        data.load(junk)
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["x"] = 1
    with pytest.raises(ValueError, match="other.h5.*not an edstomo file"):
        data.load(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.save(Volume(np.zeros((1, 2, 2, 1)), ["Ag_La"], "1 nm"), tmp_path / "no" / "dir.h5")
