"""Bote et al. (2009) ionisation cross-sections: the paper's Table 2, the reference values, the table itself."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from edstomo_plugins.physics import bote2009
from hypothesis import given, settings
from hypothesis import strategies as st

SHARED = Path(__file__).resolve().parents[2] / "shared"
BOTE_FOLDER = SHARED / "reference" / "bote2009"

# Yuan et al. 2020, Table 2 (MC X-ray): (Z, shell, beam energy keV, σ_ion barn).
TABLE2 = [(47, "L3", 100, 2440), (79, "M5", 100, 7460), (27, "K", 80, 420), (30, "K", 80, 302)]

# bote2009/README.md: direct ionisation, barn, by energy (keV) for Ag L3, Au M5, Co K, Zn K.
REFERENCE = {
    60: (3266, 10056, 472, 333),
    80: (2770, 8478, 420, 302),
    100: (2444, 7458, 382, 277),
    200: (1728, 5253, 287, 213),
    300: (1481, 4501, 251, 189),
}
REFERENCE_SHELLS = [(47, "L3"), (79, "M5"), (27, "K"), (30, "K")]


@pytest.mark.parametrize(("z", "shell", "energy_kev", "expected"), TABLE2)
def test_table2_values_within_half_a_percent(z, shell, energy_kev, expected):
    sigma = float(bote2009.cross_section_barn(z, shell, energy_kev * 1e3))
    assert sigma == pytest.approx(expected, rel=5e-3)


@pytest.mark.parametrize("energy_kev", sorted(REFERENCE))
def test_reference_values_within_half_a_percent(energy_kev):
    for (z, shell), expected in zip(REFERENCE_SHELLS, REFERENCE[energy_kev]):
        sigma = float(bote2009.cross_section_barn(z, shell, energy_kev * 1e3))
        assert sigma == pytest.approx(expected, rel=5e-3), (z, shell, energy_kev)


def test_vectorised_over_energies_matches_scalar_calls():
    energies = np.array([[5e3, 20e3], [80e3, 3e5]])
    sigma = bote2009.cross_section_barn(29, "K", energies)
    assert sigma.shape == energies.shape
    for index in np.ndindex(energies.shape):
        assert sigma[index] == float(bote2009.cross_section_barn(29, "K", energies[index]))


def test_zero_at_and_below_the_edge_positive_above():
    edge = bote2009.ionization_energy_ev(79, "M5")
    sigma = bote2009.cross_section_barn(79, "M5", [0.5 * edge, edge, 1.001 * edge])
    assert sigma[0] == 0 and sigma[1] == 0 and sigma[2] > 0


def test_branches_meet_at_overvoltage_16_for_every_shell():
    worst = 0.0
    for z in range(1, 100):
        for shell in bote2009.shells(z):
            edge = bote2009.ionization_energy_ev(z, shell)
            below, above = bote2009.cross_section_barn(z, shell, [16 * edge * (1 - 1e-12), 16 * edge * (1 + 1e-12)])
            worst = max(worst, abs(above / below - 1))
    assert worst < 5e-3  # Bote et al.: the branches agree to about 0.2 %


@settings(max_examples=60, deadline=None)
@given(z=st.integers(1, 99), factor=st.floats(1.2, 1e4))
def test_cross_sections_are_positive_and_finite_above_the_edge(z, factor):
    for shell in bote2009.shells(z):
        sigma = float(bote2009.cross_section_barn(z, shell, factor * bote2009.ionization_energy_ev(z, shell)))
        assert np.isfinite(sigma) and sigma > 0


def test_shell_counts_grow_with_z():
    assert bote2009.shells(1) == ("K",)
    assert bote2009.shells(79) == bote2009.SHELLS
    assert bote2009.ionization_energy_ev(27, "K") == pytest.approx(7680.79)


@pytest.mark.parametrize("energy", [0.0, -80e3, np.nan, np.inf])
def test_non_positive_or_non_finite_energy_is_rejected_naming_it(energy):
    with pytest.raises(ValueError, match="energy_ev"):
        bote2009.cross_section_barn(27, "K", energy)


def test_unknown_z_or_shell_is_rejected():
    with pytest.raises(ValueError, match=r"z: 100"):
        bote2009.cross_section_barn(100, "K", 1e5)
    with pytest.raises(ValueError, match=r"shell: 'N1'"):
        bote2009.cross_section_barn(79, "N1", 1e5)
    with pytest.raises(ValueError, match=r"Z = 3 has no M5"):
        bote2009.cross_section_barn(3, "M5", 1e5)


def test_table_header_cites_the_paper():
    assert "Atomic Data and Nuclear Data Tables 95 (2009) 871" in bote2009.citation()


def _csv(name: str) -> dict[int, list[float]]:
    with (BOTE_FOLDER / name).open(newline="") as handle:
        return {int(row[0]): [float(v) for v in row[1:]] for row in csv.reader(handle) if row}


@pytest.mark.skipif(not BOTE_FOLDER.is_dir(), reason="../shared/reference/bote2009 is not available")
def test_packaged_table_equals_the_published_coefficients():
    low, high, edges = _csv("SalvatXionA.csv"), _csv("SalvatXionB.csv"), _csv("xionUis.csv")
    table = bote2009._table()["arrays"]
    for z in range(1, 100):
        rows = table[z]
        assert len(rows) == len(edges[z])
        np.testing.assert_array_equal(rows[:, 0], edges[z])
        np.testing.assert_array_equal(rows[:, 1:6].ravel(), low[z])
        np.testing.assert_array_equal(rows[:, 6:12].ravel(), high[z])
