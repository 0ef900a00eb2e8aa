"""Elastic cross-sections: Browning 1991 (both forms) against Table 2, Wentzel analytic checks, range warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from edstomo_plugins.physics import elastic
from edstomo_plugins.physics.elastic import ModelRangeWarning
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

# Yuan et al. 2020, Table 2: (Z, beam energy keV, σ_ela barn).
TABLE2 = [(47, 100, 9.90e6), (79, 100, 1.98e7), (27, 80, 5.59e6), (30, 80, 6.51e6)]


@pytest.mark.parametrize(("z", "energy", "expected"), TABLE2)
def test_browning_mcxray_form_reproduces_table2_to_a_tenth_of_a_percent(z, energy, expected):
    assert float(elastic.browning_total_barn(z, energy, "mcxray")) == pytest.approx(expected, rel=1e-3)


def test_published_browning_form_is_within_two_percent_of_table2():
    z, energy, expected = (np.array(column) for column in zip(*TABLE2))
    ratio = elastic.browning_total_barn(z, energy, "published") / expected
    assert np.all((ratio > 0.98) & (ratio < 1.002))
    assert ratio.min() < 0.985  # the two forms really differ (Ag: 0.983)


def test_browning_warns_above_100_kev_and_not_within_its_range():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        elastic.browning_total_barn([27, 79], [1.0, 100.0])
    with pytest.warns(ModelRangeWarning, match="fitted for 1-100 keV; at 200 keV"):
        elastic.browning_total_barn(27, 200.0)
    with pytest.warns(ModelRangeWarning, match="at 0.5 keV"):
        elastic.browning_total_barn(27, 0.5)


def test_browning_is_vectorised_and_broadcasts():
    z = np.array([[6], [79]])
    energy = np.array([10.0, 50.0, 100.0])
    sigma = elastic.browning_total_barn(z, energy)
    assert sigma.shape == (2, 3)
    assert sigma[1, 2] == float(elastic.browning_total_barn(79, 100.0))
    assert np.all(np.diff(sigma, axis=1) < 0) and np.all(sigma[1] > sigma[0])


def _dsigma_domega_barn(z: int, energy_kev: float, theta: float) -> float:
    t = energy_kev * 1e3
    pc = np.sqrt(t * (t + 2 * elastic.MC2_EV))
    pv = pc**2 / (t + elastic.MC2_EV)
    eta = float(elastic.wentzel_screening(z, energy_kev))
    return (z * elastic.COULOMB_EV_M) ** 2 / (4 * pv**2) / (np.sin(theta / 2) ** 2 + eta) ** 2 * 1e28


@pytest.mark.parametrize(("z", "energy", "inner", "outer"), [(27, 80.0, 0.094, 0.611), (79, 300.0, 0.05, 0.2)])
def test_wentzel_annulus_equals_the_numerical_integral_of_the_differential_cross_section(z, energy, inner, outer):
    numeric, _ = quad(
        lambda th: 2 * np.pi * np.sin(th) * _dsigma_domega_barn(z, energy, th), inner, outer, epsabs=0, epsrel=1e-10
    )
    assert float(elastic.wentzel_annular_barn(z, energy, inner, outer)) == pytest.approx(numeric, rel=1e-8)


@settings(max_examples=50, deadline=None)
@given(
    z=st.integers(1, 99),
    energy=st.floats(5.0, 500.0),
    angles=st.lists(st.floats(0.0, np.pi), min_size=3, max_size=3, unique=True),
)
def test_wentzel_annuli_add_up(z, energy, angles):
    a, b, c = sorted(angles)
    if min(b - a, c - b) < 1e-6:
        return
    whole = elastic.wentzel_annular_barn(z, energy, a, c)
    parts = elastic.wentzel_annular_barn(z, energy, a, b) + elastic.wentzel_annular_barn(z, energy, b, c)
    assert whole == pytest.approx(parts, rel=1e-9)


def test_wentzel_total_agrees_with_browning_mott_fit_within_its_range():
    z = np.array([13, 27, 30, 47, 79])[:, None]
    energy = np.array([30.0, 80.0, 100.0])
    ratio = elastic.wentzel_annular_barn(z, energy) / elastic.browning_total_barn(z, energy)
    assert np.all((ratio > 0.95) & (ratio < 1.20))


def test_wentzel_annulus_is_a_fraction_of_the_total_and_grows_with_z():
    total = elastic.wentzel_annular_barn([27, 30], 80.0)
    annulus = elastic.wentzel_annular_barn([27, 30], 80.0, 0.094, 0.611)
    assert np.all(annulus < 0.2 * total)
    assert annulus[1] / annulus[0] > (30 / 27) ** 1.5


@pytest.mark.parametrize("energy", [0.0, -100.0, np.nan])
def test_bad_energy_is_rejected_naming_it(energy):
    with pytest.raises(ValueError, match="energy_kev"):
        elastic.browning_total_barn(27, energy)
    with pytest.raises(ValueError, match="energy_kev"):
        elastic.wentzel_annular_barn(27, energy, 0.1, 0.2)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="form: 'exact'"):
        elastic.browning_total_barn(27, 80.0, form="exact")
    with pytest.raises(ValueError, match="z: "):
        elastic.browning_total_barn(0, 80.0)
    with pytest.raises(ValueError, match="must exceed inner"):
        elastic.wentzel_annular_barn(27, 80.0, 0.2, 0.1)
    with pytest.raises(ValueError, match=r"must lie in \[0, π\]"):
        elastic.wentzel_annular_barn(27, 80.0, -0.1, 0.1)
