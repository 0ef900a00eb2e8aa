import numpy as np
import pytest
from edstomo.units import UnitError, as_quantity, format_quantity, to_jsonable, ureg
from hypothesis import given
from hypothesis import strategies as st


def test_registry_knows_barn_fluence_and_factor_units():
    assert ureg.Quantity("1 b").m_as("m**2") == pytest.approx(1e-28)
    assert ureg.Quantity("1 b*mol/g").m_as("cm**2*mol/g") == pytest.approx(1e-24)
    electrons = (ureg.Quantity("100 pA") * ureg.Quantity("0.5 s")).m_as("e")
    assert electrons == pytest.approx(3.121e8, rel=1e-3)
    fluence = (ureg.Quantity(electrons, "e") / ureg.Quantity("1.5 nm") ** 2).m_as("e/Å**2")
    assert fluence == pytest.approx(1.39e6, rel=3e-3)  # the paper rounds 1.387e6


@pytest.mark.parametrize("value", [100, 100.0, "100", np.float64(3.0)])
def test_bare_numbers_are_rejected_with_name_value_and_unit(value):
    with pytest.raises(UnitError, match=r"beam_energy.*no unit.*keV"):
        as_quantity(value, "keV", "beam_energy")


def test_wrong_dimension_is_rejected():
    with pytest.raises(UnitError, match=r"pixel_size: '3 keV' has unit 'keV'.*expected a quantity in nm"):
        as_quantity("3 keV", "nm", "pixel_size")


def test_unparseable_text_is_rejected():
    with pytest.raises(UnitError, match="cannot read 'ten keV'"):
        as_quantity("ten keV", "keV", "beam_energy")


def test_arrays_from_mappings_and_lists():
    q = as_quantity({"magnitude": [1, 2], "units": "deg"}, "deg", "angles")
    np.testing.assert_array_equal(q.m_as("deg"), [1, 2])
    q = as_quantity(["1 deg", "0.5 rad"], "deg", "angles")
    np.testing.assert_allclose(q.m_as("rad"), [np.pi / 180, 0.5])


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_scalar_text_round_trip_is_exact(magnitude):
    for unit in ("keV", "e/Å**2", "b*mol/g", "nm"):
        q = ureg.Quantity(magnitude, unit)
        back = as_quantity(format_quantity(q), unit)
        assert back.magnitude == magnitude
        assert back.units == q.units


def test_array_serialisation_round_trip():
    q = ureg.Quantity(np.array([-75.0, 0.1, 1 / 3]), "deg")
    back = as_quantity(to_jsonable(q), "deg")
    np.testing.assert_array_equal(back.magnitude, q.magnitude)
