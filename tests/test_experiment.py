import json

import numpy as np
import pytest
from edstomo.experiment import EDSDetector, Experiment, ExperimentError, HAADFDetector, Scan, TiltScheme
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment
from pydantic import ValidationError


def make(**changes):
    base = yuan2020_phantom_experiment().to_dict()
    base.update(changes)
    return Experiment.model_validate(base)


def test_paper_doses():
    exp = yuan2020_phantom_experiment()
    assert exp.eds_electrons_per_pixel.m_as("e") == pytest.approx(3.121e8, rel=1e-3)
    assert exp.eds_fluence.m_as("e/Å**2") == pytest.approx(1.387e6, rel=1e-3)
    assert exp.haadf_electrons_per_pixel.m_as("e") == pytest.approx(1e5)
    assert exp.haadf_fluence.m_as("e/Å**2") == pytest.approx(444.4, rel=1e-3)
    np.testing.assert_allclose(exp.angles.m_as("deg"), np.arange(-75, 76, 5))
    assert exp.elements == ["Ag", "Au"]


@pytest.mark.parametrize(
    "dose",
    [
        {"probe_current": "100 pA", "dwell_time": "0.5 s"},
        {"electrons_per_pixel": "312075453.72303814 e"},
        {"fluence": "1387002.0165468361 e/Å^2"},
    ],
)
def test_three_ways_to_give_a_dose_agree(dose):
    eds = EDSDetector(solid_angle="0.7 sr", **dose)
    assert eds.electrons(Scan(positions=97, pixel_size="1.5 nm").pixel_size).m_as("e") == pytest.approx(
        312075453.72303814, rel=1e-12
    )


def test_json_and_yaml_round_trips_are_exact(tmp_path):
    exp = make(tilts={"angles": ["-70.5 deg", "0 deg", "1.2345678901234567 deg"]})
    for name in ("exp.json", "exp.yaml"):
        path = exp.save(tmp_path / name)
        back = Experiment.load(path)
        assert back.to_dict() == exp.to_dict()
        np.testing.assert_array_equal(back.angles.magnitude, exp.angles.magnitude)
    assert json.loads(exp.to_json())["beam_energy"] == "100.0 keV"


def test_tilt_list_shorthand():
    exp = make(tilts=["-10 deg", "10 deg"])
    np.testing.assert_array_equal(exp.angles.m_as("deg"), [-10, 10])


def test_derived_values_are_read_only():
    exp = yuan2020_phantom_experiment()
    for field in ("eds_fluence", "beam_energy"):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(exp, field, "80 keV")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"beam_energy": 100}, r"beam_energy: 100 has no unit; expected a quantity in keV"),
        ({"beam_energy": "100 nm"}, r"beam_energy: '100 nm' has unit 'nm'"),
        ({"beam_energy": "-5 keV"}, r"beam_energy: '-5 keV' must be positive"),
        ({"beam_energy": "nan keV"}, r"beam_energy: 'nan keV' is not finite"),
        ({"lines": ["Xx_Ka"]}, r"unknown element symbol 'Xx'"),
        ({"lines": ["Ag_Qa"]}, r"unknown family 'Qa'"),
        ({"lines": ["C_La"]}, r"C \(Z = 6\) does not emit the La line"),
        ({"lines": []}, r"lines"),
        ({"lines": ["Ag_La", "Ag_Ka"]}, r"two lines of one element"),
        ({"tilts": {"angles": []}}, r"angles: the list is empty"),
        ({"tilts": []}, r"angles: the list is empty"),
        ({"tilts": {"start": "10 deg", "stop": "-10 deg", "step": "5 deg"}}, r"stop .* is below start"),
        ({"tilts": {"start": "0 deg", "stop": "10 deg", "step": "0 deg"}}, r"tilts.step.*must be positive"),
        ({"tilts": {"start": "0 deg", "stop": "10 deg"}}, r"all of 'start', 'stop' and 'step'"),
        ({"scan": {"positions": 0, "pixel_size": "1 nm"}}, r"positions"),
        ({"scan": {"positions": 10, "pixel_size": 1.5}}, r"pixel_size: 1.5 has no unit; expected a quantity in nm"),
        ({"eds": {"solid_angle": "0.7 sr"}}, r"give exactly one dose"),
        ({"eds": {"probe_current": "1 pA", "solid_angle": "0.7 sr"}}, r"must be given together"),
        ({"eds": {"probe_current": "1 nm", "dwell_time": "1 s", "solid_angle": "1 sr"}}, r"probe_current.*pA"),
        ({"eds": {"fluence": "1 e/Å^2", "solid_angle": "1 sr", "efficiency": 1.5}}, r"efficiency"),
        (
            {"eds": {"fluence": "1 e/Å^2", "solid_angle": "1 sr", "efficiency_overrides": {"Co_Ka": 0.9}}},
            r"not among the lines",
        ),
        ({"haadf": {"fluence": "1 e/Å^2", "inner_angle": "200 mrad", "outer_angle": "100 mrad"}}, r"outer_angle"),
        ({"unknown_field": 1}, r"unknown_field"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(changes, message):
    with pytest.raises(ExperimentError, match=message):
        make(**changes)


def test_efficiency_override_per_line():
    eds = EDSDetector(fluence="1 e/Å^2", solid_angle="1 sr", efficiency=0.9, efficiency_overrides={"Au_Ma": 0.5})
    assert eds.efficiency_for("Au_Ma") == 0.5
    assert eds.efficiency_for("Ag_La") == 0.9


def test_building_blocks_accept_quantities():
    from edstomo.units import ureg

    scheme = TiltScheme(angles=ureg.Quantity([-1.0, 1.0], "rad"))
    np.testing.assert_allclose(scheme.radians, [-1, 1])
    haadf = HAADFDetector(probe_current="50 pA", dwell_time="1 us")
    assert haadf.electrons(ureg.Quantity(1, "nm")).m_as("e") == pytest.approx(312.075, rel=1e-5)


def test_missing_haadf_detector_is_an_error_when_asked_for():
    exp = make(haadf=None)
    with pytest.raises(ValueError, match="no HAADF detector"):
        _ = exp.haadf_fluence
