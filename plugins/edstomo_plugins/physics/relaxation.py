"""Fluorescence yields ω and relative line intensities p of an ionised sub-shell.

A vacancy in a sub-shell (``"K"``, ``"L3"``, ``"M5"`` …) is filled either by a
radiative transition (probability ω, the fluorescence yield) or not (Auger and
Coster-Kronig). A line family such as Lα collects some of the radiative
transitions that fill the vacancy; its relative intensity is::

    p = (sum of the family's transition rates) / (sum of all radiative rates of the shell)

Two data sources implement :class:`RelaxationSource`:

* :class:`EADLSource` (default): the Evaluated Atomic Data Library (Perkins et
  al. 1991) through ``pyxray``. EADL gives radiative transition probabilities
  per vacancy, so ω is their sum over the shell.
* :class:`XraylibSource`: xraylib's fluorescence yields (Krause 1979 / Elam
  2002) and radiative rates.

New sources subclass :class:`RelaxationSource` and implement
:meth:`~RelaxationSource.fluorescence_yield` and
:meth:`~RelaxationSource.radiative_rates`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from functools import cache
from typing import ClassVar

import pyxray
import xraylib

_LETTERS = "KLMNOPQ"
#: (l, 2j) of the sub-shells of a shell, in IUPAC order (1, 2, 3, ...).
_ORBITALS = ((0, 1), (1, 1), (1, 3), (2, 3), (2, 5), (3, 5), (3, 7))


def subshell_name(n: int, azimuthal: int, two_j: int) -> str:
    """IUPAC name of a sub-shell from its quantum numbers n, l and 2j (``(2, 1, 3)`` -> ``"L3"``)."""
    letter = _LETTERS[n - 1]
    if n == 1:
        return letter
    return f"{letter}{_ORBITALS.index((azimuthal, two_j)) + 1}"


_SUBSHELL = r"(K|L[1-3]|M[1-5]|N[1-7]|O[1-7]|P[1-7]|Q[1-7])"
_TRANSITION = re.compile(rf"^{_SUBSHELL}{_SUBSHELL}$")


def split_transition(transition: str) -> tuple[str, str]:
    """IUPAC transition -> (vacancy sub-shell, sub-shell the electron comes from): ``"L3M5"`` -> ``("L3", "M5")``."""
    match = _TRANSITION.match(transition)
    if match is None:
        raise ValueError(f"transition: {transition!r} is not an IUPAC transition name such as 'L3M5'")
    return match.group(1), match.group(2)


class RelaxationSource(ABC):
    """A data set of fluorescence yields and radiative transition rates."""

    #: Short name used to select the source (``yields="eadl"``).
    name: ClassVar[str]
    #: Human-readable origin of the data, recorded in ``LineParameters.sources``.
    citation: ClassVar[str]

    @abstractmethod
    def fluorescence_yield(self, z: int, shell: str) -> float:
        """Fluorescence yield ω of sub-shell ``shell`` of element ``z`` (0 when unknown)."""

    @abstractmethod
    def radiative_rates(self, z: int, shell: str) -> dict[str, float]:
        """Rates of the radiative transitions that fill a vacancy in ``shell``, by IUPAC name.

        Any normalisation will do: only ratios enter :meth:`relative_intensity`.
        """

    def checked_yield(self, z: int, shell: str) -> float:
        """ω, with a clear error when the source has none for this shell."""
        omega = float(self.fluorescence_yield(z, shell))
        if not 0 < omega <= 1:
            raise ValueError(
                f"shell: {self.name} has no fluorescence yield for the {shell} shell of Z = {z} (got {omega!r})"
            )
        return omega

    def relative_intensity(self, z: int, shell: str, transitions: tuple[str, ...]) -> float:
        """Share p of the shell's radiative transitions that ``transitions`` (one line family) carry."""
        for transition in transitions:
            if split_transition(transition)[0] != shell:
                raise ValueError(f"transitions: {transition!r} does not fill a vacancy in the {shell} shell")
        rates = self.radiative_rates(z, shell)
        total = sum(rates.values())
        family = sum(rates.get(t, 0.0) for t in transitions)
        if not (total > 0 and family > 0):
            raise ValueError(f"transitions: {self.name} has no radiative rate for {'+'.join(transitions)} of Z = {z}")
        return family / total

    def transition_weights(self, z: int, shell: str, transitions: tuple[str, ...]) -> dict[str, float]:
        """Relative weights (summing to 1) of the transitions of one family."""
        rates = self.radiative_rates(z, shell)
        total = sum(rates.get(t, 0.0) for t in transitions)
        if not total > 0:
            raise ValueError(f"transitions: {self.name} has no rate for {'+'.join(transitions)} of Z = {z}")
        return {t: rates.get(t, 0.0) / total for t in transitions}


@cache
def _eadl_probabilities(z: int) -> dict[str, dict[str, float]]:
    """EADL radiative probabilities per vacancy of element ``z``: {vacancy shell: {transition: probability}}."""
    table: dict[str, dict[str, float]] = {}
    for transition in pyxray.element_xray_transitions(z):
        try:
            probability = float(pyxray.xray_transition_probability(z, transition, reference="perkins1991"))
        except pyxray.NotFound:
            continue
        src, dst = transition.source_subshell, transition.destination_subshell
        vacancy = subshell_name(dst.n, dst.l, dst.j_n)
        origin = subshell_name(src.n, src.l, src.j_n)
        table.setdefault(vacancy, {})[vacancy + origin] = probability
    return table


class EADLSource(RelaxationSource):
    """EADL (Perkins et al. 1991) through ``pyxray``: ω = Σ radiative probabilities per vacancy."""

    name = "eadl"
    citation = "EADL, Perkins et al. 1991, UCRL-50400 vol. 30 (via pyxray)"

    def radiative_rates(self, z: int, shell: str) -> dict[str, float]:
        return dict(_eadl_probabilities(int(z)).get(shell, {}))

    def fluorescence_yield(self, z: int, shell: str) -> float:
        return sum(self.radiative_rates(z, shell).values())


@cache
def _xraylib_lines() -> dict[str, int]:
    """xraylib's IUPAC line macros (``"L3M5"`` -> ``xraylib.L3M5_LINE``)."""
    lines = {}
    for attribute in dir(xraylib):
        name = attribute.removesuffix("_LINE")
        if attribute.endswith("_LINE") and _TRANSITION.match(name):
            lines[name] = getattr(xraylib, attribute)
    return lines


@cache
def _xraylib_rates(z: int, shell: str) -> dict[str, float]:
    rates = {}
    for name, macro in _xraylib_lines().items():
        if split_transition(name)[0] != shell:
            continue
        try:
            rate = float(xraylib.RadRate(z, macro))
        except ValueError:
            continue
        if rate > 0:
            rates[name] = rate
    return rates


class XraylibSource(RelaxationSource):
    """xraylib: fluorescence yields (Krause 1979, Elam et al. 2002) and radiative rates."""

    name = "xraylib"
    citation = f"xraylib {xraylib.__version__} (FluorYield: Krause 1979 / Elam et al. 2002; RadRate)"

    def radiative_rates(self, z: int, shell: str) -> dict[str, float]:
        return dict(_xraylib_rates(int(z), shell))

    def fluorescence_yield(self, z: int, shell: str) -> float:
        try:
            return float(xraylib.FluorYield(int(z), getattr(xraylib, f"{shell}_SHELL")))
        except ValueError:
            return 0.0


#: The relaxation data sources edstomo ships, by name.
SOURCES: dict[str, RelaxationSource] = {source.name: source for source in (EADLSource(), XraylibSource())}
