"""Coster-Kronig and cascade vacancy transfer (xraylib data)."""

from __future__ import annotations

import pytest
import xraylib
from edstomo_plugins.physics import bote2009
from edstomo_plugins.physics.cascade import MODES, SHELLS, effective_cross_sections, transfer_probabilities


def _direct(z: int, energy_ev: float) -> dict[str, float]:
    return {shell: float(bote2009.cross_section_barn(z, shell, energy_ev)) for shell in bote2009.shells(z)}


def test_coster_kronig_raises_ag_l3_by_the_hand_computed_ratio():
    # Ag at 100 keV. Coster-Kronig probabilities of xraylib (Krause 1979) for Ag:
    f12, f13, f23 = 0.100, 0.590, 0.151
    assert xraylib.CosKronTransProb(47, xraylib.FL12_TRANS) == pytest.approx(f12)
    assert xraylib.CosKronTransProb(47, xraylib.FL13_TRANS) == pytest.approx(f13)
    assert xraylib.CosKronTransProb(47, xraylib.FL23_TRANS) == pytest.approx(f23)
    # Bote direct cross-sections (barn): L1 805.96, L2 1139.70, L3 2443.79.
    # L3 vacancies = σ3 + f23 σ2 + (f13 + f12 f23) σ1
    #              = 2443.79 + 0.151 × 1139.70 + (0.590 + 0.0151) × 805.96 = 2443.79 + 172.09 + 487.69
    # so the ratio is 3103.57 / 2443.79 = 1.2700.
    direct = _direct(47, 100e3)
    effective = effective_cross_sections(47, direct, "coster-kronig")
    assert effective["L3"] / direct["L3"] == pytest.approx(1.2700, abs=5e-4)
    assert effective["L2"] / direct["L2"] == pytest.approx(1 + f12 * direct["L1"] / direct["L2"], rel=1e-3)
    assert effective["L1"] == direct["L1"] and effective["K"] == direct["K"]


def test_none_keeps_the_direct_cross_sections():
    direct = _direct(79, 100e3)
    assert effective_cross_sections(79, direct, "none") == {shell: direct.get(shell, 0.0) for shell in SHELLS}
    assert transfer_probabilities(79, "none") == {}


def test_coster_kronig_stays_within_a_shell():
    for i, j in transfer_probabilities(79, "coster-kronig"):
        assert i[0] == j[0] and i != "K"


@pytest.mark.parametrize("mode", MODES)
def test_transfer_probabilities_from_one_vacancy_are_at_most_two_holes(mode):
    # One vacancy ends as at most two holes (Auger), so the probabilities out of a shell sum to < 2.
    transfers = transfer_probabilities(79, mode)
    for i in SHELLS:
        assert sum(p for (a, _), p in transfers.items() if a == i) < 2.0


def test_full_cascade_matches_xraylibs_l3_and_m5_algebra():
    # xraylib's PL3/PM5_full_cascade_kissel add the same transfers to a photo-ionisation cross-section;
    # subtracting that part leaves the cascade contribution for our electron-impact cross-sections.
    energy_photon = 30.0
    direct = _direct(47, 100e3)
    eff = effective_cross_sections(47, direct, "full")
    xrl = xraylib.PL3_full_cascade_kissel(47, energy_photon, direct["K"], eff["L1"], eff["L2"])
    xrl -= xraylib.CS_Photo_Partial(47, xraylib.L3_SHELL, energy_photon)
    assert eff["L3"] - direct["L3"] == pytest.approx(xrl, rel=1e-4)

    direct = _direct(79, 100e3)
    eff = effective_cross_sections(79, direct, "full")
    inner = [eff[s] for s in ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4")]
    xrl = xraylib.PM5_full_cascade_kissel(79, energy_photon, *inner)
    xrl -= xraylib.CS_Photo_Partial(79, xraylib.M5_SHELL, energy_photon)
    assert eff["M5"] - direct["M5"] == pytest.approx(xrl, rel=1e-3)


def test_full_cascade_adds_to_coster_kronig():
    direct = _direct(79, 100e3)
    ck = effective_cross_sections(79, direct, "coster-kronig")
    full = effective_cross_sections(79, direct, "full")
    assert full["M5"] > ck["M5"] > direct["M5"]


def test_bad_mode_or_shell_is_rejected():
    with pytest.raises(ValueError, match="cascade: 'auger'"):
        transfer_probabilities(47, "auger")
    with pytest.raises(ValueError, match=r"unknown sub-shells \['N1'\]"):
        effective_cross_sections(47, {"N1": 1.0}, "full")
