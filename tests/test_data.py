import numpy as np
import pytest
from edstomo.data import CompositionMaps, TiltSeries, Volume


def series(data=None, **changes):
    arguments = {
        "data": np.ones((2, 3, 5, 1)) if data is None else data,
        "channels": ["HAADF", "Ag_La"],
        "angles": ["-10 deg", "0 deg", "10 deg"],
        "pixel_size": "1 nm",
    }
    arguments.update(changes)
    return TiltSeries(**arguments)


def test_accessors():
    s = series(data=np.arange(30.0).reshape(2, 3, 5, 1))
    assert (s.n_tilts, s.n_positions, s.n_slices, s.lines, s.has_haadf) == (3, 5, 1, ["Ag_La"], True)
    np.testing.assert_array_equal(s.channel("Ag_La"), s.data[1])
    picked = s.select(["Ag_La"])
    assert picked.channels == ["Ag_La"] and picked.shape == (1, 3, 5, 1)
    with pytest.raises(KeyError, match="'Au_Ma' is not in this tilt series"):
        s.channel("Au_Ma")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": np.ones((2, 3, 5))}, r"expected 4: \(channels, tilts, positions, slices\)"),
        ({"data": np.full((2, 3, 5, 1), np.nan)}, "NaN or infinite"),
        ({"data": -np.ones((2, 3, 5, 1))}, r"negative values \(minimum -1"),
        ({"channels": ["HAADF"]}, "1 channel names"),
        ({"channels": ["Ag_La", "Ag_La"]}, "not unique"),
        ({"channels": ["HAADF", "Xx_Ka"]}, "unknown element"),
        ({"angles": ["0 deg"]}, "1 tilt angles for 3 tilts"),
        ({"angles": [0, 1, 2]}, "has no unit"),
        ({"pixel_size": "0 nm"}, "must be positive"),
        ({"pixel_size": "1 s"}, "expected a quantity in nm"),
    ],
)
def test_tilt_series_rejects_bad_input(changes, message):
    with pytest.raises(ValueError, match=message):
        series(**changes)


def test_volume_and_composition_validation():
    with pytest.raises(ValueError, match="expected 4"):
        Volume(np.ones((2, 2)), ["Ag_La"], "1 nm")
    with pytest.raises(ValueError, match="sum to 1.2"):
        CompositionMaps(np.full((2, 2, 2, 1), 0.6), ["Ag", "Au"], "1 nm")
    with pytest.raises(ValueError, match="density: shape"):
        CompositionMaps(np.full((2, 2, 2, 1), 0.5), ["Ag", "Au"], "1 nm", density=np.ones((3, 3, 1)))
    with pytest.raises(ValueError, match="density: contains negative"):
        CompositionMaps(np.full((2, 2, 2, 1), 0.5), ["Ag", "Au"], "1 nm", density=-np.ones((2, 2, 1)))
    maps = CompositionMaps(np.full((2, 2, 2, 1), 0.5), ["Ag", "Au"], "1 nm", density=np.ones((2, 2, 1)))
    np.testing.assert_array_equal(maps.fraction("Ag_La"), maps.weight_fractions[0])
    assert maps.particle_mask.all()
