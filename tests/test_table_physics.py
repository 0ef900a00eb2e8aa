import json

import pytest
from edstomo import plugins
from edstomo.experiment import Experiment
from edstomo.factors import LineParameters
from edstomo.units import ureg
from edstomo_plugins.studies.yuan2020 import phantom_experiment as yuan2020_phantom_experiment


def co_zn_experiment(efficiency=0.96):
    base = yuan2020_phantom_experiment().to_dict()
    base.update(beam_energy="80 keV", lines=["Co_Ka", "Zn_Ka"])
    base["eds"]["efficiency"] = efficiency
    return Experiment.model_validate(base)


def test_yuan2020_table2_gives_the_paper_factors():
    """Section 3.2.3: f_Co = 2.25, f_Zn = 1.84, z_Co = 9.49e4, z_Zn = 9.96e4 b·mol/g (eps = 0.96)."""
    factors = plugins.physics("table")(dataset="yuan2020-table2").compute(co_zn_experiment())
    assert factors.f["Co_Ka"].m_as("b*mol/g") == pytest.approx(2.25, rel=5e-3)
    assert factors.f["Zn_Ka"].m_as("b*mol/g") == pytest.approx(1.84, rel=5e-3)
    assert factors.z["Co_Ka"].m_as("b*mol/g") == pytest.approx(9.49e4, rel=5e-3)
    assert factors.z["Zn_Ka"].m_as("b*mol/g") == pytest.approx(9.96e4, rel=5e-3)
    params = factors.parameters
    ratio = (factors.f["Co_Ka"] * params["Co_Ka"].atomic_weight) / (factors.f["Zn_Ka"] * params["Zn_Ka"].atomic_weight)
    assert ratio.m_as("") == pytest.approx(1.10, abs=0.01)
    assert params["Co_Ka"].sources["epsilon"] == "experiment EDS detector"
    assert params["Co_Ka"].sources["sigma_ion"] == "data set yuan2020-table2"


def test_factor_formula_is_eq_7_and_14():
    p = LineParameters(
        "Ag_La",
        sigma_ion="2440 b",
        omega=0.057,
        p=0.816,
        epsilon=0.5,
        atomic_weight="107.8682 g/mol",
        sigma_ela="9.9e6 b",
    )
    assert p.f.m_as("b*mol/g") == pytest.approx(2440 * 0.057 * 0.816 * 0.5 / 107.8682, rel=1e-14)
    assert p.z.m_as("b*mol/g") == pytest.approx(9.9e6 / 107.8682, rel=1e-14)
    assert p.f.to("cm**2*mol/g").m == pytest.approx(p.f.m * 1e-24)


def test_user_values_override_the_data_set_and_json_keys():
    model = plugins.physics("table")(values={"Co_Ka": {"p": 0.5, "epsilon": 0.8, "atomic_weight": "60 g/mol"}})
    factors = model.compute(co_zn_experiment())
    co = factors.parameters["Co_Ka"]
    assert (co.p, co.epsilon, co.atomic_weight.m_as("g/mol"), co.omega) == (0.5, 0.8, 60.0, 0.369)
    record = json.loads(factors.to_json())["lines"]["Co_Ka"]
    assert {"sigma_ion_barn", "omega", "p", "epsilon", "sigma_ela_barn", "atomic_weight", "f", "z"} <= set(record)
    assert record["f"] == pytest.approx(420 * 0.369 * 0.5 * 0.8 / 60)
    assert "Co K" in factors.table() and "f_A" in factors.table()


def test_table_errors():
    exp = co_zn_experiment()
    with pytest.raises(ValueError, match="'Fe_Ka' is not in the table"):
        plugins.physics("table")().compute(exp.model_copy(update={"lines": ["Fe_Ka"]}))
    with pytest.raises(ValueError, match=r"the table's Ag_La values are for 100 keV.*80"):
        plugins.physics("table")().compute(exp.model_copy(update={"lines": ["Ag_La"]}))
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        plugins.physics("table")(dataset="nope")
    with pytest.raises(ValueError, match="unknown keys"):
        plugins.physics("table")(values={"Co_Ka": {"colour": 1}})
    with pytest.raises(ValueError, match=r"Co_Ka.omega: 1.5 must be a number in \(0, 1\]"):
        plugins.physics("table")(values={"Co_Ka": {"omega": 1.5}}).compute(exp)
    with pytest.raises(ValueError, match="sigma_ion: 420 has no unit"):
        plugins.physics("table")(values={"Co_Ka": {"sigma_ion": 420}}).compute(exp)
    with pytest.raises(ValueError, match="sigma_ion.*must be positive"):
        LineParameters("Co_Ka", sigma_ion=ureg.Quantity(0, "b"), omega=0.3, p=0.9, epsilon=1, atomic_weight="58 g/mol")
