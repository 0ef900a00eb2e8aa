"""Layered detector efficiency: analytic attenuation, limits, presets, round trips, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xraylib
from edstomo_plugins.physics.efficiency import PRESETS, Layer, LayeredDetector, detector


def test_single_layer_follows_beer_lambert_with_xraylib_coefficients():
    layer = Layer("Si3N4", "100 nm", "3.17 g/cm**3")
    energy = 1.5
    expected = np.exp(-xraylib.CS_Total_CP("Si3N4", energy) * 3.17 * 100e-7)
    assert float(layer.transmission(np.array(energy))) == pytest.approx(expected, rel=1e-12)
    assert layer.areal_density == pytest.approx(3.17e-5)


def test_detector_is_window_transmission_times_sensor_absorption():
    bare = LayeredDetector(window=(), dead_layer="0 nm", sensor_thickness="450 µm")
    energy = np.array([2.0, 8.0, 20.0])
    tau = np.array([xraylib.CS_Photo_CP("Si", e) for e in energy])
    np.testing.assert_allclose(bare.efficiency(energy), 1 - np.exp(-tau * 2.33 * 0.045), rtol=1e-12)
    windowed = LayeredDetector(window=({"material": "Al", "thickness": "1 µm"},), dead_layer="0 nm")
    al = np.array([xraylib.CS_Total_CP("Al", e) for e in energy])
    np.testing.assert_allclose(
        windowed.efficiency(energy), bare.efficiency(energy) * np.exp(-al * 2.6989e-4), rtol=1e-12
    )


def test_thicker_windows_lower_and_thicker_sensors_raise_the_efficiency():
    energy = np.linspace(1.0, 30.0, 30)
    thin, thick = (detector({"window": [{"material": "Al", "thickness": t}]}) for t in ("10 nm", "200 nm"))
    assert np.all(thick.efficiency(energy) < thin.efficiency(energy))
    shallow, deep = (LayeredDetector(sensor_thickness=t) for t in ("100 µm", "1 mm"))
    assert np.all(deep.efficiency(energy) >= shallow.efficiency(energy))
    assert np.all(deep.efficiency(energy[energy >= 6]) > shallow.efficiency(energy[energy >= 6]) + 1e-3)
    assert np.all((thin.efficiency(energy) > 0) & (thin.efficiency(energy) <= 1))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_give_095_to_0999_over_2_to_9_kev(name):
    # the range physics.md reports for a window / dead-layer / Si model with xraylib attenuation
    efficiency = detector(name).efficiency(np.linspace(2.0, 9.0, 15))
    assert np.all((efficiency > 0.94) & (efficiency < 0.9995))


def test_to_dict_round_trips():
    original = detector("si3n4-window-sdd")
    copy = LayeredDetector.from_dict(original.to_dict())
    energy = np.array([0.8, 3.0, 12.0])
    np.testing.assert_array_equal(copy.efficiency(energy), original.efficiency(energy))
    assert copy.to_dict() == original.to_dict()


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="material: 'Unobtainium'"):
        Layer("Unobtainium", "10 nm")
    with pytest.raises(ValueError, match="density: the layer of 'Si3N4' is not a pure element"):
        Layer("Si3N4", "10 nm")
    with pytest.raises(ValueError, match="thickness: -10 nm"):
        Layer("Al", "-10 nm")
    with pytest.raises(ValueError, match="has no unit"):
        Layer("Al", 10)
    with pytest.raises(ValueError, match="sensor_thickness"):
        LayeredDetector(sensor_thickness="0 µm")
    with pytest.raises(ValueError, match="energy_kev: 0.0 keV"):
        detector("windowless-sdd").efficiency([5.0, 0.0])
    with pytest.raises(ValueError, match="energy_kev: xraylib has no attenuation data for 'Al' at 0.01 keV"):
        detector("windowless-sdd").efficiency(0.01)
    with pytest.raises(ValueError, match="unknown detector preset 'sdd'"):
        detector("sdd")
    with pytest.raises(ValueError, match=r"unknown detector keys \['windows'\]"):
        detector({"windows": []})
