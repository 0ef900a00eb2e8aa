"""SIRT: per-channel reconstruction of eq. 11 with row/column normalisation and non-negativity."""

from __future__ import annotations

from typing import Any, Literal

from edstomo.algorithms import ORDERINGS, SART, Algorithm, angle_subsets
from edstomo.engine import IterativeOptions, Problem, ReconstructionSolver
from edstomo.errors import InputError
from pydantic import Field

MOST_SUBSETS = 32
"""The subset count of ``subsets=None``: one tilt per subset (SART), for at most this many tilts."""


class SIRTSolver(ReconstructionSolver):
    """Simultaneous iterative reconstruction (SIRT) of each channel, all slices at once.

    Each channel ``A`` with sinogram ``b_A`` is updated as (Gregor & Benson 2008)

        X_A ← max(0, X_A + λ C Wᵀ R (b_A − W X_A)),

    with ``R = diag(1 / Σ_j w_ij)`` (inverse row sums) and ``C = diag(1 / Σ_i w_ij)``
    (inverse column sums); rows or columns that no ray touches get weight 0.
    Channels and slices are the projector's batch axes, so one iteration is one
    forward and one back projection (one sparse product each) for everything.

    ``subsets`` > 1 makes an iteration visit that many groups of tilts in turn
    (golden-ratio order by default) and update after each, with each group's own
    ``R`` and ``C``: OS-SART (:class:`edstomo.algorithms.SART`; the ``sart`` solver
    is the same with one tilt per subset by default).  It reaches SIRT's quality in
    far fewer passes over the data; a pass costs more (one sweep over the volume per subset).

    Notes
    -----
    The maps are in data units per pixel of path length: for an EDS line
    ``X_A = n f_A C_A ρ`` (eq. 11, times the pixel length), counts per pixel.
    ``channels=["HAADF"]`` reconstructs the HAADF signal instead.
    """

    name = "sirt"
    description = "SIRT per channel (eq. 11), row/column normalised, non-negative, all slices and channels at once"
    default = True

    class Options(IterativeOptions):
        relaxation: float = Field(1.0, gt=0, lt=2, description="relaxation λ")
        subsets: int | None = Field(
            1,
            ge=1,
            description=f"ordered subsets of the tilt angles per iteration (1: SIRT; None: one per tilt, at most "
            f"{MOST_SUBSETS})",
        )
        ordering: Literal[ORDERINGS] = Field("golden", description="how the tilts are dealt into subsets")
        seed: int = Field(0, ge=0, description="seed of the 'random' ordering")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._used: dict[str, Any] = {}

    def build(self, problem: Problem) -> Algorithm:
        subsets, groups = subset_plan(problem.projector.n_angles, self.options)
        self._used = {"subsets_used": subsets}
        return SART(
            problem.projector,
            problem.data,
            problem.initial,
            relaxation=self.options.relaxation,
            nonnegative=problem.nonnegative,
            subsets=groups,
            max_iterations=self.options.iterations,
        )

    def record(self) -> dict[str, Any]:
        return dict(self._used)


def subset_plan(tilts: int, options: Any) -> tuple[int, list[Any] | None]:
    """The number of ordered subsets of ``tilts`` angles that ``options`` (``subsets``, ``ordering``, ``seed``)
    ask for (``None``: one per tilt, at most :data:`MOST_SUBSETS`), and the subsets (``None`` for 1: SIRT)."""
    subsets = options.subsets
    if subsets is None:
        subsets = min(tilts, MOST_SUBSETS)
    elif subsets > tilts:
        raise InputError(f"subsets: {subsets} is more than the {tilts} tilt angles of the series")
    return subsets, None if subsets == 1 else angle_subsets(tilts, subsets, options.ordering, options.seed)
