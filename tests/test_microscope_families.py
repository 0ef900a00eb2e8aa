"""Line families of the family fit: relative intensities, detector resolution, guesses of unknown peaks."""

from __future__ import annotations

import numpy as np
import pytest
import xraylib
from edstomo.errors import InputError
from edstomo_microscope.families import (
    element_families,
    fwhm_kev,
    gaussian_bins,
    guess_lines,
)


def family(element, shell, beam=80.0, **options):
    return next(f for f in element_families(element, beam, **options) if f.shell == shell)


def test_k_family_ratios_are_xraylib_radiative_rates():
    co = family("Co", "K")
    rates = {t: xraylib.RadRate(27, getattr(xraylib, f"{t}_LINE")) for t in ("KL2", "KL3", "KM2", "KM3")}
    assert co.share("Co_Kb") / co.share("Co_Ka") == pytest.approx(
        (rates["KM2"] + rates["KM3"]) / (rates["KL2"] + rates["KL3"]), rel=1e-9
    )
    assert co.share("Co_Kb") / co.share("Co_Ka") == pytest.approx(0.135, abs=0.002)  # Elam et al.: ~0.135
    eadl = family("Co", "K", yields="eadl")
    assert eadl.share("Co_Kb") / eadl.share("Co_Ka") < 0.125  # EADL's Kβ is weaker (see the module docstring)
    assert {t.name: t.energy_kev for t in co.transitions}["KL3"] == pytest.approx(6.930, abs=1e-3)


def test_auto_takes_k_and_l_shapes_from_xraylib_and_m_shapes_from_eadl():
    for element, shell, source in (("Co", "K", "xraylib"), ("Ni", "L", "xraylib"), ("Pt", "M", "eadl")):
        assert family(element, shell, 200.0) == family(element, shell, 200.0, yields=source)
    ni_l = family("Ni", "L")
    assert ni_l.transitions[0].name == "L3M5"  # Lα the strongest L line, as measured (EADL: Ll)
    m2n4 = {t.name: t.weight for t in family("Pt", "M", 200.0).transitions}["M2N4"]
    assert m2n4 < 0.02 < {t.name: t.weight for t in family("Pt", "M", 200.0, yields="xraylib").transitions}["M2N4"]


def test_weights_are_shares_of_all_x_rays_and_shares_of_a_family_add_up():
    for element, shell, beam in (("Ni", "K", 80.0), ("Ba", "L", 80.0), ("Pt", "M", 200.0), ("Pt", "L", 200.0)):
        f = family(element, shell, beam)
        weights = [t.weight for t in f.transitions]
        assert all(w > 0 for w in weights) and 0.95 < sum(weights) <= 1.0 + 1e-12
        assert weights == sorted(weights, reverse=True)
    ba = family("Ba", "L")
    assert ba.share("Ba_La") + ba.share("Ba_Lb1") + ba.share("Ba_Lb2") < 1.0
    assert ba.share("Ba_La") > ba.share("Ba_Lb1") > 0
    with pytest.raises(InputError, match="not a line of the Ba L family"):
        ba.share("Ti_Ka")


def test_coster_kronig_transfer_strengthens_l3_lines():
    with_ck = family("Ba", "L", cascade="coster-kronig")
    direct = family("Ba", "L", cascade="none")
    assert with_ck.share("Ba_La") > direct.share("Ba_La")
    assert with_ck.emission_barn > direct.emission_barn  # vacancies moved outwards are more likely to radiate


def test_beam_energy_decides_which_families_exist_and_bad_options_are_named():
    assert [f.shell for f in element_families("Pt", 200.0)] == ["K", "L", "M"]
    assert [f.shell for f in element_families("Pt", 60.0)] == ["L", "M"]  # the K edge is at 78.4 keV
    with pytest.raises(InputError, match="yields"):
        element_families("Fe", 80.0, yields="nist")
    with pytest.raises(InputError, match="beam_energy"):
        element_families("Fe", -1.0)
    with pytest.raises(ValueError, match="unknown element symbol"):
        element_families("Xx", 80.0)


def test_resolution_matches_exspy_integration_windows():
    exspy = pytest.importorskip("exspy")
    signal = exspy.signals.EDSTEMSpectrum(np.zeros(1000))
    axis = signal.axes_manager.signal_axes[0]
    axis.scale, axis.offset, axis.units = 0.01, 0.0, "keV"
    signal.set_microscope_parameters(energy_resolution_MnKa=130.0)
    for line in ("Mg_Ka", "S_Ka", "Fe_Ka", "Pt_La"):
        low, high = signal.estimate_integration_windows(windows_width=1.0, xray_lines=[line])[0]
        energy = 0.5 * (low + high)
        assert high - low == pytest.approx(float(fwhm_kev(energy, 130.0)), rel=1e-6), line


def test_gaussian_bins_hold_unit_area_and_the_given_width():
    edges = np.arange(0, 10.0001, 0.01)
    shapes = gaussian_bins(edges, np.array([2.0, 6.4]), np.array([0.1, 0.14]))
    np.testing.assert_allclose(shapes.sum(axis=1), 1.0, atol=1e-9)
    centres = 0.5 * (edges[1:] + edges[:-1])
    sigma = np.sqrt(shapes[1] @ (centres - 6.4) ** 2)
    assert 2.3548 * sigma == pytest.approx(0.14, rel=2e-3)


def test_guesses_name_the_usual_suspects_and_agree_with_exspy():
    exspy = pytest.importorskip("exspy")
    assert guess_lines(8.05, 0.06, 200.0)[0][0] == "Cu Kα"
    assert guess_lines(9.25, 0.06, 200.0)[0][0] == "Ga Kα"
    assert "Cu" not in [g[0].split()[0] for g in guess_lines(8.05, 0.06, 200.0, exclude=["Cu"])]
    near = exspy.utils.eds.get_xray_lines_near_energy(8.05, width=0.12)
    assert "Cu_Ka" in near
