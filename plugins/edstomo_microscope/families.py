"""X-ray line families of an element: every line of its K, L or M shell, with energies and relative weights.

A *family* collects the radiative transitions that fill vacancies in one shell
(``K``; ``L1``–``L3``; ``M1``–``M5``). The X-rays a family emits per ionising
electron are, for each transition ``t`` filling sub-shell ``s``::

    n_t = σ_s(E0) · ω_s · R_t / Σ_t' R_t'      (sum over the radiative transitions of s)

with σ_s the ionisation cross-section of the sub-shell at the beam energy E0
(Bote et al. 2009; vacancies moved outwards by Coster-Kronig transitions with
``cascade="coster-kronig"``, the default), ω_s its fluorescence yield and R_t
the radiative rates, from the relaxation data sets the physics plugins use for
``p`` (:mod:`edstomo_plugins.physics.relaxation`: xraylib or EADL). The
weights ``w_t = n_t / Σ n`` of a family sum to 1; a fitted family amplitude
(all X-rays of the family) times the *share* of a line (the sum of the weights
of the line's transitions, e.g. KL2 + KL3 for ``Co_Ka``) gives the counts of
that line, which the physics factor f_A turns into a composition exactly as
for window integration.

Which data set (``yields="auto"``, the default): xraylib for K and L families,
EADL for M families. xraylib's K rates carry Elam et al.'s (2002) experimental
Kβ/Kα ratios (Co: 0.135, EADL 0.122 — a Kβ too weak in the model is counted
in the line it overlaps, Co Kβ under Ni Kα), and its L rates give the 3d
metals' Lα as their strongest L line, as measured, where EADL's free-atom
values put Ll first. For M families xraylib's rates are far off: for Pt it
makes M2N4 (2.70 keV) 8 % of Mα and Mζ 14 %, several times what the openNCEM
summed spectrum shows; EADL's (1.6 % and 11 %) fit it better (reduced χ² of
the summed spectrum 80 against 122 with xraylib throughout, 111 with EADL
throughout).

Detector resolution: FWHM² = FWHM(Mn Kα)² + 2.5 eV · (E − E(Mn Kα)), the SDD
relation that exSpy uses too (the Fano term of silicon).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import xraylib
from edstomo.errors import InputError
from edstomo.lines import atomic_number, parse_line
from edstomo_plugins.physics import bote2009
from edstomo_plugins.physics.cascade import effective_cross_sections
from edstomo_plugins.physics.relaxation import SOURCES, split_transition
from scipy.special import erf

__all__ = [
    "FAMILY_SHELLS",
    "MN_KA_KEV",
    "Family",
    "Transition",
    "element_families",
    "families_of_lines",
    "family_name",
    "fwhm_kev",
    "gaussian_bins",
    "guess_lines",
]

#: Sub-shells of each family.
FAMILY_SHELLS: dict[str, tuple[str, ...]] = {
    "K": ("K",),
    "L": ("L1", "L2", "L3"),
    "M": ("M1", "M2", "M3", "M4", "M5"),
}
#: Energy of Mn Kα (keV), the reference of the detector resolution.
MN_KA_KEV = 5.8987
#: The Fano term of the resolution (eV² per eV of photon energy).
FANO_TERM_EV = 2.5
#: Transitions weaker than this share of their family are left out of its shape.
MIN_WEIGHT = 1e-3
#: Sources of the relative line intensities: one of the relaxation data sets, or "auto" (see AUTO_YIELDS).
YIELDS = ("auto", *sorted(SOURCES))
#: The source of each family with ``yields="auto"``.
AUTO_YIELDS = {"K": "xraylib", "L": "xraylib", "M": "eadl"}
#: Cascade modes for the vacancy distribution over the sub-shells.
CASCADES = ("none", "coster-kronig")


@dataclass(frozen=True)
class Transition:
    """One radiative transition of a family.

    Attributes
    ----------
    name : str
        IUPAC name, e.g. ``"KL3"``.
    energy_kev : float
        Photon energy (keV).
    weight : float
        Share of the family's X-rays (the weights of all transitions of a
        family, including those left out of its shape, sum to 1).
    """

    name: str
    energy_kev: float
    weight: float


@dataclass(frozen=True)
class Family:
    """The lines of one shell of one element.

    Attributes
    ----------
    element : str
        Element symbol.
    shell : str
        ``"K"``, ``"L"`` or ``"M"``.
    transitions : tuple of Transition
        The transitions of the shape (weights ≥ :data:`MIN_WEIGHT`), strongest first.
    emission_barn : float
        X-rays of the family per atom and unit electron fluence, Σ_s σ_s ω_s (barn):
        the ratio of two families' values is the ratio of their X-rays.
    """

    element: str
    shell: str
    transitions: tuple[Transition, ...]
    emission_barn: float

    @property
    def name(self) -> str:
        """``"Ni K"``, ``"Pt M"`` …"""
        return family_name(self.element, self.shell)

    @property
    def energy_kev(self) -> float:
        """Energy of the strongest transition (keV)."""
        return self.transitions[0].energy_kev

    def share(self, line: str) -> float:
        """Share of the family's X-rays that a line (e.g. ``"Ni_Ka"``) carries.

        Raises
        ------
        InputError
            When the line is not one of this family's (another element or shell).
        """
        parsed = parse_line(line)
        if parsed.element != self.element or parsed.shell[0] != self.shell:
            raise InputError(f"line: {line!r} is not a line of the {self.name} family")
        names = set(parsed.transitions)
        return float(sum(t.weight for t in self.transitions if t.name in names))

    def weight_between(self, low_kev: float, high_kev: float) -> float:
        """Share of the family's X-rays with energies in [low, high] keV."""
        return float(sum(t.weight for t in self.transitions if low_kev <= t.energy_kev <= high_kev))

    def spectrum(self, edges_kev: np.ndarray, fwhm_mn_ev: float) -> np.ndarray:
        """Expected counts per channel for one X-ray of the family (Gaussian lines integrated over the channels).

        Parameters
        ----------
        edges_kev : ndarray
            Channel edges (keV), increasing, one more than the channels.
        fwhm_mn_ev : float
            Detector resolution at Mn Kα (eV).
        """
        energies = np.array([t.energy_kev for t in self.transitions])
        weights = np.array([t.weight for t in self.transitions])
        return weights @ gaussian_bins(edges_kev, energies, fwhm_kev(energies, fwhm_mn_ev))


def family_name(element: str, shell: str) -> str:
    """The name of a family, ``"Ni K"``."""
    return f"{element} {shell}"


def fwhm_kev(energy_kev: float | np.ndarray, fwhm_mn_ev: float) -> np.ndarray:
    """Detector resolution (FWHM, keV) at ``energy_kev`` for a resolution ``fwhm_mn_ev`` (eV) at Mn Kα.

    Energies so low that the relation would give less than a quarter of
    FWHM(Mn Kα) get that quarter (the electronic noise floor).
    """
    energy_ev = 1e3 * np.asarray(energy_kev, dtype=float)
    squared = fwhm_mn_ev**2 + FANO_TERM_EV * (energy_ev - 1e3 * MN_KA_KEV)
    return np.sqrt(np.maximum(squared, (0.25 * fwhm_mn_ev) ** 2)) / 1e3


def gaussian_bins(edges_kev: np.ndarray, centres_kev: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    """Unit-area Gaussians integrated over channels: shape (len(centres), channels).

    Parameters
    ----------
    edges_kev : ndarray
        Channel edges (keV).
    centres_kev, fwhm : ndarray
        Centre and FWHM (keV) of each Gaussian.
    """
    centres = np.asarray(centres_kev, dtype=float)[:, None]
    sigma = np.asarray(fwhm, dtype=float)[:, None] / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    cdf = 0.5 * (1.0 + erf((np.asarray(edges_kev, dtype=float)[None, :] - centres) / (np.sqrt(2.0) * sigma)))
    return np.diff(cdf, axis=1)


def _line_energy_kev(z: int, transition: str) -> float:
    macro = getattr(xraylib, f"{transition}_LINE", None)
    if macro is None:
        return 0.0
    try:
        return float(xraylib.LineEnergy(z, macro))
    except ValueError:
        return 0.0


@cache
def _family(element: str, shell: str, beam_energy_kev: float, yields: str, cascade: str) -> Family | None:
    z = atomic_number(element)
    source = SOURCES[yields]
    available = set(bote2009.shells(z))
    direct = {
        s: float(bote2009.cross_section_barn(z, s, 1e3 * beam_energy_kev)) for s in bote2009.SHELLS if s in available
    }
    vacancies = effective_cross_sections(z, direct, cascade)
    emitted: dict[str, float] = {}
    for sub in FAMILY_SHELLS[shell]:
        if vacancies.get(sub, 0.0) <= 0:
            continue
        omega = float(source.fluorescence_yield(z, sub))
        rates = source.radiative_rates(z, sub)
        total = sum(rates.values())
        if not (0 < omega <= 1 and total > 0):
            continue
        for name, rate in rates.items():
            if split_transition(name)[0] == sub and rate > 0:
                emitted[name] = emitted.get(name, 0.0) + vacancies[sub] * omega * rate / total
    norm = sum(emitted.values())
    if norm <= 0:
        return None
    transitions = []
    for name, value in emitted.items():
        energy = _line_energy_kev(z, name)
        if value / norm >= MIN_WEIGHT and energy > 0:
            transitions.append(Transition(name, energy, value / norm))
    if not transitions:
        return None
    transitions.sort(key=lambda t: -t.weight)
    return Family(element, shell, tuple(transitions), norm)


def element_families(
    element: str,
    beam_energy_kev: float,
    *,
    yields: str | Mapping[str, str] = "auto",
    cascade: str = "coster-kronig",
) -> list[Family]:
    """The K, L and M families an element emits at a beam energy (those the beam can excite).

    Parameters
    ----------
    element : str
        Element symbol.
    beam_energy_kev : float
        Beam energy (keV).
    yields : {"auto", "xraylib", "eadl"} or dict
        Source of fluorescence yields and radiative rates (``"auto"``: see the
        module docstring), or one source per family, ``{"K": "eadl", "L": …, "M": …}``.
    cascade : {"coster-kronig", "none"}
        Whether Coster-Kronig transitions move vacancies between sub-shells.

    Raises
    ------
    InputError
        For an unknown element, source or cascade mode, or a beam energy that is not positive.
    """
    if isinstance(yields, Mapping):
        sources = {shell: yields.get(shell) for shell in FAMILY_SHELLS}
    else:
        sources = {shell: AUTO_YIELDS[shell] if yields == "auto" else yields for shell in FAMILY_SHELLS}
    if any(source not in SOURCES for source in sources.values()):
        raise InputError(
            f"yields: {yields!r} is not a data source; expected one of {YIELDS} or a dict of one per family "
            f"{tuple(FAMILY_SHELLS)}"
        )
    if cascade not in CASCADES:
        raise InputError(f"cascade: {cascade!r} is not a mode; expected one of {CASCADES}")
    if not (np.isfinite(beam_energy_kev) and beam_energy_kev > 0):
        raise InputError(f"beam_energy: {beam_energy_kev!r} keV must be a positive energy")
    atomic_number(element)
    found = [_family(element, shell, float(beam_energy_kev), sources[shell], cascade) for shell in FAMILY_SHELLS]
    return [family for family in found if family is not None]


#: Lines offered as guesses for an unexplained peak: family and IUPAC transition of its strongest line.
_GUESS_LINES: tuple[tuple[str, str, str], ...] = (
    ("Ka", "KL3", "Kα"),
    ("Kb", "KM3", "Kβ"),
    ("La", "L3M5", "Lα"),
    ("Lb1", "L2M4", "Lβ1"),
    ("Ma", "M5N7", "Mα"),
)


@cache
def _guess_table(beam_energy_kev: float) -> tuple[tuple[str, str, float, int], ...]:
    """(line name, label, energy keV, rank) of the main lines of Z = 4–94 that the beam can excite."""
    table = []
    for z in range(4, 95):
        symbol = xraylib.AtomicNumberToSymbol(z)
        for rank, (family, transition, label) in enumerate(_GUESS_LINES):
            energy = _line_energy_kev(z, transition)
            try:
                edge = bote2009.ionization_energy_ev(z, split_transition(transition)[0]) / 1e3
            except ValueError:
                continue
            if energy > 0 and edge < beam_energy_kev:
                table.append((f"{symbol}_{family}", f"{symbol} {label}", energy, rank))
    return tuple(table)


def guess_lines(
    energy_kev: float,
    tolerance_kev: float,
    beam_energy_kev: float,
    exclude: Iterable[str] = (),
    limit: int = 3,
) -> list[tuple[str, float]]:
    """Main X-ray lines near an energy, best guess first: ``[("Cu Kα", 8.048), ...]``.

    Lines within ``tolerance_kev`` are ranked by the kind of line (Kα, then
    Kβ, Lα, Lβ1, Mα: an element's strongest line is the likeliest to show) and
    then by distance; elements in ``exclude`` (those already modelled) are left out.
    """
    skip = set(exclude)
    near = [
        (rank, abs(energy - energy_kev), label, energy)
        for name, label, energy, rank in _guess_table(float(beam_energy_kev))
        if abs(energy - energy_kev) <= tolerance_kev and name.split("_")[0] not in skip
    ]
    near.sort()
    return [(label, round(energy, 3)) for _, _, label, energy in near[:limit]]


def families_of_lines(lines: Sequence[str]) -> dict[str, str]:
    """The family of each line: ``{"Ni_Ka": "Ni K", "Pt_La": "Pt L"}``."""
    result = {}
    for line in lines:
        parsed = parse_line(line)
        result[line] = family_name(parsed.element, parsed.shell[0])
    return result
