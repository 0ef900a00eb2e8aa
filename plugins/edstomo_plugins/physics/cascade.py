"""Vacancy transfer between sub-shells: Coster-Kronig transitions and cascades (xraylib data).

Direct ionisation (:mod:`~edstomo_plugins.physics.bote2009`) creates vacancies
in each sub-shell; relaxation then moves vacancies outwards. A vacancy in
sub-shell ``i`` becomes a vacancy in an outer sub-shell ``j`` with probability
``T[i, j]``:

* Coster-Kronig (``mode="coster-kronig"``): within one shell (L1 → L2, L1 → L3,
  L2 → L3, M1 → M2 … M4 → M5), ``T = f_ij`` (``xraylib.CosKronTransProb``).
* Full cascade (``mode="full"``): in addition, radiative transitions
  (``ω_i · RadRate(i j)``, the electron comes from ``j``) and Auger transitions
  (``a_i · Σ n_j(XY) · AugerRate(i-XY)``, where ``a_i = AugerYield(i)`` and
  ``n_j(XY)`` counts ``j`` among the two final holes X, Y).

Processing sub-shells from the innermost out, the effective number of vacancies
per electron (a cross-section) is ``σ_eff(j) = σ(j) + Σ_i T[i, j] σ_eff(i)``.
``mode="none"`` (the default of the physics plugins, as in the paper) keeps the
direct cross-sections. All branching ratios come from xraylib (Krause 1979,
Elam et al. 2002, Kissel's Auger rates), whatever source supplies ω and p for
the emitted line.
"""

from __future__ import annotations

import re
from functools import cache

import xraylib

from .relaxation import split_transition

#: Sub-shells whose vacancies are followed, innermost first (those of Bote 2009).
SHELLS = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
#: Cascade modes.
MODES = ("none", "coster-kronig", "full")
#: Name of the data source, for provenance records.
SOURCE = f"xraylib {xraylib.__version__} (CosKronTransProb, FluorYield, RadRate, AugerYield, AugerRate)"

_AUGER = re.compile(r"^(K|L[1-3]|M[1-5])_(\w+)_AUGER$")


def _safe(function, *args) -> float:
    try:
        return float(function(*args))
    except ValueError:  # xraylib: no data for this element / transition
        return 0.0


def _coster_kronig(z: int, i: str, j: str) -> float:
    if i[0] != j[0] or i == "K" or int(j[1]) <= int(i[1]):
        return 0.0
    macro = getattr(xraylib, f"F{i[0]}{i[1]}{j[1]}_TRANS", None)
    return 0.0 if macro is None else _safe(xraylib.CosKronTransProb, z, macro)


def _radiative(z: int, i: str, j: str) -> float:
    macro = getattr(xraylib, f"{i}{j}_LINE", None)
    if macro is None:
        return 0.0
    return _safe(xraylib.FluorYield, z, getattr(xraylib, f"{i}_SHELL")) * _safe(xraylib.RadRate, z, macro)


@cache
def _auger_macros() -> dict[str, list[tuple[tuple[str, str], int]]]:
    """Auger macros of xraylib by initial vacancy: {shell: [((X, Y), macro), ...]}."""
    macros: dict[str, list[tuple[tuple[str, str], int]]] = {}
    for attribute in dir(xraylib):
        match = _AUGER.match(attribute)
        if match:
            holes = split_transition(match.group(2))
            macros.setdefault(match.group(1), []).append((holes, getattr(xraylib, attribute)))
    return macros


def _auger(z: int, i: str, j: str) -> float:
    rates = sum(
        holes.count(j) * _safe(xraylib.AugerRate, z, macro) for holes, macro in _auger_macros().get(i, []) if j in holes
    )
    return 0.0 if rates == 0 else _safe(xraylib.AugerYield, z, getattr(xraylib, f"{i}_SHELL")) * rates


@cache
def transfer_probabilities(z: int, mode: str) -> dict[tuple[str, str], float]:
    """One-step vacancy transfer probabilities ``T[(i, j)]`` between the sub-shells of :data:`SHELLS`.

    Parameters
    ----------
    z : int
        Atomic number.
    mode : str
        One of :data:`MODES`.

    Returns
    -------
    dict
        ``{(i, j): probability}`` for ``i`` inner to ``j``; pairs with zero
        probability are left out.
    """
    if mode not in MODES:
        raise ValueError(f"cascade: {mode!r} is not a cascade mode; expected one of {', '.join(MODES)}")
    transfers = {}
    for a, i in enumerate(SHELLS):
        for j in SHELLS[a + 1 :]:
            probability = 0.0 if mode == "none" else _coster_kronig(z, i, j)
            if mode == "full":
                probability += _radiative(z, i, j) + _auger(z, i, j)
            if probability > 0:
                transfers[(i, j)] = probability
    return transfers


def effective_cross_sections(z: int, direct: dict[str, float], mode: str) -> dict[str, float]:
    """Vacancy-creation cross-sections after Coster-Kronig / cascade transfer.

    Parameters
    ----------
    z : int
        Atomic number.
    direct : dict
        Direct ionisation cross-section of each sub-shell (any area unit; a
        missing sub-shell counts as 0).
    mode : str
        One of :data:`MODES`.

    Returns
    -------
    dict
        ``σ_eff`` of every sub-shell of :data:`SHELLS`, in the unit of ``direct``.
    """
    unknown = set(direct) - set(SHELLS)
    if unknown:
        raise ValueError(f"direct: unknown sub-shells {sorted(unknown)}; expected some of {', '.join(SHELLS)}")
    transfers = transfer_probabilities(int(z), mode)
    effective: dict[str, float] = {}
    for j in SHELLS:
        effective[j] = float(direct.get(j, 0.0)) + sum(
            transfers.get((i, j), 0.0) * effective[i] for i in SHELLS[: SHELLS.index(j)]
        )
    return effective
